/**
 * The metrics docs/operations.md documents, read from its tables under
 * "## Metrics": per worker and per host, each with its type and labels, and
 * the per-process runtime metrics it names. The tests check these against
 * the code (unit) and against a real Prometheus (integration).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface DocumentedMetric {
  readonly name: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  readonly labels: readonly string[];
  readonly per: 'worker' | 'host';
}

const OPERATIONS = join(import.meta.dirname, '../../docs/operations.md');

function metricsSection(): string {
  const text = readFileSync(OPERATIONS, 'utf8');
  const start = text.indexOf('\n## Metrics\n');
  if (start < 0) throw new Error('docs/operations.md has no "## Metrics" section');
  const end = text.indexOf('\n## ', start + 5);
  return text.slice(start, end < 0 ? undefined : end);
}

export function documentedMetrics(): DocumentedMetric[] {
  const section = metricsSection();
  const out: DocumentedMetric[] = [];
  let per: 'worker' | 'host' | null = null;
  for (const line of section.split('\n')) {
    if (line.startsWith('Per worker')) per = 'worker';
    else if (line.startsWith('Per host')) per = 'host';
    else if (line.startsWith('Per process')) per = null;
    const m = /^\| `([a-z_]+)` \| (counter|gauge|histogram) \|([^|]*)\|/.exec(line);
    if (!m || per === null) continue;
    const labels = [...m[3]!.matchAll(/`([a-z_]+)`/g)].map((l) => l[1]!);
    out.push({ name: m[1]!, type: m[2] as DocumentedMetric['type'], labels, per });
  }
  return out;
}

/** The process_* and nodejs_* names the "Per process" paragraph lists. */
export function documentedRuntimeMetrics(): string[] {
  const section = metricsSection();
  const para = section.slice(section.indexOf('Per process'));
  return [...new Set([...para.slice(0, para.indexOf('\n\n')).matchAll(/`((?:process|nodejs)_[a-z0-9_]+)`/g)].map((m) => m[1]!))];
}
