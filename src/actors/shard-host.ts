/**
 * The user and room actors of this worker, and the role it plays for each
 * shard: master (serves commands, replicates them), replica (applies the
 * master's stream to passive copies), or none.
 *
 * Outputs of the master's actors (replies, deliveries, room broadcasts) are
 * held until every live replica has applied the entry that produced them
 * (`replication.ack = "all"`), so a client's `ok` means the write survives
 * the master. Actors reach the outside only through this host, which is what
 * lets the same actor code run as master and as replica.
 */
import { Actor, type ActorLink, type StopReason } from './actor.js';
import type { TimerEntry, TimerWheel } from './timer-wheel.js';
import { UserActor } from './user.js';
import { RoomActor } from './room.js';
import type { ReplMsg, ShardMsg, ShardSnapshot } from './replication.js';
import type { Cmd, PurgeCmd, WorkerAddr } from '../bus/messages.js';
import type { AskResult, WorkerBus } from '../bus/worker-bus.js';
import type { SandbarConfig } from '../config/types.js';
import type { WireError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { place, shardOf, type HostView } from '../placement/index.js';
import type { Ownership, OwnershipRecord } from '../placement/ownership.js';
import type { Restored, ShardPersistence } from '../persistence/index.js';
import type { EventSink, SandbarEvent } from '../events/schema.js';

type Output =
  | { k: 'reply'; cmd: { cid: number; rw: WorkerAddr }; res: unknown }
  | { k: 'error'; cmd: { cid: number; rw: WorkerAddr }; err: WireError }
  | { k: 'deliver'; byWorker: Map<WorkerAddr, string[]>; frame: string }
  | { k: 'room'; roomId: string; frame: string }
  /** An event out (events.enabled): released with the write's other outputs, so only once it is replicated. */
  | { k: 'event'; ev: SandbarEvent; key: string };

type Role = 'master' | 'replica' | 'none';

/** How long a new master waits for the live old master's handoff before claiming anyway. */
const HANDOFF_WAIT_MS = 2000;
/** How long a new master without any copy of the state waits for a live old master's handoff before claiming empty. */
const EMPTY_CLAIM_WAIT_MS = 10000;

class ShardState implements TimerEntry {
  timerSlot = -1;
  role: Role = 'none';
  /** master: claimed and serving. replica: synced (has a snapshot). */
  ready = false;
  epoch = 0;
  /** master: last assigned entry; replica: last applied. */
  seq = 0;
  /** master: outputs released up to here. replica: what the master said it released. */
  released = 0;
  masterAddr: WorkerAddr | null = null;
  /** master: live replicas and what each has applied. */
  readonly acked = new Map<WorkerAddr, number>();
  /** master: outputs waiting for replication (or the lease), in entry order; key: the request's, while it waits. */
  held: { s: number; outs: Output[]; key: string | null }[] = [];
  /** replica: entries that arrived while waiting for a snapshot. */
  buffer: Extract<ReplMsg, { t: 'e' }>[] | null = null;
  /** replica: applied commands whose outputs the master may not have released (re-delivered on promotion). */
  tail: { s: number; c: Cmd }[] = [];
  /** master losing the shard: waiting for the new master's handoff-ok. */
  handingOffTo: WorkerAddr | null = null;
  /** master losing the shard, waiting for its turn (cluster.maxConcurrentHandoffs); still serving. */
  queuedTo: { to: WorkerAddr; role: Role } | null = null;
  /** master losing the shard: when the handoff started (ms, Date.now()). */
  handoffAt = 0;
  /** new master: the claim in flight. */
  claiming: Promise<boolean> | null = null;
  /** new master: since when it waits for the old master's handoff (0: not waiting). */
  waitingSince = 0;
  /** new master: it has the shard's state (a synced replica copy, or a handoff). */
  hasState = false;
  /** new master: asking the old master whether it still holds the state (see ShardHost.oldMasterHolds). */
  asking = false;
  /** new master: since when a leaving old master says it holds the shard (0: it does not). */
  leaverSince = 0;
  /** master: the replica set last written to the ownership record. */
  recorded = '';
  /** master: stopped serving while cut off from NATS (self-fencing). */
  fenced = false;
  /** master: a replica left the set; outputs wait until the ownership record says so (see recordReplicas). */
  gated = false;
  /** master: replica-set writes started (the latest one decides the gate). */
  recordGen = 0;
  /** new master: its claim waits for the worker to be unfenced. */
  deferred = false;
  /** replica: an ack is queued for this turn of the event loop. */
  ackQueued = false;
  constructor(readonly n: number, readonly host: ShardHost) {}
  onTimer(): void { this.host.onShardTimer(this); }
}

export class ShardHost implements ActorLink {
  readonly users = new Map<string, UserActor>();
  readonly rooms = new Map<string, RoomActor>();
  private readonly shards = new Map<number, ShardState>();
  /** Outputs of the command being applied; null outside onCmd (then outputs go out at once, or nowhere on a replica). */
  private collecting: Output[] | null = null;
  private applyingAsReplica = false;
  private view: HostView[] = [];
  crashes = 0;
  promotions = 0;
  handoffs = 0;
  private readonly replicas: number;
  /** Snapshots and the durable log in JetStream (null: persistence.mode = "none"); set by the worker. */
  persistence: ShardPersistence | null = null;
  /** The events stream (null: events.enabled = false); set by the worker. */
  events: EventSink | null = null;

  constructor(
    readonly bus: WorkerBus,
    readonly config: SandbarConfig,
    readonly wheel: TimerWheel,
    /** Fine-grained wheel (tens of ms): presence batching, sync retries. */
    readonly fastWheel: TimerWheel,
    readonly logger: Logger,
    private readonly ownership: Ownership | null,
  ) {
    this.replicas = config.replication.replicas;
  }

  // ---- commands (master) -------------------------------------------------------

  onCmd(cmd: Cmd): void {
    const n = shardOf(cmd.id, this.config.shards);
    const st = this.shards.get(n);
    // Not (or no longer, or not yet) the serving master: drop; the sender resends.
    if (!st || st.role !== 'master' || !st.ready || st.handingOffTo) return;
    // A resend of a request whose original waits here for replication: its
    // reply goes out with the original's. Applying it again would only add
    // work (and entries) to a master that is slow already.
    const r = cmd as { cid?: number; rw?: string };
    const key = r.cid ? `${r.rw} ${r.cid}` : null;
    if (key !== null && this.waiting.has(key)) return;
    if (cmd.op === 'u.dm' || cmd.op === 'r.msg') cmd.at = Date.now();
    const s = ++st.seq;
    const outs: Output[] = [];
    this.collecting = outs;
    try { this.apply(cmd); } finally { this.collecting = null; }
    if (cmd.op === 'u.dm' || cmd.op === 'r.msg') {
      // The shard's epoch in the writer's ok: which master acknowledged it (tests and tracing check fencing with it).
      for (const o of outs) if (o.k === 'reply' && typeof o.res === 'object' && o.res !== null) (o.res as { epoch?: number }).epoch = st.epoch;
    }
    const log = this.persistence?.log ?? null;
    const needAcks = (this.config.replication.ack === 'all' && st.acked.size > 0) || st.gated || !this.leaseOk() || log !== null;
    if (st.acked.size > 0 || log) {
      // Encoded once, whatever the number of replicas; the durable log stores the same entry.
      const entry = JSON.stringify({ t: 'e', n, e: st.epoch, s, m: this.bus.addr, c: cmd, rel: st.released } satisfies ReplMsg);
      for (const addr of st.acked.keys()) this.bus.sendRepl(n, hostOf(addr), entry);
      log?.append(n, s, entry);
    }
    if (needAcks) {
      st.held.push({ s, outs, key });
      if (key !== null) this.waiting.add(key);
      if (!this.leaseOk()) this.retryRelease();
    } else { this.run(outs); st.released = s; }
  }

  /** Requests (worker address + correlation id) whose outputs are held. */
  private readonly waiting = new Set<string>();

  /**
   * Until when this worker may acknowledge writes (the host's lease,
   * cluster/lease.ts; Infinity until the primary first says). Checked at the
   * moment outputs would go out: past it, they stay held (and go out if the
   * lease is renewed, or are dropped if the worker fences).
   */
  leaseUntil = Infinity;

  private leaseOk(): boolean { return Date.now() < this.leaseUntil; }

  private releaseRetry: NodeJS.Timeout | null = null;

  private retryRelease(): void {
    if (this.releaseRetry) return;
    this.releaseRetry = setTimeout(() => {
      this.releaseRetry = null;
      for (const st of this.shards.values()) if (st.held.length > 0 && st.role === 'master' && st.ready) this.release(st);
    }, 50);
    this.releaseRetry.unref();
  }

  /** Drops the outputs a shard holds (never acknowledged: their senders resend). */
  private dropHeld(st: ShardState): void {
    for (const h of st.held) if (h.key !== null) this.waiting.delete(h.key);
    st.held = [];
  }

  private apply(cmd: Cmd | PurgeCmd & { id?: string }): void {
    const c = cmd as Cmd;
    const isUser = c.op.charCodeAt(0) === 117; /* 'u' */
    const starts = c.op !== 'u.leave' && c.op !== 'r.leave';
    const actor = isUser ? this.user(c.id, starts) : this.room(c.id, starts);
    if (actor) (actor as Actor<Cmd>).send(c);
  }

  private user(id: string, start: boolean): UserActor | undefined {
    let a = this.users.get(id);
    if (!a && start) { a = new UserActor(this, id); this.users.set(id, a); this.inShard(id).add(a); }
    return a;
  }

  private room(id: string, start: boolean): RoomActor | undefined {
    let a = this.rooms.get(id);
    if (!a && start) { a = new RoomActor(this, id); this.rooms.set(id, a); this.inShard(id).add(a); }
    return a;
  }

  /**
   * The actors of each shard. Promotion, handoff, snapshots and dropping a
   * shard touch one shard's actors; scanning every actor of the worker for
   * each of hundreds of shards made a failover cost shards × actors.
   */
  private readonly byShard = new Map<number, Set<UserActor | RoomActor>>();

  private inShard(id: string): Set<UserActor | RoomActor> {
    const n = shardOf(id, this.config.shards);
    let set = this.byShard.get(n);
    if (!set) { set = new Set(); this.byShard.set(n, set); }
    return set;
  }

  private actorsOf(n: number): (UserActor | RoomActor)[] {
    const set = this.byShard.get(n);
    return set ? [...set] : [];
  }

  // ---- outputs (called by actors) ------------------------------------------------

  /** True while a replica applies a command: its outputs go nowhere, so actors may skip building them. */
  get silent(): boolean { return this.applyingAsReplica; }

  reply(cmd: { cid: number; rw: WorkerAddr }, res: unknown): void { this.out({ k: 'reply', cmd, res }); }
  replyError(cmd: { cid: number; rw: WorkerAddr }, err: WireError): void { this.out({ k: 'error', cmd, err }); }
  deliver(byWorker: Map<WorkerAddr, string[]>, frame: string): void { this.out({ k: 'deliver', byWorker, frame }); }
  publishRoom(roomId: string, frame: string): void {
    if (this.collecting === null && !this.applyingAsReplica) {
      // Outside a command (the presence batch timer): only the serving master speaks.
      const st = this.shards.get(shardOf(roomId, this.config.shards));
      if (!st || st.role !== 'master' || !st.ready) return;
    }
    this.out({ k: 'room', roomId, frame });
  }

  /** An event about the command being applied (or, on a promotion, re-delivered); see src/events/schema.ts. */
  event(ev: SandbarEvent, key: string): void { this.out({ k: 'event', ev, key }); }

  private out(o: Output): void {
    if (this.applyingAsReplica) return;
    if (this.collecting) this.collecting.push(o);
    else this.run([o]);
  }

  private run(outs: Output[]): void {
    for (const o of outs) {
      switch (o.k) {
        case 'reply': this.bus.reply(o.cmd, o.res); break;
        case 'error': this.bus.replyError(o.cmd, o.err); break;
        case 'deliver': for (const [w, sids] of o.byWorker) this.bus.toWorker(w, { t: 'deliver', sids, frame: o.frame }); break;
        case 'room': this.bus.publishRoom(o.roomId, o.frame); break;
        case 'event': this.events?.publish(o.ev, o.key); break;
      }
    }
  }

  /** Mode log: entries of shard n became durable. */
  onLogged(n: number): void {
    const st = this.shards.get(n);
    if (st && st.role === 'master') this.release(st);
  }

  private release(st: ShardState): void {
    if (st.gated) return;
    if (st.held.length > 0 && !this.leaseOk()) { this.retryRelease(); return; }
    let low = st.seq;
    if (this.config.replication.ack === 'all') for (const s of st.acked.values()) if (s < low) low = s;
    if (this.persistence?.log) low = Math.min(low, this.persistence.log.loggedUpTo(st.n));
    while (st.held.length > 0 && st.held[0]!.s <= low) {
      const h = st.held.shift()!;
      if (h.key !== null) this.waiting.delete(h.key);
      this.run(h.outs);
      st.released = h.s;
    }
    if (st.held.length === 0) st.released = st.seq;
  }

  // ---- replication (replica side) --------------------------------------------------

  onRepl(msg: ReplMsg): void {
    const st = this.shards.get(msg.n);
    if (!st || st.role !== 'replica') return;
    if (msg.e < st.epoch) return; // fencing: a deposed master's stream
    if (msg.t === 'snap') {
      this.install(st, msg.snap);
      st.epoch = msg.e;
      st.seq = msg.s;
      st.released = msg.s;
      st.masterAddr = msg.m;
      st.tail = [];
      st.ready = true;
      const buffered = st.buffer ?? [];
      st.buffer = null;
      // The sync retry timer is left to fire: onShardTimer decides by state,
      // and finds nothing to do for a synced replica. The same timer may be
      // the resend of a handoff not confirmed yet, which must go on.
      for (const e of buffered) if (e.e === st.epoch && e.s > st.seq) this.applyEntry(st, e);
      this.bus.toWorkerShard(msg.m, { t: 'rack', n: st.n, s: st.seq, from: this.bus.addr });
      return;
    }
    if (!st.ready) { (st.buffer ??= []).push(msg); return; }
    if (msg.e > st.epoch || msg.s !== st.seq + 1) {
      // A new master or a gap: our copy cannot be trusted to follow; resync.
      if (msg.e > st.epoch || msg.s > st.seq + 1) this.startSync(st, msg.m);
      return;
    }
    this.applyEntry(st, msg);
  }

  private applyEntry(st: ShardState, e: Extract<ReplMsg, { t: 'e' }>): void {
    if (e.s !== st.seq + 1) { this.startSync(st, e.m); return; }
    this.applyingAsReplica = true;
    try { this.apply(e.c); } finally { this.applyingAsReplica = false; }
    st.seq = e.s;
    st.released = e.rel;
    st.masterAddr = e.m;
    if (e.c.op === 'u.dm' || e.c.op === 'r.msg') st.tail.push({ s: e.s, c: e.c });
    while (st.tail.length > 0 && st.tail[0]!.s <= st.released) st.tail.shift();
    this.queueAck(st);
  }

  /**
   * Acks are coalesced: one `rack` per shard per turn of the event loop, with
   * the latest applied seq, instead of one per entry (each NATS message costs
   * a write and a wake-up on both sides; see docs/benchmarks.md, dm).
   */
  private queueAck(st: ShardState): void {
    if (st.ackQueued) return;
    st.ackQueued = true;
    this.ackQueue.push(st);
    if (this.ackQueue.length === 1) setImmediate(this.flushAcks);
  }

  private readonly ackQueue: ShardState[] = [];
  private readonly flushAcks = (): void => {
    const q = this.ackQueue.splice(0);
    for (const st of q) {
      st.ackQueued = false;
      if (st.role === 'replica' && st.ready && st.masterAddr) this.bus.toWorkerShard(st.masterAddr, { t: 'rack', n: st.n, s: st.seq, from: this.bus.addr });
    }
  };

  private startSync(st: ShardState, master: WorkerAddr | null): void {
    st.ready = false;
    st.buffer = [];
    if (master) st.masterAddr = master;
    this.askSync(st);
  }

  private askSync(st: ShardState): void {
    const m = st.masterAddr ?? this.placementMaster(st.n);
    if (m && m !== this.bus.addr) this.bus.toWorkerShard(m, { t: 'sync?', n: st.n, from: this.bus.addr });
    // Until the snapshot comes (the master may not serve yet), ask again.
    this.fastWheel.schedule(st, this.fastWheel.clock.now() + 250);
  }

  onShardTimer(st: ShardState): void {
    if (st.deferred) {
      st.deferred = false;
      if (st.role === 'master' && !st.ready && !st.claiming) void this.decideClaim(st, st.waitingSince > 0 && Date.now() - st.waitingSince >= HANDOFF_WAIT_MS);
      return;
    }
    if (st.role === 'master' && !st.ready && !st.claiming && st.waitingSince) {
      void this.decideClaim(st, Date.now() - st.waitingSince >= HANDOFF_WAIT_MS);
      return;
    }
    if (st.handingOffTo) {
      // The new master may not have our view yet: offer the handoff again.
      if (!this.aliveAddr(st.handingOffTo)) { this.dropHeld(st); this.endHandoff(st); return; }
      this.sendHandoff(st, st.handingOffTo);
      this.fastWheel.schedule(st, this.fastWheel.clock.now() + 250);
      return;
    }
    if (st.role === 'replica' && !st.ready) {
      st.masterAddr = this.placementMaster(st.n);
      this.askSync(st);
    }
  }

  // ---- messages between the workers of a shard ---------------------------------------

  onShardMsg(msg: ShardMsg): void {
    const st = this.shards.get(msg.n);
    switch (msg.t) {
      case 'rack': {
        if (!st || st.role !== 'master' || !st.acked.has(msg.from)) return;
        if (msg.s > st.acked.get(msg.from)!) st.acked.set(msg.from, msg.s);
        this.release(st);
        return;
      }
      case 'sync?': {
        if (!st || st.role !== 'master' || !st.ready) return;
        st.acked.set(msg.from, st.seq);
        this.bus.sendRepl(st.n, hostOf(msg.from), { t: 'snap', n: st.n, e: st.epoch, s: st.seq, m: this.bus.addr, snap: this.snapshot(st.n) });
        this.release(st);
        return;
      }
      case 'handoff': {
        // A stopping worker takes nothing over: the sender keeps the shard and snapshots it.
        if (this.stopping) return;
        if (!st || st.role !== 'master') {
          // Not the master here (our view moved on, or has not got there yet):
          // say so, so that a sender whose view names another master offers it there.
          this.bus.toWorkerShard(msg.from, { t: 'handoff-elsewhere', n: msg.n, from: this.bus.addr });
          return;
        }
        const ok = () => this.bus.toWorkerShard(msg.from, { t: 'handoff-ok', n: st.n, from: this.bus.addr });
        if (st.ready) {
          // Already promoted from our replica copy: the old master's unacknowledged
          // writes are resent by their senders; it stops waiting for us.
          this.bus.toWorkerShard(msg.from, { t: 'handoff-no', n: st.n, from: this.bus.addr });
          return;
        }
        // The old master's final state is at least what any replica had.
        this.install(st, msg.snap);
        st.hasState = true;
        st.waitingSince = 0;
        st.leaverSince = 0;
        st.seq = msg.s;
        st.released = msg.s;
        st.tail = [];
        if (st.claiming) void st.claiming.then((won) => { if (won) ok(); });
        else void this.claim(st, `handoff from ${msg.from}`).then((won) => { if (won) ok(); });
        return;
      }
      case 'handoff-no': {
        if (!st || st.handingOffTo !== msg.from) return;
        this.stopHeld?.delete(st.n);
        this.dropHeld(st);
        this.handoffsRefused++;
        this.endHandoff(st);
        if (st.role !== 'replica') this.drop(st.n);
        return;
      }
      case 'handoff-elsewhere': {
        // Its target is not the master (two view changes in quick succession:
        // a host joined, another a moment later). It refused, so it does not
        // take the shard from this offer; if our view names another live
        // master, offer the state there. Without this the real master, which
        // waits for our handoff, would claim the shard empty after
        // EMPTY_CLAIM_WAIT_MS and our state would be lost.
        if (!st || st.handingOffTo !== msg.from) return;
        const to = this.placementMaster(st.n);
        if (to === null || to === msg.from || to === this.bus.addr || !this.aliveAddr(to)) return;
        this.logger.info({ shard: st.n, from: msg.from, to }, 'handoff retargeted: the view names another master');
        st.handingOffTo = to;
        st.masterAddr = to;
        this.sendHandoff(st, to);
        return;
      }
      case 'handoff-ok': {
        if (!st || st.handingOffTo !== msg.from) return;
        this.stopHeld?.delete(st.n);
        // The new master has everything: what we held may go out now.
        const held = st.held;
        for (const h of held) if (h.key !== null) this.waiting.delete(h.key);
        st.held = [];
        for (const h of held) this.run(h.outs);
        if (this.handoffTimes.length < 100000) this.handoffTimes.push(Date.now() - st.handoffAt);
        this.endHandoff(st);
        this.handoffs++;
        if (st.role !== 'replica') this.drop(st.n);
        return;
      }
    }
  }

  // ---- roles from the view ------------------------------------------------------------

  private placementReplicas(n: number): WorkerAddr[] {
    if (this.view.length === 0) return [];
    return place(n, this.view, this.replicas).replicas.map((r) => `${r.hostId}.${r.worker}`);
  }

  private placementMaster(n: number): WorkerAddr | null {
    if (this.view.length === 0) return null;
    const p = place(n, this.view, this.replicas);
    return `${p.master.hostId}.${p.master.worker}`;
  }

  private aliveAddr(addr: string): boolean {
    const dot = addr.lastIndexOf('.');
    const h = this.view.find((v) => v.hostId === addr.slice(0, dot));
    if (!h) return false;
    const w = Number(addr.slice(dot + 1));
    return (h.alive ?? []).includes(w);
  }

  /** Set when the worker stops: it takes up no new shard (it hands its own over). */
  stopping = false;
  /** Set once the stop's snapshot set is taken (persistAll): no claim may complete after it. */
  private persisting = false;
  /** Set once the stop's snapshots are written: the shards are in JetStream, not only here (see holds). */
  private persisted = false;

  /** Recomputes every shard's role for a new live view and starts the transitions. */
  applyView(view: HostView[]): void {
    // Stopping, past the handoffs: roles are frozen, what is left here gets snapshotted.
    if (this.stopping && this.stopHeld) return;
    this.view = view;
    const me = this.bus.addr;
    for (let n = 0; n < this.config.shards; n++) {
      const p = place(n, view, this.replicas);
      const master = `${p.master.hostId}.${p.master.worker}`;
      const replicas = p.replicas.map((r) => `${r.hostId}.${r.worker}`);
      const role: Role = master === me ? 'master' : replicas.includes(me) ? 'replica' : 'none';
      let st = this.shards.get(n);
      if (!st) {
        if (role === 'none') continue;
        st = new ShardState(n, this);
        this.shards.set(n, st);
      }
      const was = st.role;
      if (was === 'master' && role === 'master') {
        // Same master; the replica set may have changed. A new replica asks
        // for a snapshot itself and counts for acks from then on (sync?), so
        // a replica that is slow to learn of its role does not stall writes.
        st.queuedTo = null; // a handoff waiting for its turn is not needed any more
        const before = st.recorded;
        let removed = false;
        for (const a of [...st.acked.keys()]) if (!replicas.includes(a)) { st.acked.delete(a); removed = true; }
        st.recorded = [...replicas].sort().join(',');
        if (st.ready && this.ownership && st.recorded !== before) this.recordReplicas(st, replicas, removed && this.config.replication.ack === 'all');
        this.release(st);
        continue;
      }
      if (was === 'master' && st.ready && role !== 'master') this.queueHandOff(st, master, role);
      else if (this.stopping && was === 'master' && st.hasState && role !== 'master') {
        // Stopping while this worker claims a shard it holds the state of (a
        // promotion, or a handoff it accepted): the claim may already have
        // fenced the old master, so this copy may be the only one. It stays
        // here and is snapshotted with the rest (persistAll).
        this.stopHeld?.add(n);
      } else if (role === 'master') this.becomeMaster(st, replicas);
      else if (role === 'replica' && (was !== 'replica' || st.masterAddr !== master)) {
        st.role = 'replica';
        st.fenced = false;
        this.bus.serve(n, false);
        this.bus.replicate(n, true);
        this.startSync(st, master);
      } else if (role === 'none' && !st.handingOffTo) this.drop(n);
    }
  }

  /**
   * Writes the master's new replica set to the ownership record. When a
   * replica left (`gate`), outputs are held until the write succeeds: a
   * master may acknowledge with fewer replicas only once the cluster agreed
   * (a quorum write), never on its own view alone, which a partition can
   * make wrong (docs/architecture.md, fencing).
   */
  private recordReplicas(st: ShardState, replicas: WorkerAddr[], gate: boolean): void {
    const gen = ++st.recordGen;
    if (gate) st.gated = true;
    const epoch = st.epoch;
    this.ownership!.setReplicas(st.n, epoch, this.bus.addr, replicas).then((ok) => {
      if (gen !== st.recordGen) return; // a newer replica set is being written
      if (ok) {
        st.gated = false;
        this.release(st);
      } else this.logger.warn({ shard: st.n, epoch }, 'cannot record the new replica set: the ownership record names another master or epoch; outputs stay held');
    }, (err: Error) => {
      if (gen !== st.recordGen || st.role !== 'master' || st.epoch !== epoch) return;
      this.logger.warn({ shard: st.n, err: err.message }, 'cannot record the new replica set yet; retrying');
      setTimeout(() => { if (gen === st.recordGen && st.role === 'master' && st.epoch === epoch) this.recordReplicas(st, replicas, st.gated); }, 500).unref();
    });
  }

  private becomeMaster(st: ShardState, replicas: WorkerAddr[]): void {
    st.hasState = st.role === 'replica' && st.ready;
    st.role = 'master';
    st.acked.clear();
    for (const r of replicas) st.acked.set(r, 0);
    this.bus.replicate(st.n, false);
    this.fastWheel.cancel(st);
    st.ready = false;
    st.waitingSince = 0;
    st.leaverSince = 0;
    void this.decideClaim(st);
  }

  /** A new master claims at once unless the old master is alive (then it hands the shard over). */
  private async decideClaim(st: ShardState, force = false): Promise<void> {
    let rec: OwnershipRecord | null = null;
    try { rec = this.ownership ? await this.ownership.read(st.n) : null; } catch (err) {
      this.logger.warn({ shard: st.n, err: (err as Error).message }, 'cannot read shard ownership; retrying');
      st.waitingSince = Date.now();
      this.fastWheel.schedule(st, this.fastWheel.clock.now() + 500);
      return;
    }
    if (st.role !== 'master' || st.ready || st.claiming || this.stopping) return;
    if (this.isFenced) {
      // No claims without the lease: ask again later.
      st.deferred = true;
      this.fastWheel.schedule(st, this.fastWheel.clock.now() + 500);
      return;
    }
    if (!st.hasState && rec && rec.master !== this.bus.addr && !this.aliveAddr(rec.master) && await this.oldMasterHolds(st, rec.master)) return;
    if (!force && rec && rec.master !== this.bus.addr && this.aliveAddr(rec.master)) {
      // The old master is alive: it hands the shard over (planned handoff).
      // If it does not within HANDOFF_WAIT_MS, claim anyway: the higher
      // epoch fences it.
      st.waitingSince ||= Date.now();
      this.fastWheel.schedule(st, this.fastWheel.clock.now() + 250);
      return;
    }
    if (force && rec && !st.hasState && this.aliveAddr(rec.master) && Date.now() - st.waitingSince < EMPTY_CLAIM_WAIT_MS) {
      // Do not start a shard empty while its master, which holds the state,
      // is alive: wait longer for the handoff (it resends every 250 ms). Past
      // EMPTY_CLAIM_WAIT_MS the shard is claimed anyway (loudly), so a lost
      // handoff cannot keep it unserved for ever.
      this.fastWheel.schedule(st, this.fastWheel.clock.now() + 500);
      return;
    }
    if (force && rec) this.logger.warn({ shard: st.n, oldMaster: rec.master, waitedMs: Date.now() - st.waitingSince }, 'no handoff came from the old master; claiming the shard with our replica copy (the new epoch fences it)');
    st.waitingSince = 0;
    const hasState = st.hasState;
    if (hasState) {
      // Promotion: our replica copy becomes the master's state. Outputs the
      // old master may not have released are sent again (clients dedup by seq).
      this.promotions++;
      const tail = st.tail;
      st.tail = [];
      if (await this.claim(st, rec ? `promotion: master ${rec.master} is gone` : 'promotion')) {
        for (const t of tail) this.redeliver(t.c);
        for (const a of this.actorsOf(st.n)) a.announcePresence();
      }
      return;
    }
    if (rec && rec.master !== this.bus.addr) this.logger.error({ shard: st.n, oldMaster: rec.master }, 'shard starts empty: its master is gone and this worker held no replica of its state');
    this.dropActors(st.n);
    st.seq = 0;
    st.released = 0;
    await this.claim(st, rec ? 'takeover without state' : 'first owner');
  }

  /**
   * A new master without a copy of the state, whose old master's host left
   * the view: a host that stops gracefully leaves first and then hands its
   * shards over (or, if nobody takes them, snapshots them). Claiming at once
   * would fence it and it would drop that state (docs/durability.md). So ask
   * it: while it says it holds the shard, wait for its handoff, at most
   * cluster.shutdownTimeoutMs + 2 s from the first answer. A worker that is
   * gone (a crash: NATS has no subscriber for it), that holds nothing, or that
   * does not answer within a second is not waited for.
   * True when this call scheduled another look instead of claiming.
   */
  private async oldMasterHolds(st: ShardState, old: WorkerAddr): Promise<boolean> {
    if (st.asking) return true;
    st.asking = true;
    let a: AskResult;
    try { a = await this.bus.ask(old, { t: 'holds?', n: st.n }, 1000); } finally { st.asking = false; }
    if (st.role !== 'master' || st.ready || st.claiming || this.stopping) return true;
    const holds = a.k === 'answer' && (a.res as { holds?: unknown }).holds === true;
    if (!holds) {
      if (st.leaverSince) this.logger.info({ shard: st.n, oldMaster: old, waitedMs: Date.now() - st.leaverSince, answer: a.k }, 'the leaving master no longer holds the shard; claiming it');
      st.leaverSince = 0;
      return false;
    }
    const now = Date.now();
    if (!st.leaverSince) {
      st.leaverSince = now;
      this.logger.info({ shard: st.n, oldMaster: old }, 'the old master left the cluster but still holds the shard: waiting for its handoff');
    }
    if (now - st.leaverSince >= this.config.cluster.shutdownTimeoutMs + 2000) {
      this.logger.warn({ shard: st.n, oldMaster: old, waitedMs: now - st.leaverSince }, 'the leaving master still holds the shard past cluster.shutdownTimeoutMs; claiming it (the new epoch fences it)');
      st.leaverSince = 0;
      return false;
    }
    st.waitingSince ||= now;
    this.fastWheel.schedule(st, this.fastWheel.clock.now() + 250);
    return true;
  }

  /**
   * The answer to {@link oldMasterHolds}: true while this worker stops and
   * still holds the shard's state (mastered, being handed off, or kept for
   * the stop's snapshot), until that snapshot is written.
   */
  holds(n: number): { holds: boolean } {
    const st = this.shards.get(n);
    if (!this.stopping || this.persisted || !st) return { holds: false };
    const held = (st.role === 'master' && (st.ready || st.hasState || st.fenced)) || st.handingOffTo !== null || st.queuedTo !== null || (this.stopHeld?.has(n) ?? false);
    return { holds: held };
  }

  private claim(st: ShardState, why: string): Promise<boolean> {
    st.claiming ??= this.doClaim(st, why).finally(() => { st.claiming = null; });
    return st.claiming;
  }

  private async doClaim(st: ShardState, why: string): Promise<boolean> {
    const replicas = [...st.acked.keys()];
    let epoch: number | null = st.epoch + 1;
    try {
      if (this.ownership) epoch = await this.ownership.claim(st.n, this.bus.addr, replicas);
    } catch (err) {
      this.logger.warn({ shard: st.n, err: (err as Error).message }, 'ownership claim failed; retrying on the next view');
      return false;
    }
    if (epoch === null || st.role !== 'master') return false;
    // The stop's snapshot set is taken: a shard won after it would be
    // snapshotted by nobody here, so it is not served and (for a handoff) not
    // confirmed; its old master keeps it and snapshots it.
    if (this.persisting) return false;
    st.epoch = epoch;
    if (this.persistence && !(await this.prepareServe(st))) return false;
    st.recorded = [...replicas].sort().join(',');
    st.gated = false;
    st.recordGen++;
    // The view may have changed the replica set while we claimed (and
    // restored): record the one it names now. (Not the acked set: a replica
    // added meanwhile joins it only once it has synced, and nothing would
    // record it later; the record would name no replica for that shard.)
    const current = this.placementReplicas(st.n);
    if (this.ownership && current.sort().join(',') !== st.recorded) {
      st.recorded = current.join(',');
      void this.ownership.setReplicas(st.n, epoch, this.bus.addr, current).catch(() => {});
    }
    if (this.isFenced) {
      // Won while fencing (the write raced the fence): serve only once unfenced.
      st.fenced = true;
      return true;
    }
    st.ready = true;
    st.fenced = false; // a fresh claim (a handoff while fenced) supersedes the fenced copy
    this.bus.serve(st.n, true);
    if (why !== 'first owner') this.logger.info({ shard: st.n, epoch, why }, 'serving shard as master');
    return true;
  }

  /**
   * Before a new master serves: without a copy of the state it restores
   * the shard from JetStream (snapshot + log tail; presence is not restored,
   * those connections are gone); in mode log, a snapshot at the new epoch
   * becomes the base of the log it writes from now on.
   */
  private async prepareServe(st: ShardState): Promise<boolean> {
    const p = this.persistence!;
    try {
      if (!st.hasState) {
        const r = await p.load(st.n);
        if (st.role !== 'master') return false;
        // A handoff that arrived meanwhile brought the live state: it wins.
        if (r && !st.hasState) this.restore(st, r);
      }
      p.log?.reset(st.n, st.seq);
      // An empty shard's log simply starts at seq 1.
      if (p.log && st.seq > 0) await p.save(st.n, st.epoch, st.seq, this.snapshot(st.n), false);
      return st.role === 'master';
    } catch (err) {
      this.logger.error({ shard: st.n, err: (err as Error).message }, 'cannot read or write the shard\'s snapshot or log in JetStream; not serving it yet (retrying)');
      st.waitingSince = Date.now();
      this.fastWheel.schedule(st, this.fastWheel.clock.now() + 1000);
      return false;
    }
  }

  private restore(st: ShardState, r: Restored): void {
    this.dropActors(st.n);
    if (r.snap) {
      this.install(st, {
        users: r.snap.users.map((u) => ({ ...u, conns: [] })),
        rooms: r.snap.rooms.map((m) => ({ ...m, members: [] })),
      });
    }
    st.seq = r.seq;
    this.applyingAsReplica = true;
    try {
      for (const e of r.chain) {
        // Joins and leaves only touch presence, which is not restored.
        if (e.c.op !== 'u.join' && e.c.op !== 'r.join' && e.c.op !== 'u.leave' && e.c.op !== 'r.leave') this.apply(e.c);
        st.seq = e.s;
      }
    } finally { this.applyingAsReplica = false; }
    st.released = st.seq;
    st.tail = [];
    this.logger.info({ shard: st.n, epoch: st.epoch, snapshotEpoch: r.epoch, snapshotSeq: r.seq, logEntries: r.chain.length, seq: st.seq, users: this.actorsOf(st.n).filter((a) => a instanceof UserActor).length, rooms: this.actorsOf(st.n).filter((a) => a instanceof RoomActor).length }, 'shard restored from JetStream');
  }

  private redeliver(c: Cmd): void {
    if (c.op === 'u.dm') this.users.get(c.id)?.redeliver(c);
    else if (c.op === 'r.msg') this.rooms.get(c.id)?.redeliver(c);
  }

  private handoffsInFlight = 0;
  private readonly handoffQueue: ShardState[] = [];

  /**
   * At most cluster.maxConcurrentHandoffs handoffs are in flight per worker
   * (a joining host would otherwise get hundreds of snapshots at once); the
   * others keep being served here until their turn.
   */
  private queueHandOff(st: ShardState, to: WorkerAddr, role: Role): void {
    if (this.handoffsInFlight < this.config.cluster.maxConcurrentHandoffs) { this.handOff(st, to, role); return; }
    if (!st.queuedTo) {
      if (this.handoffQueue.length === 0) { this.queueSince = Date.now(); this.queuedTotal = 0; }
      this.handoffQueue.push(st);
      if (this.queuedTotal++ === 0) this.logger.info({ maxConcurrentHandoffs: this.config.cluster.maxConcurrentHandoffs }, 'handoff queued');
    }
    st.queuedTo = { to, role };
  }

  private queueSince = 0;
  private queuedTotal = 0;

  private endHandoff(st: ShardState): void {
    st.handingOffTo = null;
    this.handoffsInFlight--;
    while (this.handoffsInFlight < this.config.cluster.maxConcurrentHandoffs && this.handoffQueue.length > 0) {
      const next = this.handoffQueue.shift()!;
      const q = next.queuedTo;
      next.queuedTo = null;
      if (q && this.shards.get(next.n) === next && next.role === 'master' && next.ready) this.handOff(next, q.to, q.role);
      if (this.handoffQueue.length === 0) this.logger.info({ shards: this.queuedTotal, waitedMs: Date.now() - this.queueSince }, 'handoff queue drained');
    }
  }

  /** Planned handoff: stop serving, send the state to the new master, release what we held when it confirms. */
  private handOff(st: ShardState, to: WorkerAddr, newRole: Role): void {
    this.bus.serve(st.n, false);
    if (!this.aliveAddr(to)) { st.role = newRole; return; }
    this.handoffsInFlight++;
    st.handingOffTo = to;
    st.handoffAt = Date.now();
    st.role = newRole;
    st.ready = newRole === 'replica';
    st.masterAddr = to;
    if (newRole === 'replica') this.bus.replicate(st.n, true);
    this.sendHandoff(st, to);
    this.fastWheel.schedule(st, this.fastWheel.clock.now() + 250);
  }

  /** The shard's state, as it is now, to the worker it is being handed to. */
  private sendHandoff(st: ShardState, to: WorkerAddr): void {
    this.bus.toWorkerShard(to, { t: 'handoff', n: st.n, e: st.epoch, s: st.seq, from: this.bus.addr, snap: this.snapshot(st.n) });
  }

  /** Fencing: a record with a higher epoch names another master: stop serving at once. */
  onOwnership(n: number, rec: OwnershipRecord): void {
    const st = this.shards.get(n);
    if (!st || st.role !== 'master' || !st.ready) return;
    if (rec.epoch > st.epoch && rec.master !== this.bus.addr) {
      this.logger.warn({ shard: n, epoch: st.epoch, newEpoch: rec.epoch, newMaster: rec.master }, 'a higher epoch names another master: this worker stops serving the shard');
      this.bus.serve(n, false);
      st.ready = false;
      this.dropHeld(st);
      st.role = 'none';
      this.drop(n);
    }
  }

  /** Why this worker does not act as master now ('nats': its connection is down; 'lease': the host lost its lease). */
  private readonly fencedBy = new Set<string>();

  get isFenced(): boolean { return this.fencedBy.size > 0; }

  /** Starts or ends one reason to self-fence; the worker fences on the first and serves again when none is left. */
  setFence(reason: 'nats' | 'lease', on: boolean): void {
    if (on === this.fencedBy.has(reason)) return;
    if (on) {
      this.fencedBy.add(reason);
      if (this.fencedBy.size === 1) {
        const n = this.fenceAll();
        this.logger.warn({ shards: n, reason, selfFenceMs: this.config.cluster.selfFenceMs }, reason === 'nats'
          ? 'cut off from NATS for cluster.selfFenceMs: this worker stops acting as master (self-fencing)'
          : 'the host lost its cluster lease: this worker stops acting as master (self-fencing)');
      }
    } else {
      this.fencedBy.delete(reason);
      if (this.fencedBy.size === 0) void this.unfence().catch((err) => this.logger.error({ err }, 'unfencing failed'));
    }
  }

  /**
   * Self-fencing: cut off from NATS for cluster.selfFenceMs, this worker
   * stops acting as master of every shard (the other hosts promote them
   * after cluster.downAfterMs). It keeps the state: if, once reconnected, the
   * ownership record still names it at the same epoch, nobody took over and
   * it serves again (see unfence). Outputs it still held are dropped: they
   * were never acknowledged, and their senders resend (deduplicated).
   */
  fenceAll(): number {
    let n = 0;
    for (const st of this.shards.values()) {
      if (st.role !== 'master' || !st.ready) continue;
      this.bus.serve(st.n, false);
      st.ready = false;
      st.fenced = true;
      this.dropHeld(st);
      n++;
    }
    return n;
  }

  /**
   * Back on NATS with the lease: serve again what nobody took over; give up
   * the rest. "Nobody took over" is proven by a compare-and-set write of our
   * own record (same epoch, same master), not by a read: a read may be
   * answered by a NATS node that has not caught up yet.
   */
  async unfence(): Promise<void> {
    // A shard with a claim in flight (a handoff that came while fenced) is decided by that claim.
    const fenced = [...this.shards.values()].filter((st) => st.fenced && st.role === 'master' && !st.claiming);
    let retry = false;
    for (let i = 0; i < fenced.length && !this.isFenced; i += 64) {
      await Promise.all(fenced.slice(i, i + 64).map(async (st) => {
        const epoch = st.epoch;
        let ours: boolean;
        try { ours = this.ownership ? await this.ownership.setReplicas(st.n, epoch, this.bus.addr, [...st.acked.keys()]) : true; } catch (err) {
          // Not known either way (KV not reachable yet): stay fenced, ask again.
          this.logger.warn({ shard: st.n, err: (err as Error).message }, 'cannot confirm shard ownership after self-fencing; retrying');
          retry = true;
          return;
        }
        // Fenced again meanwhile (the next unfence decides), or claimed anew (a handoff came): nothing to undo.
        if (this.isFenced || !st.fenced || st.claiming || st.epoch !== epoch || this.shards.get(st.n) !== st) return;
        st.fenced = false;
        if (st.role === 'master' && ours) {
          st.ready = true;
          st.gated = false;
          st.recordGen++;
          st.released = st.seq;
          this.bus.serve(st.n, true);
        } else {
          this.logger.warn({ shard: st.n, epoch: st.epoch }, 'after self-fencing the shard belongs to another master; dropping this copy');
          this.drop(st.n);
        }
      }));
    }
    if (retry) { setTimeout(() => { if (!this.isFenced) void this.unfence().catch(() => {}); }, 1000).unref(); return; }
    if (!this.isFenced) this.applyView(this.view);
  }

  private drop(n: number): void {
    const st = this.shards.get(n);
    if (st) {
      this.dropHeld(st);
      // A claim still in flight sees this and does not serve.
      st.role = 'none';
      st.ready = false;
      this.fastWheel.cancel(st);
    }
    this.shards.delete(n);
    this.persistence?.log?.drop(n);
    this.bus.serve(n, false);
    this.bus.replicate(n, false);
    this.dropActors(n);
  }

  private dropActors(n: number): void {
    for (const a of this.actorsOf(n)) {
      if (a instanceof UserActor) this.users.delete(a.id);
      else this.rooms.delete(a.id);
      a.stop({ kind: 'shutdown' });
    }
    this.byShard.delete(n);
  }

  /** For operators: what a user or room actor holds (answered by the serving master only). */
  info(q: { op: 'u.info' | 'r.info'; id: string }): unknown {
    const n = shardOf(q.id, this.config.shards);
    const st = this.shards.get(n);
    const where = { shard: n, epoch: st?.epoch ?? 0, master: this.bus.addr, replicas: st ? [...st.acked.keys()] : [] };
    if (q.op === 'u.info') {
      const a = this.users.get(q.id);
      if (!a) return { ...where, id: q.id, exists: false };
      return { ...where, id: q.id, exists: true, seq: a.seq, inbox: a.inbox.length, online: a.conns.size > 0, lastSeenAt: a.lastSeenAt || null, presence: a.presenceState() };
    }
    const r = this.rooms.get(q.id);
    if (!r) return { ...where, id: q.id, exists: false };
    return { ...where, id: q.id, exists: true, seq: r.seq, members: r.members.size, history: r.history.length, presence: r.presenceState() };
  }

  // ---- snapshots ---------------------------------------------------------------------------

  snapshot(n: number): ShardSnapshot {
    const snap: ShardSnapshot = { users: [], rooms: [] };
    for (const a of this.actorsOf(n)) {
      if (a instanceof UserActor) snap.users.push(a.snapshot());
      else snap.rooms.push(a.snapshot());
    }
    return snap;
  }

  private install(st: ShardState, snap: ShardSnapshot): void {
    this.dropActors(st.n);
    for (const u of snap.users) this.user(u.id, true)!.restore(u);
    for (const r of snap.rooms) this.room(r.id, true)!.restore(r);
  }

  // ---- dead workers, lifecycle ----------------------------------------------------------

  /** Sessions of a dead worker leave every user and room of this worker (masters broadcast, replicas just forget). */
  purge(w: WorkerAddr): void {
    const cmd: PurgeCmd = { op: 'purge', w };
    for (const [id, a] of this.users) this.withRole(id, () => a.send(cmd));
    for (const [id, a] of this.rooms) this.withRole(id, () => a.send(cmd));
  }

  private withRole(id: string, fn: () => void): void {
    const st = this.shards.get(shardOf(id, this.config.shards));
    if (st?.role === 'replica') {
      this.applyingAsReplica = true;
      try { fn(); } finally { this.applyingAsReplica = false; }
    } else fn();
  }

  /** Shards whose role this worker has not taken up yet (claiming, waiting for a handoff, syncing). */
  pendingRoles(): number {
    let n = 0;
    for (const st of this.shards.values()) if ((st.role === 'master' || st.role === 'replica') && !st.ready) n++;
    return n;
  }

  /** Shards this worker serves as master, and replicates. */
  roles(): { master: number[]; replica: number[] } {
    const master: number[] = [];
    const replica: number[] = [];
    for (const st of this.shards.values()) {
      if (st.role === 'master' && st.ready) master.push(st.n);
      else if (st.role === 'replica' && st.ready) replica.push(st.n);
    }
    return { master, replica };
  }

  /** Graceful stop: hand every mastered shard to its next owner. Returns when all confirmed or the budget ran out. */
  async handOffAll(view: HostView[], budgetMs: number): Promise<void> {
    if (view.length === 0) return; // the last host: nobody to hand to
    this.stopHeld = new Set(this.served().map((s) => s.n));
    this.stopping = false;
    this.applyView(view);
    this.stopping = true;
    const deadline = Date.now() + budgetMs;
    this.handoffTimes.length = 0;
    this.handoffsRefused = 0;
    const started = Date.now();
    while (Date.now() < deadline && [...this.shards.values()].some((s) => s.handingOffTo || s.queuedTo)) await new Promise((r) => setTimeout(r, 20));
    const t = this.handoffTimes.sort((a, b) => a - b);
    const open = [...this.shards.values()].filter((s) => s.handingOffTo || s.queuedTo).length;
    this.logger.info({ shards: t.length, promotedThere: this.handoffsRefused, notConfirmed: open, p50Ms: t[t.length >> 1] ?? 0, maxMs: t[t.length - 1] ?? 0, totalMs: Date.now() - started }, 'planned handoff done');
  }

  /** Per shard, ms from sending the handoff to the new master's confirmation (reset by handOffAll). */
  private readonly handoffTimes: number[] = [];
  /** Handoffs answered handoff-no: the new master had promoted its replica copy already (reset by handOffAll). */
  private handoffsRefused = 0;

  /** Shards this worker serves as master (persistence). */
  served(): { n: number; seq: number }[] {
    const out: { n: number; seq: number }[] = [];
    for (const st of this.shards.values()) if (st.role === 'master' && st.ready && !st.handingOffTo) out.push({ n: st.n, seq: st.seq });
    return out;
  }

  /** Shards this worker mastered when its stop began and has not handed over (confirmed) since. */
  private stopHeld: Set<number> | null = null;

  /** A shard's state for its snapshot, with the epoch and seq it is at; null once the shard left this worker. */
  capture(n: number): { epoch: number; seq: number; snap: ShardSnapshot } | null {
    const st = this.shards.get(n);
    if (!st || (st.role !== 'master' && !st.handingOffTo && !this.stopHeld?.has(n))) return null;
    return { epoch: st.epoch, seq: st.seq, snap: this.snapshot(n) };
  }

  /**
   * Graceful stop, after the handoffs: the shards nobody took (no live
   * successor, or a handoff not confirmed in time or refused: every host
   * stopping at once) stop taking writes, then their snapshots are written.
   */
  async persistAll(budgetMs: number): Promise<void> {
    if (!this.persistence) return;
    // A handoff accepted just before the stop began may still be claiming:
    // once it wins, its old master lets the shard go on our confirmation, so
    // it must be in our snapshot set. Wait for such claims (a bounded share
    // of the budget); one that wins later is refused (doClaim).
    const t0 = Date.now();
    const claims = [...this.shards.values()].map((s) => s.claiming).filter((c): c is Promise<boolean> => c !== null);
    if (claims.length > 0) {
      let bound: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled(claims), new Promise((r) => { bound = setTimeout(r, budgetMs / 4); })]);
      clearTimeout(bound);
    }
    this.persisting = true;
    budgetMs -= Date.now() - t0;
    this.stopHeld ??= new Set(this.served().map((s) => s.n));
    // A claim still pending with the state here (a promotion that may have fenced the old master already): snapshot this copy too.
    for (const st of this.shards.values()) if (st.role === 'master' && !st.ready && st.hasState) this.stopHeld.add(st.n);
    const shards: { n: number; seq: number }[] = [];
    for (const st of this.shards.values()) {
      if (!(st.role === 'master' && st.ready) && !st.handingOffTo && !this.stopHeld?.has(st.n)) continue;
      // Not serving any more (also to this worker's own sessions): nothing is acknowledged after the snapshot.
      this.bus.serve(st.n, false);
      st.ready = false;
      shards.push({ n: st.n, seq: st.seq });
    }
    await this.persistence.stop({ served: () => shards, capture: (n) => this.capture(n) }, budgetMs);
    this.persisted = true;
  }

  onActorExit(actor: Actor<any>, reason: StopReason): void {
    if (actor instanceof UserActor && this.users.get(actor.id) === actor) this.users.delete(actor.id);
    if (actor instanceof RoomActor && this.rooms.get(actor.id) === actor) this.rooms.delete(actor.id);
    if (actor instanceof UserActor || actor instanceof RoomActor) {
      const n = shardOf(actor.id, this.config.shards);
      const set = this.byShard.get(n);
      if (set?.delete(actor) && set.size === 0) this.byShard.delete(n);
    }
    if (reason.kind === 'crash') {
      this.crashes++;
      this.logger.error({ err: reason.error, actor: actor instanceof UserActor ? `user:${actor.id}` : `room:${(actor as RoomActor).id}` }, 'actor crashed; its state is lost, every other actor goes on');
    }
  }
}

function hostOf(addr: WorkerAddr): string {
  return addr.slice(0, addr.lastIndexOf('.'));
}
