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
import { fileURLToPath } from 'node:url';
import type { Histogram } from 'hdr-histogram-js';
import { ChildFleet, sourceAddress } from '../lib/child-fleet.js';
import { mergeHistograms, summarize, sumFields, sumReports, type LatencySummary } from '../lib/report.js';
import type { ChildToParent, ClientConfig, ClientCounts, Mode, ParentToChild } from './protocol.js';


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

export function defaultTokenModule(): string {
  // dist/bench/load/fleet.js -> dist/src/auth/token.js
  return fileURLToPath(new URL('../../src/auth/token.js', import.meta.url));
}

export class Fleet {
  readonly processes: number;
  private fleet!: ChildFleet<ParentToChild, ChildToParent>;
  private readonly latest: ClientCounts[] = [];
  private readonly rampDone = new Set<number>();
  private stopped: RampOutcome | undefined;
  private startedAt = 0;
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
    this.fleet = await ChildFleet.start<ParentToChild, ChildToParent>({
      script: fileURLToPath(new URL('./client.js', import.meta.url)),
      n: this.processes,
      env: (i) => ({ BENCH_CHILD_INDEX: String(i) }),
      onEvent: (i, m) => this.onEvent(i, m),
      onFailure: (kind, why) => {
        this.stopped ??= { reason: kind === 'fatal' ? 'fatal' : 'child-exit', detail: why };
        this.poke();
      },
    });
    const N = this.opts.sessions;
    const P = this.processes;
    const q = Math.floor(N / P);
    const r = N % P;
    this.startedAt = Date.now();
    // Every child starts its ramp at once, once all are ready.
    for (let i = 0; i < P; i++) {
      const config: ClientConfig = {
        childIndex: i,
        url: this.opts.url,
        localAddress: sourceAddress(i, this.opts.sourceAddresses),
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
      this.fleet.send(i, { t: 'start', config });
    }
  }

  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private onEvent(i: number, m: ChildToParent): void {
    if (m.t === 'progress') this.latest[i] = m.counts;
    else if (m.t === 'ramp-done') {
      this.latest[i] = m.counts;
      this.rampDone.add(i);
      this.poke();
    }
  }

  progress(): FleetProgress {
    return { elapsedS: (Date.now() - this.startedAt) / 1000, ...sumFields(this.latest, ['attempted', 'opened', 'open', 'inFlight', 'failedTotal']) };
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
      let outcome: RampOutcome | undefined = this.stopped;
      if (outcome) { /* a child failed */ }
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
    this.fleet.broadcast(() => ({ t: 'halt' }));
  }

  /** Counts and merged latency histogram from every live child (a dead child contributes its last progress counts, no latencies). */
  async report(timeoutMs = 10000): Promise<FleetReport> {
    const got = await this.fleet.gather<Extract<ChildToParent, { t: 'report' }>>((_, id) => ({ t: 'report', id }), timeoutMs);
    for (const m of got) this.latest[m.report.childIndex] = m.report;
    const merged = mergeHistograms(got.map((m) => m.report.histogram));
    const { attempted, opened, open, failedTotal, cpuMicros, rssBytes, heartbeatsSent, failed, closedByServer } = sumReports(
      this.latest, ['attempted', 'opened', 'open', 'failedTotal', 'cpuMicros', 'rssBytes', 'heartbeatsSent'], ['failed', 'closedByServer']);
    let first = Infinity, last = 0, allDone = true;
    for (const c of this.latest) {
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
      clientCpuMicros: cpuMicros,
      clientRssBytes: rssBytes,
      heartbeatsSent,
      perChild: [...this.latest],
    };
  }

  /** Closes every session (close 1000, then terminate after graceMs) and waits for the children to exit (killing stragglers). */
  close(graceMs = 2000): Promise<void> {
    return this.fleet.close({ t: 'close', graceMs }, graceMs);
  }

  kill(): void {
    this.fleet.kill();
  }
}

function emptyCounts(childIndex: number): ClientCounts {
  return {
    childIndex, attempted: 0, opened: 0, open: 0, inFlight: 0, failed: {}, failedTotal: 0, closedByServer: {},
    heartbeatsSent: 0, framesReceived: 0, firstAttemptAt: 0, rampDoneAt: 0, cpuMicros: 0, rssBytes: 0,
  };
}
