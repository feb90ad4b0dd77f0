/**
 * Starts a real Sandbar host from a configuration file, the way an operator
 * (or sandbar.service) does: `node dist/src/main.js start --config <file>`,
 * no flags. Follows its pino log lines like test/helpers/host.ts, so a test
 * waits on "host ready" instead of sleeping.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { basename } from 'node:path';
import { MAIN, keptLog, type LogLine } from './host.js';

export interface ConfigHostHandle {
  readonly proc: ChildProcess;
  readonly config: string;
  /** Every JSON log line so far, in order. */
  readonly lines: LogLine[];
  /** The HTTP port from the "host ready" line (0 until then). */
  port: number;
  /** The internal listener's port from the "host ready" line (0 until then; port with admin.listener = "public"). */
  adminPort: number;
  stderr(): string;
  /** Resolves with the first log line (already seen, from index `from`, or future) matching pred. */
  waitFor(pred: (l: LogLine) => boolean, timeoutMs?: number, from?: number): Promise<LogLine>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM (a graceful stop), SIGKILL of what is left after timeoutMs, and of the process group. */
  stop(timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Spawns `sandbar start --config <config>` in its own process group and, unless
 * `noWait`, waits for "host ready". `env` is added to this process's
 * environment (after removing any inherited SANDBAR_* variable, so that only
 * the file and `env` configure the host). The internal listener gets a free
 * port (SANDBAR_ADMIN_PORT=0) unless `env` says otherwise: several test hosts
 * share this machine, and the files' default, 4001, is one per machine.
 */
export async function startHostFromConfig(config: string, opts: { env?: Record<string, string>; readyTimeoutMs?: number; noWait?: boolean } = {}): Promise<ConfigHostHandle> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('SANDBAR_')) env[k] = v;
  env.SANDBAR_ADMIN_PORT = '0';
  Object.assign(env, opts.env ?? {});
  const proc = spawn(process.execPath, [MAIN, 'start', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'], env, detached: true });
  const lines: LogLine[] = [];
  const waiters = new Set<{ pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }>();
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => { if (stderr.length < 100000) stderr += d.toString(); });
  const keep = keptLog(basename(config, '.toml'), proc.pid);
  createInterface({ input: proc.stdout! }).on('close', () => keep?.end()).on('line', (text) => {
    keep?.write(text + '\n');
    let l: LogLine;
    try { l = JSON.parse(text) as LogLine; } catch { return; }
    lines.push(l);
    for (const w of waiters) if (w.pred(l)) { waiters.delete(w); w.resolve(l); }
  });
  const exit = once(proc, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
  const running = () => proc.exitCode === null && proc.signalCode === null;
  const waitFor = (pred: (l: LogLine) => boolean, timeoutMs = 15000, from = 0): Promise<LogLine> => {
    const seen = lines.slice(from).find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve: (l: LogLine) => { clearTimeout(t); resolve(l); } };
      const t = setTimeout(() => { waiters.delete(w); reject(new Error(`${config}: timed out waiting for a log line; stderr: ${stderr.slice(-2000)}`)); }, timeoutMs);
      waiters.add(w);
      void exit.then(({ code, signal }) => setTimeout(() => { if (waiters.delete(w)) { clearTimeout(t); reject(new Error(`${config}: host exited (${signal ?? `code ${code}`}) before the awaited log line; stderr: ${stderr.slice(-2000)}`)); } }, 50));
    });
  };
  const handle: ConfigHostHandle = {
    proc,
    config,
    lines,
    port: 0,
    adminPort: 0,
    stderr: () => stderr,
    waitFor,
    exit,
    async stop(timeoutMs = 15000) {
      if (running()) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => { if (running()) proc.kill('SIGKILL'); }, timeoutMs);
        await exit;
        clearTimeout(t);
      }
      // Whatever is left of the group (workers of a killed primary).
      try { if (proc.pid) process.kill(-proc.pid, 'SIGKILL'); } catch { /* gone */ }
      return exit;
    },
  };
  if (!opts.noWait) {
    try {
      const ready = await waitFor((l) => l.msg === 'host ready', opts.readyTimeoutMs ?? 30000);
      handle.port = ready.port as number;
      handle.adminPort = (ready.adminPort as number | null) ?? handle.port;
    } catch (err) {
      await handle.stop(2000);
      throw err;
    }
  }
  return handle;
}
