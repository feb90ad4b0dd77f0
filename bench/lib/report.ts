/**
 * The one report shape of the benches and what builds it: latency summaries
 * from HDR histograms (merged across client processes), counts by reason,
 * medians and paired ratios over repeats, a plain-text table, and the end of
 * every bench's output: the table and notes, the raw runs as JSON (--json),
 * and one `SUMMARY <bench> ...` line last, which bench/compare.ts and people
 * grep for.
 */
import { writeFileSync } from 'node:fs';
import { build, decodeFromCompressedBase64, type Histogram } from 'hdr-histogram-js';

export interface LatencySummary {
  readonly count: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly meanMs: number;
}

/** p50/p90/p99/max/mean in ms of a histogram recorded in µs. */
export function summarize(h: Histogram): LatencySummary {
  const ms = (us: number) => Math.round(us / 10) / 100;
  return {
    count: h.totalCount,
    p50Ms: ms(h.getValueAtPercentile(50)),
    p90Ms: ms(h.getValueAtPercentile(90)),
    p99Ms: ms(h.getValueAtPercentile(99)),
    maxMs: ms(h.maxValue),
    meanMs: h.totalCount ? ms(h.mean) : 0,
  };
}

/** Histograms sent over IPC (hdr-histogram-js compressed base64), merged into one. */
export function mergeHistograms(encoded: readonly string[]): Histogram {
  const h = build({ numberOfSignificantValueDigits: 3 });
  for (const e of encoded) h.add(decodeFromCompressedBase64(e));
  return h;
}

/** Adds counts by reason into `into`. */
export function addInto(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

/** Sums each numeric field in `nums` over the client processes' reports. */
export function sumFields<N extends string, T extends Record<N, number>>(items: readonly T[], nums: readonly N[]): Record<N, number> {
  const out = {} as Record<N, number>;
  for (const k of nums) {
    let sum = 0;
    for (const x of items) sum += x[k] as number;
    out[k] = sum;
  }
  return out;
}

/** Sums the client processes' reports: each numeric field in `nums`, and each by-reason count in `counts` (merged key by key). */
export function sumReports<N extends string, C extends string, T extends Record<N, number> & Record<C, Record<string, number>>>(items: readonly T[], nums: readonly N[], counts: readonly C[]): Record<N, number> & Record<C, Record<string, number>> {
  const out = sumFields(items, nums) as Record<N, number> & Record<C, Record<string, number>>;
  for (const k of counts) {
    const into: Record<string, number> = {};
    for (const x of items) addInto(into, x[k]);
    (out as Record<C, Record<string, number>>)[k] = into;
  }
  return out;
}

/** Counts by reason, most first: "timeout=3 503=1", or "none". */
export function formatReasons(r: Record<string, number>): string {
  const e = Object.entries(r).sort((a, b) => b[1] - a[1]);
  return e.length ? e.map(([k, v]) => `${k}=${v}`).join(' ') : 'none';
}

export function median(xs: readonly number[]): number | undefined {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return undefined;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1]! + v[m]!) / 2;
}

/** A ratio for a table: x1.23, or - when there is none. */
export const times = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '-' : `x${x.toFixed(2)}`);

/** A figure for a table: fixed to `d` decimals, or - when there is none. */
export const num = (x: number | undefined, d = 0): string => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));

/** What pairedRatio needs of a run: which target, which repeat, and a variant where the bench has them (dm --persistence). */
export interface PairedRun { readonly target: string; readonly repeat: number; readonly error?: string; readonly variant?: string }

/**
 * Median over repeats of a_r / b_r: each run of target a (variant va) is
 * paired with the run of target b (variant vb) of the same repeat; runs that
 * failed or have no positive figure are left out.
 */
export function pairedRatio<R extends PairedRun>(runs: readonly R[], a: string, b: string, f: (r: R) => number | undefined, va?: string, vb?: string): number | undefined {
  const out: number[] = [];
  for (const x of runs.filter((r) => r.target === a && r.variant === va && !r.error)) {
    const y = runs.find((r) => r.target === b && r.variant === vb && r.repeat === x.repeat && !r.error);
    const u = f(x);
    const v = y ? f(y) : undefined;
    if (u !== undefined && v !== undefined && u > 0 && v > 0) out.push(u / v);
  }
  return median(out);
}

/** Left-aligned first `left` columns, right-aligned others. */
export function table(headers: string[], body: string[][], left = 1): string {
  const w = headers.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < left ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  return [line(headers), line(w.map((x) => '-'.repeat(x))), ...body.map(line)].join('\n');
}

export function log(msg: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

/**
 * What a bench reports: medians per target, ratios between targets, the
 * human-readable text (table and notes) and the one SUMMARY line.
 */
export interface BenchReport<PerTarget = unknown, Ratios = unknown> {
  readonly perTarget: PerTarget;
  readonly ratios: Ratios;
  readonly text: string;
  readonly summary: string;
}

/**
 * Prints a bench's end: its report's text, why it stopped early (if it
 * did), the raw runs to `jsonPath` (with the settings, less the secret),
 * and the SUMMARY line last.
 */
export function printReport(o: {
  readonly report: BenchReport;
  readonly runs: readonly unknown[];
  readonly startedAt: Date;
  readonly settings: object;
  readonly jsonPath?: string;
  readonly stoppedEarly?: string;
}): void {
  console.log('');
  console.log(o.report.text);
  if (o.stoppedEarly) console.log(`\nstopped early: ${o.stoppedEarly}`);
  if (o.jsonPath) {
    writeFileSync(o.jsonPath, JSON.stringify({
      startedAt: o.startedAt.toISOString(), argv: process.argv.slice(2), settings: { ...o.settings, secret: undefined }, runs: o.runs,
      summary: { perTarget: o.report.perTarget, ratios: o.report.ratios },
    }, null, 2));
    console.log(`\nraw results: ${o.jsonPath}`);
  }
  console.log(`\n${o.report.summary}`);
}
