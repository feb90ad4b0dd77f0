/**
 * Process and Node runtime metrics (`process_cpu_seconds_total`,
 * `process_resident_memory_bytes`, `nodejs_heap_size_used_bytes`,
 * `nodejs_eventloop_lag_p99_seconds`, `nodejs_gc_duration_seconds`, ...) from
 * prom-client's default collectors: the names that stock Node.js dashboards
 * and alerts read. One registry per process, made on first use; read once
 * per scrape, never on a message path.
 */
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { Family, MetricType, Sample } from './exposition.js';

let registry: Registry | null = null;

function runtimeRegistry(): Registry {
  if (!registry) {
    registry = new Registry();
    // 20 ms, as the worker's own loop monitor: one more timer at a coarser
    // resolution than prom-client's default 10 ms.
    collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 20 });
  }
  return registry;
}

/** Starts the collectors (the event-loop and GC monitors run from then on). */
export function startRuntimeMetrics(): void {
  runtimeRegistry();
}

/** This process's runtime metrics as families. */
export async function runtimeFamilies(): Promise<Family[]> {
  const json = await runtimeRegistry().getMetricsAsJSON();
  return json.map((m) => ({
    name: m.name,
    help: m.help,
    type: String(m.type) as MetricType,
    samples: m.values.map((v): Sample => {
      const labels: Record<string, string> = {};
      for (const [k, lv] of Object.entries(v.labels ?? {})) if (lv !== undefined) labels[k] = String(lv);
      const name = (v as { metricName?: string }).metricName;
      return name !== undefined && name !== m.name ? { name, labels, value: v.value } : { labels, value: v.value };
    }),
  }));
}
