/**
 * Starts a real Sandbar host (compiled: `node dist/src/main.js start`) for an
 * integration test and follows its pino log lines, so tests wait on events
 * ("host ready", "worker listening") instead of sleeping.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, mkdtempSync, rmSync, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { mintToken } from '../../src/auth/token.js';

export const MAIN = join(import.meta.dirname, '../../dist/src/main.js');
export const SECRET = 'test-secret';

export type LogLine = Record<string, unknown> & { msg?: string; level?: number; worker?: number | 'primary'; pid?: number };

export interface HostHandle {
  readonly proc: ChildProcess;
  readonly port: number;
  /** The internal listener's port (/metrics, /cluster): from "host ready"; equal to port with admin.listener = "public". */
  readonly adminPort: number;
  readonly url: string;
  readonly lines: LogLine[];
  /** stderr text (config errors, warnings). */
  stderr(): string;
  /** Resolves with the first log line (already seen or future) matching pred. */
  waitFor(pred: (l: LogLine) => boolean, timeoutMs?: number, from?: number): Promise<LogLine>;
  /** pid of each worker index, from the latest "worker listening" line. */
  workerPids(): Map<number, number>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): void;
  /** kill -9 of the whole host: primary, workers and anything else in its process group. */
  killHost(): void;
  stop(): Promise<void>;
}

export interface HostOptions {
  nats: string;
  workers?: number;
  /** Extra `--key=value` flags. */
  flags?: Record<string, string | number | boolean>;
  env?: Record<string, string>;
  /** Resolve as soon as the process started, without waiting for "host ready". */
  noWait?: boolean;
  /** Command prefix, e.g. ['ip', 'netns', 'exec', name] (it must exec, keeping the pid). */
  wrap?: string[];
  /** Address clients reach the host on (default 127.0.0.1). */
  reachHost?: string;
}

/** Debugging an intermittent failure: SANDBAR__TEST_LOG_DIR=<dir> keeps every test host's log there, one file per process. */
export function keptLog(name: string, pid: number | undefined): WriteStream | null {
  const dir = process.env.SANDBAR__TEST_LOG_DIR;
  return dir ? createWriteStream(join(dir, `${name}-${pid}.log`)) : null;
}

export function token(userId: string, ttlS = 3600): string {
  return mintToken(SECRET, userId, ttlS);
}

export function spawnSandbar(args: string[], env: Record<string, string> = {}, detached = false, wrap: string[] = []): ChildProcess {
  const cmd = [...wrap, process.execPath, MAIN, ...args];
  return spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env }, detached });
}

export async function startHost(opts: HostOptions): Promise<HostHandle> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sandbar-host-'));
  const flags: Record<string, string | number | boolean> = {
    'http.host': '127.0.0.1',
    'http.port': 0,
    // Every test host gets its own internal listener port (the default, 4001, is one per machine).
    'admin.port': 0,
    'cluster.workers': opts.workers ?? 2,
    'nats.servers': opts.nats,
    'nats.embedded': false,
    'auth.secret': SECRET,
    // Rooms open to any signed-in user, as before room authorization (the default is deny); auth tests set their own.
    'authz.default': 'public',
    dataDir,
    hostId: 'h1',
    ...opts.flags,
  };
  const args = ['start', ...Object.entries(flags).map(([k, v]) => `--${k}=${v}`)];
  // Its own process group, so a test can kill -9 the whole host (primary and workers).
  const proc = spawnSandbar(args, opts.env, true, opts.wrap);
  const lines: LogLine[] = [];
  const waiters = new Set<{ pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }>();
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => { if (stderr.length < 100000) stderr += d.toString(); });
  const keep = keptLog(String(flags.hostId), proc.pid);
  createInterface({ input: proc.stdout! }).on('close', () => keep?.end()).on('line', (text) => {
    keep?.write(text + '\n');
    let l: LogLine;
    try { l = JSON.parse(text) as LogLine; } catch { return; }
    lines.push(l);
    for (const w of waiters) if (w.pred(l)) { waiters.delete(w); w.resolve(l); }
  });
  const exit = once(proc, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
  const waitFor = (pred: (l: LogLine) => boolean, timeoutMs = 15000, from = 0): Promise<LogLine> => {
    const seen = lines.slice(from).find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve: (l: LogLine) => { clearTimeout(t); resolve(l); } };
      const t = setTimeout(() => { waiters.delete(w); reject(new Error(`timed out waiting for a log line; stderr: ${stderr.slice(-2000)}`)); }, timeoutMs);
      waiters.add(w);
      void exit.then(() => setTimeout(() => { if (waiters.delete(w)) { clearTimeout(t); reject(new Error(`host exited before the awaited log line; stderr: ${stderr.slice(-2000)}`)); } }, 50));
    });
  };
  let port = 0;
  let adminPort = 0;
  if (!opts.noWait) {
    let ready: LogLine;
    try {
      ready = await waitFor((l) => l.msg === 'host ready', 20000);
    } catch (err) {
      // The caller never gets a handle to stop: a host that was slow to start
      // would outlive the test (seen under load), so it goes now.
      try { if (proc.pid) process.kill(-proc.pid, 'SIGKILL'); } catch { /* gone */ }
      rmSync(dataDir, { recursive: true, force: true });
      throw err;
    }
    port = ready.port as number;
    adminPort = (ready.adminPort as number | null) ?? port;
  }
  const handle: HostHandle = {
    proc,
    port,
    adminPort,
    url: `ws://${opts.reachHost ?? '127.0.0.1'}:${port}`,
    lines,
    stderr: () => stderr,
    waitFor,
    workerPids() {
      const m = new Map<number, number>();
      for (const l of lines) if (l.msg === 'worker listening' && typeof l.worker === 'number') m.set(l.worker, l.pid as number);
      return m;
    },
    exit,
    kill(signal = 'SIGTERM') { proc.kill(signal); },
    killHost() { if (proc.pid) process.kill(-proc.pid, 'SIGKILL'); },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 15000);
        await exit;
        clearTimeout(t);
      }
      // Whatever is left of the group (workers of a killed primary).
      try { if (proc.pid) process.kill(-proc.pid, 'SIGKILL'); } catch { /* gone */ }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return handle;
}
