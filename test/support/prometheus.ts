/**
 * Starts a real Prometheus (Debian's `prometheus` package; .ci/run installs
 * it) for a test: a config scraping the given targets every `scrapeS`
 * seconds as job "sandbar", the given rule files, its own temp TSDB, the web
 * API on a free loopback port. Queries go through the HTTP API
 * (/api/v1/...), the way Grafana and a person read it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { freePort } from './ports.js';

export const PROMETHEUS = process.env.SANDBAR_PROMETHEUS ?? 'prometheus';
export const PROMTOOL = process.env.SANDBAR_PROMTOOL ?? 'promtool';

/** Fails loudly (a test that silently skipped would hide broken rules) when the binaries are missing. */
export function requireBinary(bin: string): void {
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new Error(`${bin} not found or not working (${r.error?.message ?? r.stderr}): install Debian's prometheus package (apt-get install -y prometheus; .ci/run does) or set SANDBAR_PROMETHEUS / SANDBAR_PROMTOOL`);
}

export interface Sample { metric: Record<string, string>; value: [number, string] }

export interface PrometheusHandle {
  readonly url: string;
  readonly proc: ChildProcess;
  /** An instant query; rejects when Prometheus answers an error. */
  query(expr: string): Promise<Sample[]>;
  /** GET /api/v1/<path> and its `data`. */
  api<T>(path: string): Promise<T>;
  stderr(): string;
  stop(): Promise<void>;
}

export async function startPrometheus(opts: { targets: string[]; ruleFiles?: string[]; scrapeS?: number }): Promise<PrometheusHandle> {
  requireBinary(PROMETHEUS);
  const dir = mkdtempSync(join(tmpdir(), 'sandbar-prometheus-'));
  const rules = (opts.ruleFiles ?? []).map((f) => { copyFileSync(f, join(dir, basename(f))); return basename(f); });
  const s = opts.scrapeS ?? 1;
  writeFileSync(join(dir, 'prometheus.yml'), [
    'global:', `  scrape_interval: ${s}s`, `  evaluation_interval: ${s}s`,
    ...(rules.length ? ['rule_files:', ...rules.map((r) => `  - ${r}`)] : []),
    'scrape_configs:', '  - job_name: sandbar', `    scrape_timeout: ${s}s`,
    '    static_configs:', `      - targets: [${opts.targets.map((t) => JSON.stringify(t)).join(', ')}]`, '',
  ].join('\n'));
  const port = await freePort();
  const proc = spawn(PROMETHEUS, [
    `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => { if (stderr.length < 50000) stderr += d.toString(); });
  const url = `http://127.0.0.1:${port}`;
  const api = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${url}/api/v1/${path}`);
    const body = await res.json() as { status: string; data: T; error?: string; errorType?: string };
    if (body.status !== 'success') throw new Error(`Prometheus ${path}: ${body.errorType}: ${body.error}`);
    return body.data;
  };
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 20000;
  for (;;) {
    if (proc.exitCode !== null) { await stop(); throw new Error(`prometheus exited ${proc.exitCode}: ${stderr}`); }
    const ok = await fetch(`${url}/-/ready`).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > deadline) { await stop(); throw new Error(`prometheus not ready within 20 s: ${stderr}`); }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url, proc, api, stop,
    stderr: () => stderr,
    query: (expr) => api<{ resultType: string; result: Sample[] }>(`query?query=${encodeURIComponent(expr)}`).then((d) => d.result),
  };
}

/** Polls `check` (every 500 ms) until it returns a value other than undefined, or fails after timeoutMs saying `what`. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 30000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
