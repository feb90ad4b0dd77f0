/**
 * Every series a Sandbar host exports, with the labels each has: built from
 * the code that makes them (the worker's stats map, the per-process counters
 * and histograms, the host-level gauges, prom-client's default collectors),
 * plus what Prometheus adds to every scrape (`job`, `instance`, and `up`).
 */
import { ProcessMetrics, statFamilies, STAT_METRICS } from '../../src/observability/metrics.js';
import { hostFamilies } from '../../src/observability/host-metrics.js';
import { authFamilies } from '../../src/observability/auth-metrics.js';
import { runtimeFamilies } from '../../src/observability/runtime-metrics.js';
import type { Family } from '../../src/observability/exposition.js';
import type { WorkerStats } from '../../src/cluster/ipc.js';

/** A WorkerStats with every field set (the values do not matter). */
export const SAMPLE_STATS: WorkerStats = Object.fromEntries(Object.keys(STAT_METRICS).map((k) => [k, 0])) as unknown as WorkerStats;

/** Sandbar's own families: per worker, then per host. */
export function sandbarFamilies(): { worker: Family[]; host: Family[] } {
  return {
    worker: [...statFamilies(SAMPLE_STATS), ...new ProcessMetrics().families(), ...authFamilies({ refused: {}, proxy: null, jwks: null, revokedUsers: 0 })],
    host: hostFamilies({ version: '0', node: 'v0', nats: '0', restarts: 0, workers: 1, workersUp: 1, hosts: 1, suspectHosts: 0, natsConnected: true, leaseValid: true, leaseLost: 0 }),
  };
}

/** Series name → its label names, for everything a scrape of a host holds. */
export async function knownSeries(): Promise<Map<string, Set<string>>> {
  const { worker, host } = sandbarFamilies();
  const out = new Map<string, Set<string>>();
  const add = (fams: Family[], base: string[]) => {
    for (const f of fams) {
      const names = f.type === 'histogram' ? [`${f.name}_bucket`, `${f.name}_sum`, `${f.name}_count`] : [f.name];
      const labels = new Set([...base, ...f.samples.flatMap((s) => Object.keys(s.labels))]);
      if (f.type === 'histogram') labels.add('le');
      for (const n of names) out.set(n, new Set([...(out.get(n) ?? []), ...labels]));
    }
  };
  const prom = ['job', 'instance'];
  add(worker, [...prom, 'host', 'worker']);
  add(host, [...prom, 'host']);
  // prom-client's histograms (GC) have no samples until an observation: their labels are known.
  const runtime = await runtimeFamilies();
  add(runtime, [...prom, 'host', 'worker', 'kind', 'space', 'type', 'version', 'major', 'minor', 'patch']);
  out.set('up', new Set(prom));
  return out;
}
