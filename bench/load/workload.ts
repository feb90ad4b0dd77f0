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
import { fileURLToPath } from 'node:url';
import type { Histogram } from 'hdr-histogram-js';
import { ChildFleet, sourceAddress, split } from '../lib/child-fleet.js';
import { mergeHistograms, sumReports } from '../lib/report.js';
import type {
  DmCounts, DmGo, DmReport, DmSetup, RoomReport, RoomSend, RoomSetup, SetupResult, WireProto, WorkloadToChild, WorkloadToParent,
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

/** The set-up of every child together: SetupResult's counts summed, its histograms merged. */
export interface SetupSummary extends Omit<SetupResult, 'childIndex' | 'histogram' | 'ms'> {
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

export class WorkloadFleet {
  private constructor(readonly opts: WorkloadOptions, private readonly fleet: ChildFleet<WorkloadToChild, WorkloadToParent>) {}

  get processes(): number {
    return this.opts.processes;
  }

  /** First fatal error or unexpected child exit. */
  get failure(): string | undefined {
    return this.fleet.failure;
  }

  static async start(opts: WorkloadOptions): Promise<WorkloadFleet> {
    const P = opts.processes;
    if (P < 1 || P > 253) throw new Error(`processes must be 1..253 (one source address 127.0.0.2..254 each), got ${P}`);
    const fleet = await ChildFleet.start<WorkloadToChild, WorkloadToParent>({
      script: fileURLToPath(new URL('./workload-client.js', import.meta.url)),
      n: P,
      init: (i) => ({
        t: 'init',
        init: {
          childIndex: i,
          url: opts.url,
          localAddress: sourceAddress(i, opts.sourceAddresses),
          proto: opts.proto,
          secret: opts.secret,
          tokenTtlS: opts.tokenTtlS ?? 3600,
          tokenModule: opts.tokenModule ?? defaultTokenModule(),
          connectConcurrency: Math.max(1, Math.ceil(opts.connectConcurrency / P)),
          connectTimeoutMs: opts.connectTimeoutMs,
        },
      }),
    });
    return new WorkloadFleet(opts, fleet);
  }

  private askAll(make: (i: number, id: number) => WorkloadToChild, timeoutMs: number): Promise<WorkloadToParent[]> {
    return this.fleet.all(make, timeoutMs);
  }

  private static summarizeSetup(rs: SetupResult[], seconds: number): SetupSummary {
    return {
      ...sumReports(rs, ['ready', 'wanted', 'pairsCross', 'pairsSame', 'reconnects'], ['failed', 'perWorker', 'closedByServer']),
      histogram: mergeHistograms(rs.map((r) => r.histogram)),
      seconds,
    };
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
    const t = sumReports(cs, ['sent', 'oks', 'delivered', 'skipped', 'outstanding', 'cpuMicros'], ['errors', 'closedByServer']);
    const { cpuMicros, ...rest } = t;
    return { ...rest, clientCpuMicros: cpuMicros, at: Date.now() };
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
    await this.fleet.ask(0, (id) => ({ t: 'room-send', id, send }), 10000);
  }

  async roomReports(): Promise<RoomReport[]> {
    const rs = await this.askAll((_, id) => ({ t: 'room-report', id }), 15000);
    return rs.map((m) => (m as Extract<WorkloadToParent, { t: 'room-report' }>).report);
  }

  /** Closes every connection (close 1000, terminate after graceMs) and waits for the children to exit (killing stragglers). */
  close(graceMs = 2000): Promise<void> {
    return this.fleet.close({ t: 'close', graceMs }, graceMs);
  }

  kill(): void {
    this.fleet.kill();
  }
}
