/**
 * Server processes for the benches: spawn in their own process group, wait
 * for the `"msg":"host ready"` JSON line on stdout, read their CPU time from
 * /proc, and kill the whole group on stop or when this process exits.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, readdirSync, readFileSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { sleep } from './metrics.js';

let ticksPerSecond = 0;
/** USER_HZ, the unit of utime/stime in /proc/<pid>/stat. */
export function clockTicks(): number {
  if (!ticksPerSecond) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

interface StatLine { pid: number; ppid: number; ticks: number }

function readStat(pid: number): StatLine | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) is in parentheses and may hold spaces: split after the last ')'.
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state); ppid is field 4, utime 14, stime 15.
    return { pid, ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]) };
  } catch {
    return undefined;
  }
}

/** The pid and every live descendant of it. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStat(Number(name));
    if (!st) continue;
    const list = children.get(st.ppid);
    if (list) list.push(st.pid);
    else children.set(st.ppid, [st.pid]);
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length) {
    const p = stack.pop()!;
    out.push(p);
    for (const c of children.get(p) ?? []) stack.push(c);
  }
  return out;
}

/** utime + stime of the process tree under `root`, in µs (processes that already exited are not counted). */
export function treeCpuMicros(root: number): number {
  let ticks = 0;
  for (const pid of processTree(root)) ticks += readStat(pid)?.ticks ?? 0;
  return (ticks * 1e6) / clockTicks();
}

/** VmRSS of one process in bytes (0 if gone). */
export function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

export const GC_MARKER = 'BENCH_GC_PRELOAD=1';

/** Environment that preloads bench/lib/gc-preload.js (full GC on SIGUSR2) into every node process of a server. */
export function gcPreloadEnv(): Record<string, string> {
  const preload = new URL('./gc-preload.js', import.meta.url).href;
  const prior = process.env.NODE_OPTIONS ? `${process.env.NODE_OPTIONS} ` : '';
  return { NODE_OPTIONS: `${prior}--expose-gc --import=${preload}`, BENCH_GC_PRELOAD: '1' };
}

/**
 * Sends SIGUSR2 to every process of the tree under `root` that was started
 * with gcPreloadEnv() (checked in /proc/<pid>/environ, so no other process
 * ever gets a signal whose default action would kill it). Returns how many.
 */
export function gcTree(root: number): number {
  let n = 0;
  for (const pid of processTree(root)) {
    let env: string;
    try {
      env = readFileSync(`/proc/${pid}/environ`, 'latin1');
    } catch {
      continue;
    }
    if (!env.split('\0').includes(GC_MARKER)) continue;
    try {
      process.kill(pid, 'SIGUSR2');
      n++;
    } catch { /* exited */ }
  }
  return n;
}

const groups = new Set<number>();
let hook = false;
function installHook(): void {
  if (hook) return;
  hook = true;
  process.on('exit', () => {
    for (const pgid of groups) {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch { /* already gone */ }
    }
  });
}

export interface ServerHandle {
  readonly name: string;
  readonly pid: number;
  readonly proc: ChildProcess;
  /** From the ready line (0 where the caller reads it elsewhere). */
  readonly port: number;
  readonly logPath: string;
  stop(): Promise<void>;
}

export interface SpawnOptions {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly logPath: string;
  readonly readyTimeoutMs: number;
  /** When given, wait for a stdout JSON line with msg === this and a numeric port. */
  readonly readyMsg?: string;
  /** Extra environment variables (added to this process's environment). */
  readonly env?: Record<string, string>;
}

/** Spawns a server as the leader of a new process group, its stdout and stderr to logPath. */
export async function spawnServer(o: SpawnOptions): Promise<ServerHandle> {
  installHook();
  const log: WriteStream = createWriteStream(o.logPath);
  const proc = spawn(o.command, o.args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...o.env } });
  const pid = proc.pid;
  if (!pid) throw new Error(`${o.name}: spawn failed`);
  groups.add(pid);
  let tail = '';
  const keep = (s: string) => {
    tail = (tail + s).slice(-4000);
  };
  proc.stderr!.on('data', (d: Buffer) => {
    log.write(d);
    keep(d.toString());
  });
  let port = 0;
  let resolveReady: (() => void) | undefined;
  const ready = new Promise<void>((r) => (resolveReady = r));
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    log.write(line + '\n');
    keep(line + '\n');
    if (port || !o.readyMsg) return;
    if (!line.startsWith('{')) return;
    try {
      const j = JSON.parse(line) as { msg?: unknown; port?: unknown };
      if (j.msg === o.readyMsg && typeof j.port === 'number' && j.port > 0) {
        port = j.port;
        resolveReady?.();
      }
    } catch { /* not JSON */ }
  });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      try {
        process.kill(-pid, 'SIGTERM');
      } catch { /* gone */ }
      await Promise.race([exited, sleep(5000)]);
    }
    try {
      process.kill(-pid, 'SIGKILL');
    } catch { /* whole group gone */ }
    groups.delete(pid);
    await new Promise<void>((r) => log.end(() => r()));
  };
  if (o.readyMsg) {
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      ready.then(() => 'ready' as const),
      exited.then(() => 'exited' as const),
      new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), o.readyTimeoutMs))),
    ]);
    clearTimeout(timer);
    if (outcome !== 'ready') {
      await stop();
      throw new Error(`${o.name}: ${outcome === 'exited' ? `exited (${proc.exitCode ?? proc.signalCode})` : `no "${o.readyMsg}" line within ${o.readyTimeoutMs} ms`} before ready; log ${o.logPath}; last output:\n${tail}`);
    }
  }
  return { name: o.name, pid, proc, port, logPath: o.logPath, stop };
}

/** nats-server (`command`: a path, or the name on PATH) on an ephemeral loopback port; the port comes from its ports file. */
export async function startNats(dir: string, logPath: string, command = 'nats-server'): Promise<ServerHandle & { url: string }> {
  const h = await spawnServer({
    name: 'nats-server',
    command,
    // JetStream: Sandbar keeps shard ownership in a KV bucket.
    args: ['-a', '127.0.0.1', '-p', '-1', '--ports_file_dir', dir, '-js', '-sd', join(dir, 'js')],
    logPath,
    readyTimeoutMs: 0,
  });
  const deadline = Date.now() + 10000;
  for (;;) {
    if (h.proc.exitCode !== null) throw new Error(`nats-server exited ${h.proc.exitCode}; log ${logPath}`);
    const f = readdirSync(dir).find((n) => n.endsWith('.ports'));
    if (f) {
      try {
        const u = (JSON.parse(readFileSync(join(dir, f), 'utf8')) as { nats?: string[] }).nats?.[0];
        if (u) {
          const port = Number(new URL(u).port);
          return { ...h, port, url: `nats://127.0.0.1:${port}` };
        }
      } catch { /* partly written */ }
    }
    if (Date.now() > deadline) {
      await h.stop();
      throw new Error(`nats-server wrote no ports file in 10 s; log ${logPath}`);
    }
    await sleep(20);
  }
}
