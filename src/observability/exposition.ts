/**
 * Metric families as plain data, and the Prometheus text exposition format
 * (version 0.0.4) they are written in.
 *
 * Each worker sends its families to the primary over IPC as this data; the
 * primary adds `host` and `worker` labels, merges the families of the same
 * name (every sample of a family must follow its one `# HELP` / `# TYPE`
 * pair) and renders the text. Nothing here is on a hot path: it runs once
 * per scrape.
 */
import type { Histogram } from './histogram.js';

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface Sample {
  /** The sample's own name when it is not the family's (`_bucket`, `_sum`, `_count` of a histogram). */
  readonly name?: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly samples: readonly Sample[];
}

/** The content type Prometheus expects for this format. */
export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** The samples of one histogram per label set: `_bucket` per bound and +Inf, `_sum`, `_count`. */
export function histogramFamily(name: string, help: string, series: readonly { labels: Readonly<Record<string, string>>; hist: Histogram }[]): Family {
  const samples: Sample[] = [];
  for (const { labels, hist } of series) {
    const cum = hist.cumulative();
    hist.boundsS.forEach((le, i) => samples.push({ name: `${name}_bucket`, labels: { ...labels, le: String(le) }, value: cum[i]! }));
    samples.push({ name: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: cum[cum.length - 1]! });
    samples.push({ name: `${name}_sum`, labels, value: hist.sumS });
    samples.push({ name: `${name}_count`, labels, value: hist.count });
  }
  return { name, help, type: 'histogram', samples };
}

/** The families with `labels` put first on every sample (a sample's own label of the same name wins). */
export function withLabels(families: readonly Family[], labels: Readonly<Record<string, string>>): Family[] {
  return families.map((f) => ({ ...f, samples: f.samples.map((s) => ({ ...s, labels: { ...labels, ...s.labels } })) }));
}

/**
 * One family per name, its samples in the order the lists give them. The
 * first list that names a family gives its help and type; a later family of
 * the same name and another type is a programming error and throws (the text
 * would be rejected by Prometheus as a whole).
 */
export function mergeFamilies(lists: readonly (readonly Family[])[]): Family[] {
  const byName = new Map<string, { name: string; help: string; type: MetricType; samples: Sample[] }>();
  for (const list of lists) {
    for (const f of list) {
      const seen = byName.get(f.name);
      if (!seen) byName.set(f.name, { name: f.name, help: f.help, type: f.type, samples: [...f.samples] });
      else if (seen.type !== f.type) throw new Error(`metric ${f.name} is a ${seen.type} and a ${f.type}`);
      else seen.samples.push(...f.samples);
    }
  }
  return [...byName.values()];
}

/** The text exposition of the families; families without samples are left out. */
export function renderText(families: readonly Family[]): string {
  const out: string[] = [];
  for (const f of families) {
    if (f.samples.length === 0) continue;
    if (!NAME.test(f.name)) throw new Error(`bad metric name ${JSON.stringify(f.name)}`);
    out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) out.push(`${s.name ?? f.name}${labelText(s.labels)} ${formatValue(s.value)}`);
  }
  return out.length === 0 ? '' : out.join('\n') + '\n';
}

function labelText(labels: Readonly<Record<string, string>>): string {
  const parts: string[] = [];
  for (const k in labels) {
    if (!LABEL.test(k)) throw new Error(`bad label name ${JSON.stringify(k)}`);
    parts.push(`${k}="${escapeLabel(labels[k]!)}"`);
  }
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}
