/**
 * What this machine allows the scale run (bench/scale.ts): cores, memory,
 * the open-files limit every process inherits, the ephemeral port range,
 * which loopback source addresses can be bound, and the conntrack table, all
 * read from /proc and by trying; then the plan (workers, client processes,
 * sessions per process) that fits them.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism, totalmem } from 'node:os';

export interface MachineLimits {
  readonly cores: number;
  readonly memTotalBytes: number;
  readonly memAvailableBytes: number;
  /** Soft and hard RLIMIT_NOFILE of this process (children inherit the soft one). */
  readonly fdSoft: number;
  readonly fdHard: number;
  /** net.ipv4.ip_local_port_range: connections one source address can open to one destination. */
  readonly portsPerAddress: number;
  /** nf_conntrack_max and _count when the conntrack module is loaded (a loopback connection takes an entry only when a rule asks for tracking). */
  readonly conntrackMax: number | undefined;
  readonly conntrackCount: number | undefined;
  /** fs.file-max minus the files open now (fs/file-nr): files the whole machine can still open; each loopback session takes two. */
  readonly filesLeft: number | undefined;
}

export function readNumber(path: string): number | undefined {
  try {
    const n = Number(readFileSync(path, 'utf8').trim().split(/\s+/)[0]);
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/** MemAvailable from /proc/meminfo in bytes (total memory if unreadable). */
export function memAvailableBytes(): number {
  try {
    const m = /MemAvailable:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch { /* not Linux */ }
  return totalmem();
}

function fdLimits(): { soft: number; hard: number } {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const m = line ? /Max open files\s+(\S+)\s+(\S+)/.exec(line) : null;
    if (m) {
      const v = (s: string) => (s === 'unlimited' ? 1 << 30 : Number(s));
      return { soft: v(m[1]!), hard: v(m[2]!) };
    }
  } catch { /* not Linux */ }
  return { soft: 1024, hard: 1024 };
}

function filesLeft(): number | undefined {
  const max = readNumber('/proc/sys/fs/file-max');
  const open = readNumber('/proc/sys/fs/file-nr');
  return max === undefined ? undefined : Math.max(0, max - (open ?? 0));
}

export function readLimits(): MachineLimits {
  const fd = fdLimits();
  let ports = 28232;
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (lo && hi && hi > lo) ports = hi - lo + 1;
  } catch { /* keep the Linux default */ }
  return {
    cores: availableParallelism(),
    memTotalBytes: totalmem(),
    memAvailableBytes: memAvailableBytes(),
    fdSoft: fd.soft,
    fdHard: fd.hard,
    portsPerAddress: ports,
    conntrackMax: readNumber('/proc/sys/net/netfilter/nf_conntrack_max'),
    conntrackCount: readNumber('/proc/sys/net/netfilter/nf_conntrack_count'),
    filesLeft: filesLeft(),
  };
}

/** Source addresses 127.0.0.(2+i), i < n, that refused a bind (listen on port 0 and close again); n = 0 tries 127.0.0.1 alone. */
export async function unbindableAddresses(n: number): Promise<string[]> {
  if (n === 0) return unbindable(['127.0.0.1']);
  return unbindable(Array.from({ length: n }, (_, i) => `127.0.0.${2 + i}`));
}

async function unbindable(hosts: string[]): Promise<string[]> {
  const tryOne = (host: string) =>
    new Promise<string | undefined>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(host));
      s.listen({ host, port: 0, exclusive: true }, () => s.close(() => resolve(undefined)));
    });
  const out = await Promise.all(hosts.map(tryOne));
  return out.filter((x): x is string => x !== undefined);
}

/** `/proc/net/sockstat` TCP line ("inuse … orphan … tw … alloc … mem …"), for the record. */
export function tcpSockstat(): string {
  try {
    return /TCP: (.*)/.exec(readFileSync('/proc/net/sockstat', 'utf8'))?.[1] ?? '';
  } catch {
    return '';
  }
}

export interface PlanInput {
  readonly target: number;
  readonly workers?: number;
  readonly clients?: number;
  /** Most sessions one process (server worker or client) holds. */
  readonly perProcess?: number;
}

export interface Plan {
  readonly target: number;
  readonly workers: number;
  readonly clients: number;
  readonly perProcess: number;
  /** Memory the plan expects to need, and what that estimate assumes. */
  readonly memNeededBytes: number;
  /** Why the target was lowered, if it was. */
  readonly cut: string | undefined;
  readonly warnings: readonly string[];
}

/**
 * Per-session and per-process memory assumed for the plan: measured on the
 * 2-core machine (docs/benchmarks.md: 5–7 KiB server RSS per idle `user:`
 * session, plus the user actor's master and replica; 9.2 KiB over baseline
 * in a 20,000-session scale run), rounded up; a client connection of the
 * fleet measured about 13 KiB in the same run.
 */
const SERVER_BYTES_PER_SESSION = 12 * 1024;
const CLIENT_BYTES_PER_SESSION = 14 * 1024;
const BYTES_PER_PROCESS = 90 * 2 ** 20;
/** Files a process needs besides its sessions (stdio, IPC, NATS, listeners, epoll, libuv's spare fd). */
const FD_RESERVE = 1000;
/** Client processes get one source address each: 127.0.0.2 .. 127.0.0.254. */
export const MAX_CLIENTS = 253;

export function plan(lim: MachineLimits, want: PlanInput): Plan {
  // Each process keeps a quarter of its files spare: a worker gets a little more than its share under rr (a restart, a slow worker), and the kernel needs room.
  const perProcess = Math.max(100, Math.min(want.perProcess ?? 15000, Math.floor((lim.fdSoft - FD_RESERVE) * 0.8), Math.floor(lim.portsPerAddress * 0.9)));
  let target = want.target;
  let cut: string | undefined;
  const maxClients = Math.min(want.clients ?? MAX_CLIENTS, MAX_CLIENTS);
  if (target > maxClients * perProcess) {
    target = maxClients * perProcess;
    cut = `source addresses: ${maxClients} client processes x ${perProcess} sessions (fd limit ${lim.fdSoft}, ports ${lim.portsPerAddress} per address)`;
  }
  if (lim.filesLeft !== undefined && target * 2 > lim.filesLeft * 0.9) {
    target = Math.floor((lim.filesLeft * 0.9) / 2);
    cut = `fs.file-max: ${lim.filesLeft} files left on the machine, two per loopback session`;
  }
  const need = (n: number, w: number, c: number) => n * (SERVER_BYTES_PER_SESSION + CLIENT_BYTES_PER_SESSION) + (w + c + 2) * BYTES_PER_PROCESS;
  const memBudget = lim.memAvailableBytes * 0.8;
  const count = (n: number) => ({
    workers: want.workers ?? Math.max(1, Math.ceil(n / perProcess)),
    clients: Math.min(maxClients, want.clients ?? Math.max(1, Math.ceil(n / perProcess))),
  });
  let c = count(target);
  if (need(target, c.workers, c.clients) > memBudget) {
    const perSession = SERVER_BYTES_PER_SESSION + CLIENT_BYTES_PER_SESSION + (2 * BYTES_PER_PROCESS) / perProcess;
    target = Math.max(1000, Math.floor((memBudget - 2 * BYTES_PER_PROCESS) / perSession));
    c = count(target);
    cut = `memory: ${(lim.memAvailableBytes / 2 ** 30).toFixed(1)} GiB available, planned at ${((SERVER_BYTES_PER_SESSION + CLIENT_BYTES_PER_SESSION) / 1024).toFixed(0)} KiB per session (server + client) and ${BYTES_PER_PROCESS / 2 ** 20} MiB per process`;
  }
  const warnings: string[] = [];
  if (Math.ceil(target / c.workers) > perProcess) warnings.push(`${Math.ceil(target / c.workers)} sessions per worker passes ${perProcess} (fd limit ${lim.fdSoft})`);
  if (Math.ceil(target / c.clients) > perProcess) warnings.push(`${Math.ceil(target / c.clients)} sessions per client process passes ${perProcess} (fd limit ${lim.fdSoft})`);
  // Loopback connections take conntrack entries only when a netfilter rule asks for tracking (the count stays 0 otherwise); the run watches the count.
  if (lim.conntrackMax !== undefined && (lim.conntrackCount ?? 0) > 0 && target > lim.conntrackMax * 0.9)
    warnings.push(`conntrack is tracking connections (nf_conntrack_count=${lim.conntrackCount}) and nf_conntrack_max=${lim.conntrackMax} is below the target: new connections will be dropped past it`);
  if (c.workers + c.clients > lim.cores * 12) warnings.push(`${c.workers + c.clients} node processes on ${lim.cores} cores: the ramp will be CPU-bound`);
  return { target, workers: c.workers, clients: c.clients, perProcess, memNeededBytes: need(target, c.workers, c.clients), cut, warnings };
}
