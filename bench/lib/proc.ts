/**
 * What the benches read of their servers' processes in /proc: the process
 * tree under a pid, its CPU time and RSS, and a full GC on demand in the
 * processes started with gcPreloadEnv(). Starting and stopping the servers
 * is bench/lib/servers.ts.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

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
