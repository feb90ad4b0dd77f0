/**
 * A worker's side of the bus: its own subject (replies and deliveries), the
 * command subjects of the shards it masters, room subjects while it has
 * members there, and the control subject.
 *
 * Requests publish with the correlation id and this worker's address, keep
 * the pending request in a Map, and expire or resend it from one shared
 * coarse timer; no nc.request() per message (docs/architecture.md, "Users,
 * rooms and shards"). A target in
 * this same worker is called in-process through the same path, with the same
 * semantics. Every command is idempotent (dm and msg carry a message id the
 * actor dedups), so resending while a shard has no responder (start-up, a
 * worker restart) is safe; past the deadline the caller gets
 * SANDBAR_ERR_UNAVAILABLE.
 */
import { errors, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { Errors, SandbarError, fromWire, type WireError } from '../errors.js';
import type { TimerEntry, TimerWheel } from '../actors/timer-wheel.js';
import type { Logger } from '../observability/logger.js';
import { metrics } from '../observability/metrics.js';
import type { Subjects } from './subjects.js';
import type { Cmd, CtlMsg, HistoryQuery, WorkerAddr, WorkerMsg } from './messages.js';
import type { ReplMsg, ShardMsg } from '../actors/replication.js';
import { Fragmenter, Reassembler, isPiece } from './fragments.js';

/**
 * What a worker keeps of large messages still arriving in pieces
 * (fragments.ts): a few shards' worth (persistence.maxSnapshotBytes is 64 MiB
 * by default), for as long as a resend takes to come.
 */
const REASSEMBLY = { maxBytes: 256 * 1024 * 1024, maxAgeMs: 30_000 };
/** Room left in a NATS message for the protocol line and headers. */
const PAYLOAD_MARGIN = 1024;

/** Whoever waits for a reply: called once, with the result or a typed error. */
export interface ReplyTarget {
  onReply(ok: boolean, res: unknown, err: SandbarError | null): void;
}

class Pending implements TimerEntry {
  timerSlot = -1;
  resends = 0;
  constructor(
    readonly bus: WorkerBus,
    readonly cid: number,
    readonly shard: number,
    readonly cmd: Cmd,
    readonly target: ReplyTarget,
    readonly deadline: number,
  ) {}
  onTimer(now: number): void { this.bus.onPendingTimer(this, now); }
}

/** Read-only questions operators and the server API ask, answered at once, never replicated. */
export type InfoQuery = { op: 'u.info' | 'r.info'; id: string } | HistoryQuery;
export type WorkerQuery = { t: 'kick'; sid: string } | { t: 'loglevel'; level: string } | { t: 'stats' };
/** New master → the old master of a shard whose host left the view: do you still hold its state? (ShardHost.holds) */
export type HoldsQuery = { t: 'holds?'; n: number };
/** What a question to another worker got back: its answer, nobody subscribed (the worker is gone), or no answer in time. */
export type AskResult = { k: 'answer'; res: unknown } | { k: 'gone' } | { k: 'timeout' };

export interface WorkerBusHandlers {
  onCmd(cmd: Cmd): void;
  onInfo(q: InfoQuery): unknown;
  onQuery(q: WorkerQuery): unknown;
  onHolds(q: HoldsQuery): unknown;
  onDeliver(sids: string[], frame: string): void;
  onCtl(msg: CtlMsg): void;
  onRepl(msg: ReplMsg): void;
  onShardMsg(msg: ShardMsg): void;
}

export class WorkerBus {
  readonly addr: WorkerAddr;
  private readonly pending = new Map<number, Pending>();
  private nextCid = 1;
  private readonly subs: Subscription[] = [];
  private readonly roomSubs = new Map<string, Subscription>();
  /** Shards this worker serves as master (their cmd subject is subscribed). */
  private readonly serving = new Map<number, Subscription>();
  private readonly replicating = new Map<number, Subscription>();
  /** Messages over max_payload go out in pieces and come back together here (fragments.ts). */
  private readonly fragmenter: Fragmenter;
  private readonly reassembler: Reassembler;

  constructor(
    private readonly nc: NatsConnection,
    private readonly subjects: Subjects,
    readonly hostId: string,
    readonly worker: number,
    private readonly handlers: WorkerBusHandlers,
    private readonly wheel: TimerWheel,
    private readonly logger: Logger,
    private readonly opts: { timeoutMs: number; resendMs: number },
  ) {
    this.addr = `${hostId}.${worker}`;
    this.fragmenter = new Fragmenter(this.addr);
    this.reassembler = new Reassembler(REASSEMBLY, () => wheel.clock.now());
  }

  /**
   * Runs a subscription callback so that a throw stays here: nats.js stops
   * reading the connection for good when a callback throws (seen with a
   * stack overflow), which would silently cut the worker off.
   */
  private guarded(fn: () => void): void {
    try { fn(); } catch (err) { this.logger.error({ err }, 'bus message handler failed; message dropped'); }
  }

  /** Subscribes this worker's subjects and waits until the server has them. */
  async start(): Promise<void> {
    const { nc, subjects } = this;
    this.subs.push(nc.subscribe(subjects.worker(this.hostId, this.worker), { callback: (err, msg) => {
      if (err) return;
      this.guarded(() => {
        if (isPiece(msg.data)) {
          const whole = this.reassembler.add(msg.data);
          if (whole) this.onWorkerMsg(JSON.parse(Buffer.from(whole.buffer, whole.byteOffset, whole.byteLength).toString()) as WorkerMsg);
          return;
        }
        const m = msg.json<WorkerMsg | WorkerQuery | HoldsQuery>();
        if (m.t === 'kick' || m.t === 'loglevel' || m.t === 'stats') msg.respond(JSON.stringify(this.handlers.onQuery(m)));
        else if (m.t === 'holds?') msg.respond(JSON.stringify(this.handlers.onHolds(m)));
        else this.onWorkerMsg(m);
      });
    } }));
    this.subs.push(nc.subscribe(subjects.ctl(), { callback: (err, msg) => {
      if (err) return;
      this.guarded(() => this.handlers.onCtl(msg.json<CtlMsg>()));
    } }));
    await nc.flush();
  }

  /** Starts or stops serving a shard's commands (subscribing its cmd subject). */
  serve(shard: number, on: boolean): void {
    const sub = this.serving.get(shard);
    if (on && !sub) {
      this.serving.set(shard, this.nc.subscribe(this.subjects.shardCmd(shard), { callback: (err, msg) => {
        if (err) return;
        this.guarded(() => {
          const cmd = msg.json<Cmd | InfoQuery>();
          if (cmd.op === 'u.info' || cmd.op === 'r.info' || cmd.op === 'u.hist' || cmd.op === 'r.hist') msg.respond(JSON.stringify(this.handlers.onInfo(cmd)));
          else this.handlers.onCmd(cmd as Cmd);
        });
      } }));
    } else if (!on && sub) {
      sub.unsubscribe();
      this.serving.delete(shard);
    }
  }

  /** Starts or stops receiving a shard's replication stream for this host. */
  replicate(shard: number, on: boolean): void {
    const sub = this.replicating.get(shard);
    if (on && !sub) {
      this.replicating.set(shard, this.nc.subscribe(this.subjects.shardRepl(shard, this.hostId), { callback: (err, msg) => {
        if (!err) this.guarded(() => {
          if (!isPiece(msg.data)) { this.handlers.onRepl(msg.json<ReplMsg>()); return; }
          const whole = this.reassembler.add(msg.data);
          if (whole) this.handlers.onRepl(JSON.parse(Buffer.from(whole.buffer, whole.byteOffset, whole.byteLength).toString()) as ReplMsg);
        });
      } }));
    } else if (!on && sub) {
      sub.unsubscribe();
      this.replicating.delete(shard);
    }
  }

  /** A replication message (already encoded, or encoded here) to the replica on hostId. */
  sendRepl(shard: number, hostId: string, msg: ReplMsg | string): void {
    this.flushOutbox();
    this.publishAny(this.subjects.shardRepl(shard, hostId), typeof msg === 'string' ? msg : JSON.stringify(msg));
  }

  /** A replication control message to another worker (or this one). */
  toWorkerShard(addr: WorkerAddr, msg: ShardMsg): void {
    this.toWorker(addr, msg as unknown as WorkerMsg);
  }

  /**
   * One question to another worker, answered on its own subject (a NATS
   * request: used on shard transitions only, never per message). A worker
   * that is gone has no subscriber there, which NATS says at once.
   */
  async ask(addr: WorkerAddr, q: HoldsQuery, timeoutMs: number): Promise<AskResult> {
    const dot = addr.lastIndexOf('.');
    try {
      const r = await this.nc.request(this.subjects.worker(addr.slice(0, dot), Number(addr.slice(dot + 1))), JSON.stringify(q), { timeout: timeoutMs });
      return { k: 'answer', res: r.json() };
    } catch (err) {
      return err instanceof errors.RequestError && err.isNoResponders() ? { k: 'gone' } : { k: 'timeout' };
    }
  }

  /** Fire-and-forget command to the master of a shard. */
  cast(shard: number, cmd: Cmd): void {
    if (this.serving.has(shard)) this.handlers.onCmd(cmd);
    else {
      this.flushOutbox();
      this.nc.publish(this.subjects.shardCmd(shard), JSON.stringify(cmd));
    }
  }

  /** A command whose reply goes to target, resent until the deadline. */
  request(shard: number, cmd: Cmd & { cid: number; rw: WorkerAddr }, target: ReplyTarget): void {
    const cid = this.nextCid++;
    cmd.cid = cid;
    cmd.rw = this.addr;
    const now = this.wheel.clock.now();
    const p = new Pending(this, cid, shard, cmd, target, now + this.opts.timeoutMs);
    this.pending.set(cid, p);
    this.pendingOf(shard).add(p);
    this.wheel.schedule(p, Math.min(p.deadline, now + this.opts.resendMs));
    this.cast(shard, cmd);
  }

  /** Pending requests by shard, so a new master is asked at once (resendShard). */
  private readonly byShard = new Map<number, Set<Pending>>();

  private pendingOf(shard: number): Set<Pending> {
    let set = this.byShard.get(shard);
    if (!set) { set = new Set(); this.byShard.set(shard, set); }
    return set;
  }

  private unindex(p: Pending): void {
    const set = this.byShard.get(p.shard);
    if (set?.delete(p) && set.size === 0) this.byShard.delete(p.shard);
  }

  /**
   * A shard has a new master (its ownership record changed): what waits for
   * it is sent again now, instead of at its next backed-off resend, so the
   * users of a failed-over shard are served as soon as it is.
   */
  resendShard(shard: number): void {
    const set = this.byShard.get(shard);
    if (!set) return;
    const now = this.wheel.clock.now();
    for (const p of set) {
      metrics.resends.inc('new_master');
      this.cast(p.shard, p.cmd);
      p.resends = 0;
      this.wheel.schedule(p, Math.min(p.deadline, now + this.opts.resendMs));
    }
  }

  onPendingTimer(p: Pending, now: number): void {
    if (this.pending.get(p.cid) !== p) return;
    if (now >= p.deadline) {
      this.pending.delete(p.cid);
      this.unindex(p);
      metrics.requestTimeouts++;
      p.target.onReply(false, undefined, Errors.UNAVAILABLE(`shard ${p.shard} did not answer within ${this.opts.timeoutMs} ms (request.timeoutMs)`));
      return;
    }
    metrics.resends.inc('timeout');
    this.cast(p.shard, p.cmd);
    // Backs off (×2 per resend, at most 4 × resendMs): a slow master is not
    // buried under copies of what it is already working on.
    p.resends++;
    this.wheel.schedule(p, Math.min(p.deadline, now + this.opts.resendMs * Math.min(4, 2 ** p.resends)));
  }

  /**
   * Sends a message to a worker: in-process when it is this one. Messages to
   * other workers wait in a per-worker outbox until the end of this turn of
   * the event loop and go out as one NATS message (a master releasing many
   * replies and deliveries at once, on a replica's ack, sends a few messages
   * instead of hundreds). Any other publish of this bus flushes the outbox
   * first, so the order of everything this worker publishes is kept.
   */
  toWorker(addr: WorkerAddr, msg: WorkerMsg): void {
    if (addr === this.addr) { this.onWorkerMsg(msg); return; }
    const box = this.outbox.get(addr);
    if (box) box.push(msg);
    else {
      this.outbox.set(addr, [msg]);
      if (!this.flushQueued) { this.flushQueued = true; setImmediate(this.flushOutbox); }
    }
  }

  private readonly outbox = new Map<WorkerAddr, WorkerMsg[]>();
  private flushQueued = false;

  private readonly flushOutbox = (): void => {
    this.flushQueued = false;
    if (this.outbox.size === 0) return;
    const boxes = [...this.outbox];
    this.outbox.clear();
    // A worker stopping drains its connection: what is left goes nowhere (its senders resend elsewhere).
    if (this.nc.isClosed() || this.nc.isDraining()) return;
    for (const [addr, msgs] of boxes) {
      const dot = addr.lastIndexOf('.');
      const subject = this.subjects.worker(addr.slice(0, dot), Number(addr.slice(dot + 1)));
      try {
        if (msgs.length === 1) { this.publishAny(subject, JSON.stringify(msgs[0])); continue; }
        const parts = msgs.map((m) => JSON.stringify(m));
        let chars = 0;
        for (const p of parts) chars += p.length;
        // A UTF-8 byte per character at most three: below that bound it fits whatever the text.
        if (3 * chars + 16 <= this.payloadLimit()) this.nc.publish(subject, `{"t":"batch","m":[${parts.join(',')}]}`);
        else this.publishBatches(subject, parts);
      } catch (err) {
        this.logger.warn({ err: (err as Error).message, to: addr, messages: msgs.length }, 'worker messages not sent');
      }
    }
  };

  /** What one NATS message may carry here: the server's max_payload less room for the protocol. */
  private payloadLimit(): number {
    return (this.nc.info?.max_payload ?? 1048576) - PAYLOAD_MARGIN;
  }

  /**
   * Publishes an encoded message: as it is when it fits one NATS message, in
   * pieces when it does not (fragments.ts). Before pieces, a message over
   * max_payload threw in nats.js and was lost (a shard's snapshot or
   * handoff, a join's replay of a large inbox).
   */
  private publishAny(subject: string, text: string): void {
    const limit = this.payloadLimit();
    if (3 * text.length <= limit) { this.nc.publish(subject, text); return; }
    const bytes = Buffer.from(text);
    if (bytes.length <= limit) { this.nc.publish(subject, bytes); return; }
    for (const piece of this.fragmenter.split(bytes, limit)) this.nc.publish(subject, piece);
  }

  /** A batch too large for one NATS message: as many batches as it takes, in order; a message too large alone goes in pieces. */
  private publishBatches(subject: string, parts: string[]): void {
    const limit = this.payloadLimit() - 16;
    let batch: string[] = [];
    let bytes = 0;
    const flush = () => {
      if (batch.length === 1) this.nc.publish(subject, batch[0]!);
      else if (batch.length > 1) this.nc.publish(subject, `{"t":"batch","m":[${batch.join(',')}]}`);
      batch = [];
      bytes = 0;
    };
    for (const p of parts) {
      const n = Buffer.byteLength(p) + 1;
      if (n > limit) { flush(); this.publishAny(subject, p); continue; }
      if (bytes + n > limit) flush();
      batch.push(p);
      bytes += n;
    }
    flush();
  }

  /** Large messages cut and still being put together (for the worker's stats). */
  get fragments(): { sent: number; dropped: number; pending: number } {
    return { sent: this.fragmenter.cut, dropped: this.reassembler.dropped, pending: this.reassembler.pending.messages };
  }

  reply(cmd: { cid: number; rw: WorkerAddr }, res: unknown): void {
    if (cmd.cid) this.toWorker(cmd.rw, { t: 'reply', cid: cmd.cid, ok: true, res });
  }

  replyError(cmd: { cid: number; rw: WorkerAddr }, err: WireError): void {
    if (cmd.cid) this.toWorker(cmd.rw, { t: 'reply', cid: cmd.cid, ok: false, err });
  }

  private onWorkerMsg(msg: WorkerMsg): void {
    if (msg.t === 'batch') {
      for (const m of msg.m) this.guarded(() => this.onWorkerMsg(m));
    } else if (msg.t === 'reply') {
      const p = this.pending.get(msg.cid);
      if (!p) return; // a late reply to a resent or expired request
      this.pending.delete(msg.cid);
      this.unindex(p);
      this.wheel.cancel(p);
      // The request was first sent timeoutMs before its deadline; no clock is read with the histograms off.
      metrics.reply(p.cmd.op, metrics.histograms ? this.wheel.clock.now() - p.deadline + this.opts.timeoutMs : 0);
      if (msg.ok) p.target.onReply(true, msg.res, null);
      else p.target.onReply(false, undefined, fromWire(msg.err));
    } else if (msg.t === 'deliver') {
      this.handlers.onDeliver(msg.sids, msg.frame);
    } else {
      this.handlers.onShardMsg(msg as unknown as ShardMsg);
    }
  }

  /** Publishes an encoded frame to every worker with members in the room. */
  publishRoom(roomId: string, frame: string): void {
    this.flushOutbox();
    this.publishAny(this.subjects.room(roomId), frame);
  }

  /** Subscribes the room subject once for this worker; frames arrive as raw bytes. */
  async subscribeRoom(roomId: string, onFrame: (frame: Buffer) => void): Promise<void> {
    if (this.roomSubs.has(roomId)) return;
    this.roomSubs.set(roomId, this.nc.subscribe(this.subjects.room(roomId), { callback: (err, msg) => {
      if (err) return;
      // One copy per worker per broadcast: ws may queue the buffer on a slow
      // socket, and the client's read buffer must not be shared with that.
      this.guarded(() => {
        if (!isPiece(msg.data)) { onFrame(Buffer.from(msg.data)); return; }
        // A frame too large for one NATS message (a big room's presence_state).
        const whole = this.reassembler.add(msg.data);
        if (whole) onFrame(Buffer.from(whole));
      });
    } }));
    // The join must reach the room actor only after the server has the
    // subscription, or a broadcast right after the join could miss us.
    await this.nc.flush();
  }

  unsubscribeRoom(roomId: string): void {
    this.roomSubs.get(roomId)?.unsubscribe();
    this.roomSubs.delete(roomId);
  }

  publishCtl(msg: CtlMsg): void {
    this.flushOutbox();
    this.nc.publish(this.subjects.ctl(), JSON.stringify(msg));
  }

  get pendingCount(): number { return this.pending.size; }

  get servingCount(): number { return this.serving.size; }

  stop(): void {
    this.flushOutbox();
    for (const s of this.subs) s.unsubscribe();
    for (const s of this.serving.values()) s.unsubscribe();
    for (const s of this.replicating.values()) s.unsubscribe();
    this.serving.clear();
    this.replicating.clear();
    for (const s of this.roomSubs.values()) s.unsubscribe();
    this.roomSubs.clear();
    for (const p of this.pending.values()) this.wheel.cancel(p);
    this.pending.clear();
    this.byShard.clear();
    this.logger.debug('worker bus stopped');
  }
}
