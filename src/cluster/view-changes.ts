/**
 * What a worker derives from the cluster view by itself, as pure functions
 * (the worker's shell, cluster/worker.ts, acts on them): which workers a new
 * view drops (their sessions leave every user and room here), and which of
 * this worker's joined channels to re-announce to a worker that restarted
 * (those whose user or room it now masters, so it rebuilds their presence).
 */
import { place, shardOf, type HostView } from '../placement/index.js';

/** The workers ("<hostId>.<index>") a view lists alive (the view the primary sends always lists them). */
export function workerAddrs(view: readonly HostView[]): string[] {
  return view.flatMap((h) => (h.alive ?? []).map((w) => `${h.hostId}.${w}`));
}

/** The workers alive in `before` and no longer in `after`: dead (a host or a worker). */
export function goneWorkers(before: readonly HostView[], after: readonly HostView[]): string[] {
  const now = new Set(workerAddrs(after));
  return workerAddrs(before).filter((a) => !now.has(a));
}

/** A joined channel of a local session, as resync reads it. */
export interface ResyncChannel { readonly topic: string; readonly id: string }

/**
 * The channels whose join goes again to worker `w` after it restarted: the
 * `user:` and `room:` ones whose shard it masters in `view` (none while the
 * view is empty), with the shard and the kind of command.
 */
export function joinsToResync<C extends ResyncChannel>(channels: Iterable<C>, w: string, view: readonly HostView[], shards: number): { ch: C; kind: 'u' | 'r'; shard: number }[] {
  if (view.length === 0) return [];
  const out: { ch: C; kind: 'u' | 'r'; shard: number }[] = [];
  for (const ch of channels) {
    const kind = ch.topic.startsWith('user:') ? 'u' : ch.topic.startsWith('room:') ? 'r' : null;
    if (!kind) continue;
    const shard = shardOf(ch.id, shards);
    const m = place(shard, view, 0).master;
    if (`${m.hostId}.${m.worker}` === w) out.push({ ch, kind, shard });
  }
  return out;
}
