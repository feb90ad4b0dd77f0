/**
 * The parent side of the message benches: P forked workload client
 * processes (workload-client.ts), each connecting from its own source
 * address 127.0.0.(2+i), driven phase by phase over IPC.
 *
 *   const w = await WorkloadFleet.start({ url, proto: 'phoenix', processes: 2, ... });
 *   await w.dmSetup({ pairs: 1000, ... });       // or w.roomSetup(...)
 *   await w.dmGo({ mode: 'window', window: 4, ... });
 *   const a = await w.mark(true); ...; const b = await w.mark(false);
 *   const r = await w.dmStop(5000);             // merged histograms and counts
 *   await w.close();
 *
 * Every request to a child has a deadline; a child that dies fails the
 * request at once. Children are SIGKILLed if this process exits first, and
 * exit by themselves if it dies.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { build, decodeFromCompressedBase64, type Histogram } from 'hdr-histogram-js';
import type {
  DmCounts, DmGo, DmReport, DmSetup, RoomReport, RoomSend, RoomSetup, SetupResult, WireProto, WorkloadInit, WorkloadToChild, WorkloadToParent,
} from './workload-protocol.js';
import { defaultTokenModule } from './fleet.js';

export interface WorkloadOptions {
  readonly url: string;
  readonly proto: WireProto;
  readonly processes: number;
  readonly secret: string;
  readonly tokenTtlS?: number;
  readonly tokenModule?: string;
  /** Handshakes in flight across the fleet. */
  readonly connectConcurrency: number;
  readonly connectTimeoutMs: number;
  /** Source address of client process i: sourceAddresses[i % length]. Default: 127.0.0.(2+i). */
  readonly sourceAddresses?: readonly string[];
}

export interface SetupSummary {
  readonly ready: number;
  readonly wanted: number;
  readonly failed: Record<string, number>;
  readonly perWorker: Record<string, number>;
  readonly pairsCross: number;
  readonly pairsSame: number;
  readonly reconnects: number;
  /** Ready, then closed by the server before the set-up ended (a worker restarted, say), by close code. */
  readonly closedByServer: Record<string, number>;
  readonly histogram: Histogram;
  readonly seconds: number;
}

export interface DmTotals {
  readonly sent: number;
  readonly oks: number;
  readonly delivered: number;
  readonly skipped: number;
  readonly outstanding: number;
  readonly errors: Record<string, number>;
  readonly closedByServer: Record<string, number>;
  readonly clientCpuMicros: number;
  /** Date.now() when the last child answered. */
  readonly at: number;
}

export interface DmPhaseReport extends DmTotals {
  readonly recordedSent: number;
  readonly recordedDone: number;
  readonly delivery: Histogram;
  readonly ok: Histogram;
  readonly lag: Histogram;
}

const live = new Set<ChildProcess>();
let hook = false;
function installExitHook(): void {
  if (hook) return;
  hook = true;
  process.on('exit', () => {
    for (const c of live) c.kill('SIGKILL');
  });
}

function addInto(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

export function mergeHistograms(encoded: readonly string[]): Histogram {
  const h = build({ numberOfSignificantValueDigits: 3 });
  for (const e of encoded) h.add(decodeFromCompressedBase64(e));
  return h;
}

/** Splits n items over p parts as evenly as possible: [first, count] per part. */
export function split(n: number, p: number): [number, number][] {
  const q = Math.floor(n / p);
  const r = n % p;
  const out: [number, number][] = [];
  let first = 0;
  for (let i = 0; i < p; i++) {
    const c = q + (i < r ? 1 : 0);
    out.push([first, c]);
    first += c;
  }
  return out;
}

interface Waiter { resolve: (m: WorkloadToParent) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }

export class WorkloadFleet {
  private readonly children: ChildProcess[] = [];
  private readonly waiters = new Map<number, Waiter>();
  private nextId = 1;
  private closing = false;
  /** First fatal error or unexpected child exit. */
  failure: string | undefined;

  private constructor(readonly opts: WorkloadOptions) {
    if (opts.processes < 1 || opts.processes > 253) throw new Error(`processes must be 1..253 (one source address 127.0.0.2..254 each), got ${opts.processes}`);
  }

  get processes(): number {
    return this.opts.processes;
  }

  static async start(opts: WorkloadOptions): Promise<WorkloadFleet> {
    const f = new WorkloadFleet(opts);
    try {
      await f.spawn();
    } catch (err) {
      f.kill();
      throw err;
    }
    return f;
  }

  private async spawn(): Promise<void> {
    installExitHook();
    const script = fileURLToPath(new URL('./workload-client.js', import.meta.url));
    const ready: Promise<void>[] = [];
    const P = this.opts.processes;
    for (let i = 0; i < P; i++) {
      const child = fork(script, [], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'json' });
      live.add(child);
      this.children.push(child);
      ready.push(new Promise<void>((resolve, reject) => {
        const onMsg = (m: WorkloadToParent) => {
          if (m.t === 'ready') {
            child.off('message', onMsg);
            resolve();
          } else if (m.t === 'fatal') reject(new Error(`client ${i}: ${m.error}`));
        };
        child.on('message', onMsg);
        child.once('exit', (code, sig) => reject(new Error(`client ${i} exited before ready (${code ?? sig})`)));
      }));
      child.on('message', (m: WorkloadToParent) => this.onMessage(i, m));
      child.on('exit', (code, sig) => {
        live.delete(child);
        if (!this.closing) this.fail(`client ${i} exited (${code ?? sig})`);
      });
      const init: WorkloadInit = {
        childIndex: i,
        url: this.opts.url,
        localAddress: this.opts.sourceAddresses?.length ? this.opts.sourceAddresses[i % this.opts.sourceAddresses.length]! : `127.0.0.${2 + i}`,
        proto: this.opts.proto,
        secret: this.opts.secret,
        tokenTtlS: this.opts.tokenTtlS ?? 3600,
        tokenModule: this.opts.tokenModule ?? defaultTokenModule(),
        connectConcurrency: Math.max(1, Math.ceil(this.opts.connectConcurrency / P)),
        connectTimeoutMs: this.opts.connectTimeoutMs,
      };
      child.send({ t: 'init', init } satisfies WorkloadToChild);
    }
    await Promise.all(ready);
  }

  private fail(why: string): void {
    this.failure ??= why;
    for (const [id, w] of this.waiters) {
      clearTimeout(w.timer);
      this.waiters.delete(id);
      w.reject(new Error(why));
    }
  }

  private onMessage(i: number, m: WorkloadToParent): void {
    if (m.t === 'fatal') {
      this.fail(`client ${i}: ${m.error}`);
      return;
    }
    if ('id' in m) {
      const w = this.waiters.get(m.id);
      if (!w) return;
      this.waiters.delete(m.id);
      clearTimeout(w.timer);
      w.resolve(m);
    }
  }

  /** Sends one request to child i and waits for the answer with the same id. */
  private ask(i: number, make: (id: number) => WorkloadToChild, timeoutMs: number): Promise<WorkloadToParent> {
    if (this.failure) return Promise.reject(new Error(this.failure));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        reject(new Error(`client ${i} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(id, { resolve, reject, timer });
      const c = this.children[i]!;
      if (c.connected) c.send(make(id));
    });
  }

  private askAll(make: (i: number, id: number) => WorkloadToChild, timeoutMs: number): Promise<WorkloadToParent[]> {
    return Promise.all(this.children.map((_, i) => this.ask(i, (id) => make(i, id), timeoutMs)));
  }

  private static summarizeSetup(rs: SetupResult[], seconds: number): SetupSummary {
    const failed: Record<string, number> = {};
    const perWorker: Record<string, number> = {};
    const closedByServer: Record<string, number> = {};
    let ready = 0, wanted = 0, cross = 0, same = 0, reconnects = 0;
    for (const r of rs) {
      ready += r.ready;
      wanted += r.wanted;
      cross += r.pairsCross;
      same += r.pairsSame;
      reconnects += r.reconnects;
      addInto(failed, r.failed);
      addInto(perWorker, r.perWorker);
      addInto(closedByServer, r.closedByServer);
    }
    return { ready, wanted, failed, perWorker, pairsCross: cross, pairsSame: same, reconnects, closedByServer, histogram: mergeHistograms(rs.map((r) => r.histogram)), seconds };
  }

  /** Opens `pairs` pairs of dm clients, split over the children (a pair stays in one process). */
  async dmSetup(s: Omit<DmSetup, 'firstPair' | 'pairs'> & { pairs: number }, timeoutMs: number): Promise<SetupSummary> {
    const parts = split(s.pairs, this.processes);
    const t0 = Date.now();
    const rs = await this.askAll((i, id) => ({ t: 'dm-setup', id, setup: { ...s, firstPair: parts[i]![0], pairs: parts[i]![1] } }), timeoutMs);
    return WorkloadFleet.summarizeSetup(rs.map((m) => (m as Extract<WorkloadToParent, { t: 'setup-done' }>).result), (Date.now() - t0) / 1000);
  }

  /** Joins `members` members to one room, split over the children; child 0 also holds the sender. */
  async roomSetup(s: Omit<RoomSetup, 'first' | 'members' | 'sender'> & { members: number }, timeoutMs: number): Promise<SetupSummary> {
    const parts = split(s.members, this.processes);
    const t0 = Date.now();
    const rs = await this.askAll((i, id) => ({ t: 'room-setup', id, setup: { room: s.room, prefix: s.prefix, first: parts[i]![0], members: parts[i]![1], sender: i === 0 } }), timeoutMs);
    return WorkloadFleet.summarizeSetup(rs.map((m) => (m as Extract<WorkloadToParent, { t: 'setup-done' }>).result), (Date.now() - t0) / 1000);
  }

  async dmGo(go: DmGo): Promise<void> {
    await this.askAll((_, id) => ({ t: 'dm-go', id, go }), 10000);
  }

  private static totals(cs: DmCounts[]): DmTotals {
    const errors: Record<string, number> = {};
    const closedByServer: Record<string, number> = {};
    let sent = 0, oks = 0, delivered = 0, skipped = 0, outstanding = 0, cpu = 0;
    for (const c of cs) {
      sent += c.sent;
      oks += c.oks;
      delivered += c.delivered;
      skipped += c.skipped;
      outstanding += c.outstanding;
      cpu += c.cpuMicros;
      addInto(errors, c.errors);
      addInto(closedByServer, c.closedByServer);
    }
    return { sent, oks, delivered, skipped, outstanding, errors, closedByServer, clientCpuMicros: cpu, at: Date.now() };
  }

  /** Turns latency recording on or off (messages sent while on are recorded when they complete); returns the counts at that moment. */
  async mark(on: boolean): Promise<DmTotals> {
    const rs = await this.askAll((_, id) => ({ t: 'mark', id, on }), 10000);
    return WorkloadFleet.totals(rs.map((m) => (m as Extract<WorkloadToParent, { t: 'snap' }>).counts));
  }

  async snap(): Promise<DmTotals> {
    const rs = await this.askAll((_, id) => ({ t: 'snap', id }), 10000);
    return WorkloadFleet.totals(rs.map((m) => (m as Extract<WorkloadToParent, { t: 'snap' }>).counts));
  }

  /** Stops sending, waits up to drainMs for what is outstanding, and returns the phase's merged report (histograms reset in the children). */
  async dmStop(drainMs: number): Promise<DmPhaseReport> {
    const rs = (await this.askAll((_, id) => ({ t: 'dm-stop', id, drainMs }), drainMs + 15000)).map((m) => (m as Extract<WorkloadToParent, { t: 'dm-report' }>).report);
    const t = WorkloadFleet.totals(rs);
    return {
      ...t,
      recordedSent: rs.reduce((a, r: DmReport) => a + r.recordedSent, 0),
      recordedDone: rs.reduce((a, r: DmReport) => a + r.recordedDone, 0),
      delivery: mergeHistograms(rs.map((r) => r.hDelivery)),
      ok: mergeHistograms(rs.map((r) => r.hOk)),
      lag: mergeHistograms(rs.map((r) => r.hLag)),
    };
  }

  /** Child 0 (which holds the sender) starts posting; resolves once it started. */
  async roomSend(send: RoomSend): Promise<void> {
    await this.ask(0, (id) => ({ t: 'room-send', id, send }), 10000);
  }

  async roomReports(): Promise<RoomReport[]> {
    const rs = await this.askAll((_, id) => ({ t: 'room-report', id }), 15000);
    return rs.map((m) => (m as Extract<WorkloadToParent, { t: 'room-report' }>).report);
  }

  /** Closes every connection (close 1000, terminate after graceMs) and waits for the children to exit (killing stragglers). */
  async close(graceMs = 2000): Promise<void> {
    this.closing = true;
    const exits = this.children.map((c) => (c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => c.once('exit', () => r()))));
    for (const c of this.children) if (c.connected) c.send({ t: 'close', graceMs } satisfies WorkloadToChild);
    const killTimer = setTimeout(() => this.kill(), graceMs + 3000);
    await Promise.all(exits);
    clearTimeout(killTimer);
  }

  kill(): void {
    this.closing = true;
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
}
