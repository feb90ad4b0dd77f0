/**
 * The user actor: one per user, on the worker that masters the user's shard.
 * It holds the user's connections (every device, every worker) with their
 * Phoenix Presence metas, an ordered inbox of messages not yet acknowledged,
 * and the recent client message ids (dedup), and fans each message out to
 * every connection of the user.
 *
 * A dm is acknowledged to its sender only once it is in the inbox here (and,
 * with replication, on every live replica).
 *
 * What it stores is bounded (docs/storage.md): by count and bytes per inbox
 * (user.inboxMax, user.inboxMaxBytes), by age (user.inboxTtlMs: expired
 * messages are dropped by a `u.expire` command the master stamps with its
 * time, so every copy drops the same ones), and by the worker's storage
 * budget, into which the actor counts every byte it holds. Only the master
 * asks the budget; it stamps a refusal into the command and every copy
 * honours the stamp.
 */
import { StoredActor } from './stored-actor.js';
import type { TimerEntry } from './timer-wheel.js';
import type { ShardHost } from './shard-host.js';
import { SandbarError, toWire } from '../errors.js';
import { USER_OVERHEAD, dedupSlotBytes, entryBytes, measureBody, refusalError } from '../storage/index.js';
import { encodePush } from '../protocol/frame.js';
import { presenceDiff, type PresenceEntry } from '../protocol/presence.js';
import type { Meta, PurgeCmd, UserCmd, WorkerAddr } from '../bus/messages.js';
import { DedupWindow, dedupLimits, type DedupEntry } from './dedup-window.js';
import { dmAcked, dmDelivered, dmStored, emitting } from '../events/schema.js';

export interface InboxEntry { readonly seq: number; readonly from: string; readonly id: string; readonly body: unknown; readonly at: number }

interface Conn { readonly w: WorkerAddr; readonly meta: Meta }

/** Until the master's `u.expire` comes back, a copy whose inbox head expired asks again this often. */
const EXPIRE_RETRY_MS = 5000;

export interface UserSnapshot {
  id: string;
  seq: number;
  inbox: InboxEntry[];
  /** Counted bytes of each inbox entry (absent in snapshots from before they were recorded: computed on restore). */
  sizes?: number[];
  dedup: DedupEntry[];
  conns: [string, WorkerAddr, Meta][];
}

export class UserActor extends StoredActor<UserCmd | PurgeCmd> implements TimerEntry {
  timerSlot = -1;
  readonly conns = new Map<string, Conn>();
  inbox: InboxEntry[] = [];
  /** Counted bytes of each inbox entry, in step with inbox (null until the first one). */
  private sizes: number[] | null = null;
  /** Sum of sizes: what user.inboxMaxBytes bounds. */
  inboxBytes = 0;
  seq = 0;
  /** When the last connection left (ms since the epoch), 0 while never. */
  lastSeenAt = 0;
  /** Recent client message ids per sender (dedup-window.ts); made on the first message. */
  private dedup: DedupWindow | null = null;

  constructor(private readonly host: ShardHost, id: string) {
    super(host, id, USER_OVERHEAD);
  }

  /** Built when needed: an idle user does not carry its topic string. */
  get topic(): string { return `user:${this.id}`; }

  protected handle(cmd: UserCmd | PurgeCmd): void {
    switch (cmd.op) {
      case 'u.join': {
        this.conns.set(cmd.sid, { w: cmd.w, meta: cmd.meta });
        this.reschedule();
        if (this.host.silent) return; // a replica's reply and broadcast go nowhere
        const last = cmd.last ?? 0;
        const replay = last < this.seq ? this.replay(last) : [];
        this.host.reply(cmd, { seq: this.seq, presence: this.presenceState(), replay });
        if (replay.length > 0 && emitting(this.host, 'dm.delivered')) this.host.event(dmDelivered(this.id, replay[0]!.seq, replay[replay.length - 1]!.seq, 1, Date.now(), cmd.sid), this.id);
        this.broadcast('presence_diff', presenceDiff(this.id, cmd.meta, null));
        return;
      }
      case 'u.leave': {
        const c = this.conns.get(cmd.sid);
        if (!c) return;
        this.conns.delete(cmd.sid);
        this.left([c.meta]);
        return;
      }
      case 'purge': {
        const gone: Meta[] = [];
        for (const [sid, c] of this.conns) if (c.w === cmd.w) { gone.push(c.meta); this.conns.delete(sid); }
        if (gone.length) this.left(gone);
        return;
      }
      case 'u.dm': return this.dm(cmd);
      case 'u.ack': {
        if (!Number.isSafeInteger(cmd.seq) || cmd.seq < 0 || cmd.seq > this.seq) {
          this.host.replyError(cmd, toWire(new SandbarError('SANDBAR_ERR_BAD_PAYLOAD', `ack seq ${cmd.seq} is beyond the last seq ${this.seq}`)));
          return;
        }
        let n = 0;
        while (n < this.inbox.length && this.inbox[n]!.seq <= cmd.seq) n++;
        if (n) this.dropHead(n);
        this.host.reply(cmd, { seq: cmd.seq, pending: this.inbox.length });
        if (n && emitting(this.host, 'dm.acked')) this.host.event(dmAcked(this.id, cmd.seq, this.inbox.length, Date.now()), this.id);
        this.reschedule();
        return;
      }
      case 'u.expire': {
        // The master's clock decides; every copy applies its stamp.
        if (!this.host.silent) cmd.at = Date.now();
        this.expire(cmd.at ?? 0);
        this.reschedule();
        return;
      }
    }
  }

  /** Unacknowledged messages after last, without those past user.inboxTtlMs that no expire has dropped yet. */
  private replay(last: number): InboxEntry[] {
    const ttl = this.host.config.user.inboxTtlMs;
    const cutoff = ttl > 0 ? Date.now() - ttl : -Infinity;
    return this.inbox.filter((m) => m.seq > last && m.at > cutoff);
  }

  /** Drops the first n inbox entries (acknowledged or expired) and uncounts them. */
  private dropHead(n: number): void {
    let freed = 0;
    const sizes = this.sizes!;
    for (let i = 0; i < n; i++) {
      freed += sizes[i]!;
      this.countEntry(this.inbox[i]!.from, -sizes[i]!);
    }
    this.inbox = this.inbox.slice(n);
    this.sizes = sizes.slice(n);
    this.inboxBytes -= freed;
  }

  /** Drops the messages stored at or before `at` - user.inboxTtlMs (at: a time the master stamped). */
  private expire(at: number): void {
    const ttl = this.host.config.user.inboxTtlMs;
    if (ttl <= 0 || this.inbox.length === 0) return;
    const cutoff = at - ttl;
    let n = 0;
    while (n < this.inbox.length && this.inbox[n]!.at <= cutoff) n++;
    if (n === 0) return;
    this.dropHead(n);
    if (!this.host.silent) this.storage.expired(n, this.id);
  }

  private dm(cmd: Extract<UserCmd, { op: 'u.dm' }>): void {
    const seen = this.dedup?.get(cmd.from, cmd.mid);
    if (seen !== undefined) {
      this.host.reply(cmd, { seq: seen, duplicate: true });
      return;
    }
    const at = cmd.at ?? 0;
    this.expire(at);
    const cfg = this.host.config.user;
    if (this.inbox.length >= cfg.inboxMax) {
      if (!this.host.silent) this.storage.refusedInbox(this.id);
      this.host.replyError(cmd, toWire(new SandbarError('SANDBAR_ERR_INBOX_FULL', `inbox of ${this.id} holds ${cfg.inboxMax} unacknowledged messages (user.inboxMax)`)));
      return;
    }
    // Counted once, here, from the body's length the sender's worker measured.
    const size = entryBytes(cmd.size ?? measureBody(cmd.body), cmd.from, cmd.mid);
    if (this.inboxBytes + size > cfg.inboxMaxBytes) {
      if (!this.host.silent) this.storage.refusedInbox(this.id);
      this.host.replyError(cmd, toWire(new SandbarError('SANDBAR_ERR_INBOX_FULL', `inbox of ${this.id} holds ${this.inboxBytes} bytes of unacknowledged messages; this one would pass user.inboxMaxBytes (${cfg.inboxMaxBytes})`)));
      return;
    }
    const window = cfg.dedupWindow;
    const slot = window > 0 ? dedupSlotBytes(cmd.from, cmd.mid) : 0;
    // The master asks its budget and stamps the answer; copies apply the stamp.
    if (!this.host.silent) cmd.refused = this.storage.budget.admit(this.shard, size + slot, cmd.from);
    if (cmd.refused) {
      this.host.replyError(cmd, toWire(refusalError(cmd.refused, `user ${this.id}`)));
      // Made for this dm only (a recipient never seen): nothing worth keeping.
      if (this.idle()) this.stop();
      return;
    }
    const entry: InboxEntry = { seq: ++this.seq, from: cmd.from, id: cmd.mid, body: cmd.body, at };
    this.inbox.push(entry);
    (this.sizes ??= []).push(size);
    this.inboxBytes += size;
    this.countEntry(cmd.from, size);
    if (window > 0) {
      const d = (this.dedup ??= new DedupWindow(dedupLimits(this.host.config)));
      const before = d.bytes;
      d.add(cmd.from, cmd.mid, entry.seq, at);
      this.count(d.bytes - before);
    }
    // The TTL deadline follows the oldest message: it moves only when that changes.
    if (this.inbox.length === 1) this.reschedule();
    this.host.reply(cmd, { seq: entry.seq });
    this.broadcast('dm', entry);
    this.storedEvents(entry);
  }

  private storedEvents(entry: InboxEntry): void {
    if (emitting(this.host, 'dm.stored')) this.host.event(dmStored(this.id, entry), this.id);
    if (this.conns.size > 0 && emitting(this.host, 'dm.delivered')) this.host.event(dmDelivered(this.id, entry.seq, entry.seq, this.conns.size, entry.at), this.id);
  }

  private left(metas: Meta[]): void {
    // Informational (operators): replicas stamp their own clock.
    if (this.conns.size === 0) this.lastSeenAt = Date.now();
    this.broadcast('presence_diff', presenceDiff(this.id, null, metas));
    this.reschedule();
  }

  /** Every connection of the user gets the frame, encoded once. */
  private broadcast(event: string, payload: unknown): void {
    if (this.conns.size === 0) return;
    const byWorker = new Map<WorkerAddr, string[]>();
    for (const [sid, c] of this.conns) {
      const list = byWorker.get(c.w);
      if (list) list.push(sid); else byWorker.set(c.w, [sid]);
    }
    this.host.deliver(byWorker, encodePush(null, this.topic, event, payload));
  }

  /** After a promotion: the user's devices get the whole presence state again (see RoomActor.announcePresence). */
  announcePresence(): void {
    this.broadcast('presence_state', this.presenceState());
  }

  /** After a promotion: the stored message of a dm command goes out again (clients dedup by seq). */
  redeliver(cmd: UserCmd): void {
    if (cmd.op !== 'u.dm') return;
    const seq = this.dedup?.get(cmd.from, cmd.mid);
    const entry = seq === undefined ? undefined : this.inbox.find((m) => m.seq === seq);
    if (!entry) return;
    this.broadcast('dm', entry);
    this.storedEvents(entry);
  }

  /**
   * The actor's state at this instant. The arrays are copies (of references:
   * entries never change), so a snapshot written to JetStream piece by piece
   * (persistence/snapshot-codec.ts) still shows this instant.
   */
  snapshot(): UserSnapshot {
    return {
      id: this.id, seq: this.seq, inbox: this.inbox.slice(), sizes: this.sizes ? this.sizes.slice() : [],
      dedup: this.dedup ? this.dedup.snapshot() : [], conns: [...this.conns].map(([sid, c]) => [sid, c.w, c.meta]),
    };
  }

  restore(s: UserSnapshot): void {
    this.uncountAll(this.inbox, this.sizes);
    this.count(USER_OVERHEAD);
    this.seq = s.seq;
    this.inbox = s.inbox;
    // Sizes travel with the state; an older snapshot without them is measured once, the same way on every copy.
    this.sizes = s.sizes && s.sizes.length === s.inbox.length ? s.sizes : s.inbox.map((e) => entryBytes(measureBody(e.body), e.from, e.id));
    let bytes = 0;
    for (let i = 0; i < this.inbox.length; i++) {
      bytes += this.sizes[i]!;
      this.countEntry(this.inbox[i]!.from, this.sizes[i]!);
    }
    this.inboxBytes = bytes;
    this.dedup = null;
    if (s.dedup.length > 0) {
      this.dedup = new DedupWindow(dedupLimits(this.host.config));
      this.dedup.restore(s.dedup, Date.now());
      this.count(this.dedup.bytes);
    }
    this.conns.clear();
    for (const [sid, w, meta] of s.conns) this.conns.set(sid, { w, meta });
    this.reschedule();
  }

  presenceState(): Record<string, PresenceEntry> {
    if (this.conns.size === 0) return {};
    return { [this.id]: { metas: [...this.conns.values()].map((c) => c.meta) } };
  }

  /**
   * With no connection, an empty inbox and no message ever stored, stop after
   * user.idleStopMs. A user that has a sequence keeps its (small) actor:
   * sequence numbers must never go back, or a client's last_seq would hide
   * new messages.
   */
  private idle(): boolean { return this.conns.size === 0 && this.inbox.length === 0 && this.seq === 0; }

  /**
   * The actor's one timer: the idle stop while idle, else the expiry of its
   * oldest message (user.inboxTtlMs), else none.
   */
  private reschedule(): void {
    const wheel = this.host.wheel;
    if (this.idle()) { wheel.schedule(this, wheel.clock.now() + this.host.config.user.idleStopMs); return; }
    const ttl = this.host.config.user.inboxTtlMs;
    if (ttl > 0 && this.inbox.length > 0) {
      // Entries carry wall-clock times; the wheel runs on the monotonic clock.
      wheel.schedule(this, wheel.clock.now() + Math.max(0, this.inbox[0]!.at + ttl - Date.now()));
      return;
    }
    wheel.cancel(this);
  }

  onTimer(): void {
    this.guard(() => {
      if (this.idle()) { this.stop(); return; }
      const ttl = this.host.config.user.inboxTtlMs;
      if (ttl > 0 && this.inbox.length > 0 && this.inbox[0]!.at + ttl <= Date.now()) {
        // Retry first: on the master the expire below is applied at once and reschedules.
        this.host.wheel.schedule(this, this.host.wheel.clock.now() + EXPIRE_RETRY_MS);
        // To the shard's master (in-process when it is this worker), which stamps its time.
        this.host.bus.cast(this.shard, { op: 'u.expire', id: this.id });
        return;
      }
      this.reschedule();
    });
  }

  protected override terminate(): void {
    this.host.wheel.cancel(this);
    this.uncountAll(this.inbox, this.sizes);
  }
}
