/**
 * The load fleet: P forked client processes (client.ts) that together open N
 * WebSocket sessions against one loopback URL, each from its own source
 * address 127.0.0.(2+childIndex) so no single address runs out of ephemeral
 * ports or pays for a long port search.
 *
 * Lifecycle: `Fleet.start()` forks and waits for every child, then starts the
 * ramp on all at once; `ramp()` resolves with what stopped it; `report()`
 * gathers counts and merges the children's connect-latency histograms;
 * `close()` closes every session and lets the children exit. Children are
 * SIGKILLed if this process exits first, and exit by themselves if it dies.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { build, decodeFromCompressedBase64, type Histogram } from 'hdr-histogram-js';
import type { ChildToParent, ClientConfig, ClientCounts, ClientReport, Mode, ParentToChild } from './protocol.js';

export const SESSIONS_PER_PROCESS = 15000;

export interface FleetOptions {
  readonly url: string;
  readonly sessions: number;
  /** Client processes; default ceil(sessions / 15000). At most 253 (one source address each). */
  readonly processes?: number;
  /** Connection attempts per second across the fleet; 0 = unlimited (bounded by `concurrency`). */
  readonly rate: number;
  /** Most handshakes in flight across the fleet. */
  readonly concurrency: number;
  readonly mode: Mode;
  readonly connectTimeoutMs: number;
  readonly heartbeatMs: number;
  readonly secret: string;
  readonly tokenTtlS: number;
  readonly userPrefix: string;
  /** Distinct user ids; session i uses user `${userPrefix}${i % users}`. Default: sessions. */
  readonly users?: number;
  /** phoenix: join `<topicKind>:<userId>`. Default: user. */
  readonly topicKind?: string;
  /** Module exporting mintToken(secret, userId, ttlS). Default: dist/src/auth/token.js. */
  readonly tokenModule?: string;
  readonly deflate: boolean;
  /** Source address of client process i: sourceAddresses[i % length]. Default: 127.0.0.(2+i). */
  readonly sourceAddresses?: readonly string[];
  /** The ramp stops (and `ramp()` resolves with 'deadline') this long after start. */
  readonly maxSeconds: number;
  /** The ramp stops when this many attempts failed across the fleet. */
  readonly maxFailures: number;
  readonly onProgress?: (p: FleetProgress) => void;
}

export type StopReason = 'target-reached' | 'all-attempted' | 'deadline' | 'errors' | 'child-exit' | 'fatal';

export interface FleetProgress {
  readonly elapsedS: number;
  readonly attempted: number;
  readonly opened: number;
  readonly open: number;
  readonly inFlight: number;
  readonly failedTotal: number;
}

export interface RampOutcome {
  readonly reason: StopReason;
  readonly detail: string;
}

export interface LatencySummary {
  readonly count: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly meanMs: number;
}

export interface FleetReport {
  readonly processes: number;
  readonly attempted: number;
  readonly opened: number;
  readonly open: number;
  readonly failedTotal: number;
  readonly failed: Record<string, number>;
  readonly closedByServer: Record<string, number>;
  /** From the first attempt anywhere to the last child's last settled attempt (or now, if not done). */
  readonly rampSeconds: number;
  /** opened / rampSeconds. */
  readonly connectRate: number;
  readonly latency: LatencySummary;
  readonly histogram: Histogram;
  /** CPU time of all client processes (µs) and their summed RSS. */
  readonly clientCpuMicros: number;
  readonly clientRssBytes: number;
  readonly heartbeatsSent: number;
  readonly perChild: readonly ClientCounts[];
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of live) c.kill('SIGKILL');
  });
}

function addInto(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

export function defaultTokenModule(): string {
  // dist/bench/load/fleet.js -> dist/src/auth/token.js
  return fileURLToPath(new URL('../../src/auth/token.js', import.meta.url));
}

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

export function formatReasons(r: Record<string, number>): string {
  const e = Object.entries(r).sort((a, b) => b[1] - a[1]);
  return e.length ? e.map(([k, v]) => `${k}=${v}`).join(' ') : 'none';
}

export class Fleet {
  readonly processes: number;
  private readonly children: ChildProcess[] = [];
  private readonly latest: ClientCounts[] = [];
  private readonly rampDone = new Set<number>();
  private readonly exited = new Map<number, string>();
  private closingAll = false;
  private fatal: string | undefined;
  private startedAt = 0;
  private nextReportId = 1;
  private readonly reportWaiters = new Map<number, { want: number; got: ClientReport[]; resolve: (r: ClientReport[]) => void }>();
  private wake: (() => void) | undefined;

  private constructor(readonly opts: FleetOptions) {
    const p = opts.processes ?? Math.max(1, Math.ceil(opts.sessions / SESSIONS_PER_PROCESS));
    if (p < 1 || p > 253) throw new Error(`processes must be 1..253 (one source address 127.0.0.2..254 each), got ${p}`);
    this.processes = Math.min(p, Math.max(1, opts.sessions));
  }

  static async start(opts: FleetOptions): Promise<Fleet> {
    const f = new Fleet(opts);
    await f.spawn();
    return f;
  }

  private async spawn(): Promise<void> {
    installExitHook();
    const script = fileURLToPath(new URL('./client.js', import.meta.url));
    const ready: Promise<void>[] = [];
    for (let i = 0; i < this.processes; i++) {
      const child = fork(script, [], {
        env: { ...process.env, BENCH_CHILD_INDEX: String(i) },
        execArgv: [],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        serialization: 'json',
      });
      live.add(child);
      this.children.push(child);
      ready.push(
        new Promise<void>((resolve, reject) => {
          const onMsg = (m: ChildToParent) => {
            if (m.t === 'ready') {
              child.off('message', onMsg);
              resolve();
            }
          };
          child.on('message', onMsg);
          child.once('exit', (code, sig) => reject(new Error(`client ${i} exited before ready (${code ?? sig})`)));
        }),
      );
      child.on('message', (m: ChildToParent) => this.onMessage(i, m));
      child.on('exit', (code, sig) => {
        live.delete(child);
        if (!this.closingAll) this.exited.set(i, `client ${i} exited (${code ?? sig})`);
        this.poke();
      });
    }
    await Promise.all(ready);
    const N = this.opts.sessions;
    const P = this.processes;
    const q = Math.floor(N / P);
    const r = N % P;
    this.startedAt = Date.now();
    for (let i = 0; i < P; i++) {
      const config: ClientConfig = {
        childIndex: i,
        url: this.opts.url,
        localAddress: this.opts.sourceAddresses?.length ? this.opts.sourceAddresses[i % this.opts.sourceAddresses.length]! : `127.0.0.${2 + i}`,
        mode: this.opts.mode,
        sessions: q + (i < r ? 1 : 0),
        firstIndex: i,
        stride: P,
        rate: this.opts.rate > 0 ? this.opts.rate / P : 0,
        concurrency: Math.max(1, Math.ceil(this.opts.concurrency / P)),
        connectTimeoutMs: this.opts.connectTimeoutMs,
        heartbeatMs: this.opts.heartbeatMs,
        secret: this.opts.secret,
        tokenTtlS: this.opts.tokenTtlS,
        userPrefix: this.opts.userPrefix,
        users: Math.max(1, this.opts.users ?? N),
        topicKind: this.opts.topicKind ?? 'user',
        tokenModule: this.opts.tokenModule ?? defaultTokenModule(),
        deflate: this.opts.deflate,
      };
      this.latest[i] = emptyCounts(i);
      this.sendTo(i, { t: 'start', config });
    }
  }

  private sendTo(i: number, m: ParentToChild): void {
    const c = this.children[i]!;
    if (c.connected) c.send(m);
  }

  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private onMessage(i: number, m: ChildToParent): void {
    switch (m.t) {
      case 'progress':
        this.latest[i] = m.counts;
        break;
      case 'ramp-done':
        this.latest[i] = m.counts;
        this.rampDone.add(i);
        this.poke();
        break;
      case 'fatal':
        this.fatal ??= `client ${i}: ${m.error}`;
        this.poke();
        break;
      case 'report': {
        const w = this.reportWaiters.get(m.id);
        if (w) {
          w.got.push(m.report);
          this.latest[i] = m.report;
          if (w.got.length === w.want) {
            this.reportWaiters.delete(m.id);
            w.resolve(w.got);
          }
        }
        break;
      }
      default:
        break;
    }
  }

  progress(): FleetProgress {
    let attempted = 0, opened = 0, open = 0, inFlight = 0, failedTotal = 0;
    for (const c of this.latest) {
      attempted += c.attempted;
      opened += c.opened;
      open += c.open;
      inFlight += c.inFlight;
      failedTotal += c.failedTotal;
    }
    return { elapsedS: (Date.now() - this.startedAt) / 1000, attempted, opened, open, inFlight, failedTotal };
  }

  /** Resolves when every child has attempted its share, or the deadline, failure limit, a child's death or a fatal error stops the ramp. */
  async ramp(): Promise<RampOutcome> {
    const deadlineAt = this.startedAt + this.opts.maxSeconds * 1000;
    let lastProgress = 0;
    for (;;) {
      const p = this.progress();
      if (this.opts.onProgress && Date.now() - lastProgress >= 1000) {
        lastProgress = Date.now();
        this.opts.onProgress(p);
      }
      let outcome: RampOutcome | undefined;
      if (this.fatal) outcome = { reason: 'fatal', detail: this.fatal };
      else if (this.exited.size) outcome = { reason: 'child-exit', detail: [...this.exited.values()].join('; ') };
      else if (p.failedTotal >= this.opts.maxFailures)
        outcome = { reason: 'errors', detail: `${p.failedTotal} failed attempts (limit ${this.opts.maxFailures})` };
      else if (this.rampDone.size === this.processes) {
        outcome = p.opened === this.opts.sessions
          ? { reason: 'target-reached', detail: `${p.opened} sessions open` }
          : { reason: 'all-attempted', detail: `${p.opened} of ${this.opts.sessions} opened, ${p.failedTotal} failed` };
      } else if (Date.now() >= deadlineAt)
        outcome = { reason: 'deadline', detail: `--max-seconds ${this.opts.maxSeconds} reached with ${p.opened} of ${this.opts.sessions} open` };
      if (outcome) {
        if (outcome.reason !== 'target-reached' && outcome.reason !== 'all-attempted') this.halt();
        return outcome;
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(() => this.poke(), 200);
      });
    }
  }

  /** Stop opening new sessions; those open stay open. */
  halt(): void {
    for (let i = 0; i < this.children.length; i++) this.sendTo(i, { t: 'halt' });
  }

  /** Counts and merged latency histogram from every live child (a dead child contributes its last progress counts, no latencies). */
  async report(timeoutMs = 10000): Promise<FleetReport> {
    const alive = this.children.map((c, i) => [c, i] as const).filter(([c]) => c.connected);
    const id = this.nextReportId++;
    const got = await new Promise<ClientReport[]>((resolve) => {
      const w = { want: alive.length, got: [] as ClientReport[], resolve };
      if (alive.length === 0) return resolve([]);
      this.reportWaiters.set(id, w);
      for (const [, i] of alive) this.sendTo(i, { t: 'report', id });
      setTimeout(() => {
        if (this.reportWaiters.delete(id)) resolve(w.got);
      }, timeoutMs).unref();
    });
    const merged = build({ numberOfSignificantValueDigits: 3 });
    for (const r of got) merged.add(decodeFromCompressedBase64(r.histogram));
    const failed: Record<string, number> = {};
    const closedByServer: Record<string, number> = {};
    let attempted = 0, opened = 0, open = 0, failedTotal = 0, cpu = 0, rss = 0, hb = 0;
    let first = Infinity, last = 0, allDone = true;
    for (const c of this.latest) {
      attempted += c.attempted;
      opened += c.opened;
      open += c.open;
      failedTotal += c.failedTotal;
      cpu += c.cpuMicros;
      rss += c.rssBytes;
      hb += c.heartbeatsSent;
      addInto(failed, c.failed);
      addInto(closedByServer, c.closedByServer);
      if (c.firstAttemptAt) first = Math.min(first, c.firstAttemptAt);
      if (c.rampDoneAt) last = Math.max(last, c.rampDoneAt);
      else allDone = false;
    }
    if (!allDone) last = Date.now();
    const rampSeconds = first === Infinity ? 0 : Math.max(0.001, (last - first) / 1000);
    return {
      processes: this.processes,
      attempted,
      opened,
      open,
      failedTotal,
      failed,
      closedByServer,
      rampSeconds,
      connectRate: rampSeconds ? opened / rampSeconds : 0,
      latency: summarize(merged),
      histogram: merged,
      clientCpuMicros: cpu,
      clientRssBytes: rss,
      heartbeatsSent: hb,
      perChild: [...this.latest],
    };
  }

  /** Closes every session (close 1000, then terminate after graceMs) and waits for the children to exit (killing stragglers). */
  async close(graceMs = 2000): Promise<void> {
    this.closingAll = true;
    const exits = this.children.map((c) =>
      c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => c.once('exit', () => r())),
    );
    for (let i = 0; i < this.children.length; i++) this.sendTo(i, { t: 'close', graceMs });
    const killTimer = setTimeout(() => this.kill(), graceMs + 3000);
    await Promise.all(exits);
    clearTimeout(killTimer);
  }

  kill(): void {
    this.closingAll = true;
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
}

function emptyCounts(childIndex: number): ClientCounts {
  return {
    childIndex, attempted: 0, opened: 0, open: 0, inFlight: 0, failed: {}, failedTotal: 0, closedByServer: {},
    heartbeatsSent: 0, framesReceived: 0, firstAttemptAt: 0, rampDoneAt: 0, cpuMicros: 0, rssBytes: 0,
  };
}
