/**
 * The user actor: one per user, on the worker that masters the user's shard.
 * It holds the user's connections (every device, every worker) with their
 * Phoenix Presence metas, an ordered inbox of messages not yet acknowledged,
 * and the recent client message ids (dedup), and fans each message out to
 * every connection of the user.
 *
 * A dm is acknowledged to its sender only once it is in the inbox here (and,
 * with replication, on every live replica).
 */
import { Actor } from './actor.js';
import type { TimerEntry } from './timer-wheel.js';
import type { ShardHost } from './shard-host.js';
import { SandbarError, toWire } from '../errors.js';
import { encodePush } from '../protocol/frame.js';
import { presenceDiff, type PresenceEntry } from '../protocol/presence.js';
import type { Meta, PurgeCmd, UserCmd, WorkerAddr } from '../bus/messages.js';
import { DedupWindow, dedupLimits, type DedupEntry } from './dedup-window.js';
import { dmAcked, dmDelivered, dmStored, emitting } from '../events/schema.js';

export interface InboxEntry { readonly seq: number; readonly from: string; readonly id: string; readonly body: unknown; readonly at: number }

interface Conn { readonly w: WorkerAddr; readonly meta: Meta }

export interface UserSnapshot {
  id: string;
  seq: number;
  inbox: InboxEntry[];
  dedup: DedupEntry[];
  conns: [string, WorkerAddr, Meta][];
}

export class UserActor extends Actor<UserCmd | PurgeCmd> implements TimerEntry {
  timerSlot = -1;
  readonly conns = new Map<string, Conn>();
  inbox: InboxEntry[] = [];
  seq = 0;
  /** When the last connection left (ms since the epoch), 0 while never. */
  lastSeenAt = 0;
  /** Recent client message ids per sender (dedup-window.ts); made on the first message. */
  private dedup: DedupWindow | null = null;

  constructor(private readonly host: ShardHost, readonly id: string) {
    super(host);
  }

  /** Built when needed: an idle user does not carry its topic string. */
  get topic(): string { return `user:${this.id}`; }

  protected handle(cmd: UserCmd | PurgeCmd): void {
    switch (cmd.op) {
      case 'u.join': {
        this.conns.set(cmd.sid, { w: cmd.w, meta: cmd.meta });
        this.host.wheel.cancel(this);
        const last = cmd.last ?? 0;
        const replay = last < this.seq ? this.inbox.filter((m) => m.seq > last) : [];
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
        if (n) this.inbox = this.inbox.slice(n);
        this.host.reply(cmd, { seq: cmd.seq, pending: this.inbox.length });
        if (n && emitting(this.host, 'dm.acked')) this.host.event(dmAcked(this.id, cmd.seq, this.inbox.length, Date.now()), this.id);
        this.maybeIdle();
        return;
      }
    }
  }

  private dm(cmd: Extract<UserCmd, { op: 'u.dm' }>): void {
    const seen = this.dedup?.get(cmd.from, cmd.mid);
    if (seen !== undefined) {
      this.host.reply(cmd, { seq: seen, duplicate: true });
      return;
    }
    const max = this.host.config.user.inboxMax;
    if (this.inbox.length >= max) {
      this.host.replyError(cmd, toWire(new SandbarError('SANDBAR_ERR_INBOX_FULL', `inbox of ${this.id} holds ${max} unacknowledged messages (user.inboxMax)`)));
      return;
    }
    const entry: InboxEntry = { seq: ++this.seq, from: cmd.from, id: cmd.mid, body: cmd.body, at: cmd.at ?? 0 };
    this.inbox.push(entry);
    (this.dedup ??= new DedupWindow(dedupLimits(this.host.config))).add(cmd.from, cmd.mid, entry.seq, entry.at);
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
    this.maybeIdle();
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

  snapshot(): UserSnapshot {
    return { id: this.id, seq: this.seq, inbox: this.inbox, dedup: this.dedup ? this.dedup.snapshot() : [], conns: [...this.conns].map(([sid, c]) => [sid, c.w, c.meta]) };
  }

  restore(s: UserSnapshot): void {
    this.seq = s.seq;
    this.inbox = s.inbox;
    this.dedup = null;
    if (s.dedup.length > 0) (this.dedup = new DedupWindow(dedupLimits(this.host.config))).restore(s.dedup, Date.now());
    this.conns.clear();
    for (const [sid, w, meta] of s.conns) this.conns.set(sid, { w, meta });
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

  private maybeIdle(): void {
    if (this.idle()) this.host.wheel.schedule(this, this.host.wheel.clock.now() + this.host.config.user.idleStopMs);
  }

  onTimer(): void {
    this.guard(() => { if (this.idle()) this.stop(); });
  }

  protected override terminate(): void { this.host.wheel.cancel(this); }
}
