/**
 * The V8 heap limit the primary gives each forked worker
 * (`--max-old-space-size`, cluster.workerHeapMb). The storage budget is a
 * share of it (storage/budget.ts), so it must hold on every worker at once:
 * by default half of the machine's memory, divided among the workers (the
 * rest is for each process's code, buffers and sockets outside the heap,
 * nats-server and the OS), between 256 and 4096 MiB.
 */
import os from 'node:os';
import type { SandbarConfig } from '../config/types.js';

export const MIN_DERIVED_HEAP_MB = 256;
export const MAX_DERIVED_HEAP_MB = 4096;

/** cluster.workerHeapMb, or (0) what it derives to on a machine with totalMem bytes. */
export function workerHeapMb(config: SandbarConfig, totalMem: number = os.totalmem()): number {
  if (config.cluster.workerHeapMb > 0) return config.cluster.workerHeapMb;
  const share = Math.floor(totalMem / 2 / Math.max(1, config.cluster.workers) / (1024 * 1024));
  return Math.max(MIN_DERIVED_HEAP_MB, Math.min(MAX_DERIVED_HEAP_MB, share));
}

/** The worker's execArgv: the parent's, with our heap limit last (V8 takes the last one given). */
export function workerExecArgv(parent: readonly string[], heapMb: number): string[] {
  return [...parent.filter((a) => !a.startsWith('--max-old-space-size')), `--max-old-space-size=${heapMb}`];
}
