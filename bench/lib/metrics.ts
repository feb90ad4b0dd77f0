/**
 * Reads the per-worker memory and session gauges that both Sandbar and the
 * ws peer serve on `GET /metrics` (Prometheus text format), one line per
 * worker, aggregated across workers by the primary:
 *
 *   nodejs_heap_size_used_bytes{worker="<i>"} <bytes>
 *   process_resident_memory_bytes{worker="<i>"} <bytes>
 *   sandbar_sessions{worker="<i>"} <count>
 *
 * (Sandbar's /metrics is on its internal listener: the benches start it with
 * --admin.listener=public so it is on the one port.) The primary's own
 * series (worker="primary"), other metrics, other labels, comments and an
 * optional timestamp after the value are ignored.
 */
import http from 'node:http';

export const HEAP = 'nodejs_heap_size_used_bytes';
export const RSS = 'process_resident_memory_bytes';
export const SESSIONS = 'sandbar_sessions';

export interface WorkerMetrics {
  readonly worker: string;
  readonly heapUsed: number;
  readonly rss: number;
  readonly sessions: number;
}

export interface MetricsSnapshot {
  /** Date.now() when the response arrived. */
  readonly at: number;
  readonly workers: readonly WorkerMetrics[];
  /** Sums over workers. */
  readonly heapUsed: number;
  readonly rss: number;
  readonly sessions: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** name -> worker label -> value, for the three gauges above. */
export function parseWorkerGauges(text: string): Map<string, Map<string, number>> {
  const out = new Map<string, Map<string, number>>([[HEAP, new Map()], [RSS, new Map()], [SESSIONS, new Map()]]);
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const byWorker = out.get(m[1]!);
    if (!byWorker) continue;
    let worker = '';
    for (const l of (m[2] ?? '').matchAll(LABEL)) if (l[1] === 'worker') worker = l[2]!;
    if (worker === 'primary') continue;
    const v = Number(m[3]);
    if (Number.isFinite(v)) byWorker.set(worker, v);
  }
  return out;
}

export function snapshotFrom(text: string, at = Date.now()): MetricsSnapshot {
  const g = parseWorkerGauges(text);
  const ids = new Set<string>();
  for (const m of g.values()) for (const k of m.keys()) ids.add(k);
  const workers = [...ids]
    .sort((a, b) => Number(a) - Number(b) || a.localeCompare(b))
    .map((w) => ({ worker: w, heapUsed: g.get(HEAP)!.get(w) ?? 0, rss: g.get(RSS)!.get(w) ?? 0, sessions: g.get(SESSIONS)!.get(w) ?? 0 }));
  const sum = (k: 'heapUsed' | 'rss' | 'sessions') => workers.reduce((a, w) => a + w[k], 0);
  return { at, workers, heapUsed: sum('heapUsed'), rss: sum('rss'), sessions: sum('sessions') };
}

export function fetchText(port: number, path: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`GET ${path}: HTTP ${res.statusCode}: ${body.slice(0, 200)}`))));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

export async function readMetrics(port: number): Promise<MetricsSnapshot> {
  const snap = snapshotFrom(await fetchText(port, '/metrics'));
  if (snap.workers.length === 0) throw new Error(`GET /metrics on port ${port} has no ${HEAP}/${RSS}/${SESSIONS} lines with a worker label`);
  return snap;
}

function within(a: number, b: number, frac: number): boolean {
  const base = Math.max(Math.abs(a), Math.abs(b));
  return base === 0 || Math.abs(a - b) <= frac * base;
}

export interface SettleResult {
  readonly snapshot: MetricsSnapshot;
  readonly settled: boolean;
  readonly waitedS: number;
  readonly readings: number;
}

/**
 * Polls /metrics until two consecutive readings at least `intervalMs` apart
 * agree within `tolerance` on summed heap and RSS (and on the session count),
 * (and, with `expectSessions`, the session count equals it), or `maxMs`
 * passes; returns the later reading.
 */
export async function waitSettled(port: number, opts: { intervalMs?: number; tolerance?: number; maxMs: number; minMs?: number; expectSessions?: number }): Promise<SettleResult> {
  const intervalMs = opts.intervalMs ?? 1000;
  const tolerance = opts.tolerance ?? 0.02;
  const t0 = Date.now();
  if (opts.minMs) await sleep(opts.minMs);
  let prev = await readMetrics(port);
  let readings = 1;
  for (;;) {
    await sleep(Math.max(0, intervalMs - (Date.now() - prev.at)));
    const cur = await readMetrics(port);
    readings++;
    const ok = within(prev.heapUsed, cur.heapUsed, tolerance) && within(prev.rss, cur.rss, tolerance) && prev.sessions === cur.sessions && (opts.expectSessions === undefined || cur.sessions === opts.expectSessions);
    if (ok || Date.now() - t0 >= opts.maxMs) return { snapshot: cur, settled: ok, waitedS: (Date.now() - t0) / 1000, readings };
    prev = cur;
  }
}

/** Polls /metrics until the summed session count equals `expect` (or maxMs passes); returns the last reading. */
export async function waitSessions(port: number, expect: number, maxMs: number): Promise<MetricsSnapshot> {
  const t0 = Date.now();
  for (;;) {
    const s = await readMetrics(port);
    if (s.sessions === expect || Date.now() - t0 >= maxMs) return s;
    await sleep(200);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
