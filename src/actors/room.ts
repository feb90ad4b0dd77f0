/**
 * The room actor: one per room, placed like users. Members (one Phoenix
 * Presence meta per connection, keyed by user id), a bounded history with
 * sequence numbers, and broadcast: each message is encoded once, as the
 * complete Phoenix frame, and published on the room's subject; every worker
 * with members subscribes once and writes the same bytes to its sockets.
 *
 * Its history is bounded by count and bytes (room.historyMax,
 * room.historyMaxBytes: the oldest go first), and every byte it holds is
 * counted into the worker's storage budget; the master refuses a message,
 * or a join that would create the room, when the budget is full, and stamps
 * the refusal so every copy applies it (docs/storage.md). A room with no
 * member and no message ever stops (nothing in it is worth keeping).
 */
import { StoredActor } from './stored-actor.js';
import type { TimerEntry } from './timer-wheel.js';
import type { ShardHost } from './shard-host.js';
import { SandbarError, toWire } from '../errors.js';
import { ROOM_OVERHEAD, dedupSlotBytes, entryBytes, measureBody, refusalError } from '../storage/index.js';
import { encodePush } from '../protocol/frame.js';
import type { PresenceDiff, PresenceEntry } from '../protocol/presence.js';
import type { Meta, PurgeCmd, RoomCmd, WorkerAddr } from '../bus/messages.js';
import { DedupWindow, dedupLimits, type DedupEntry } from './dedup-window.js';
import { emitting, presence, roomMessage } from '../events/schema.js';

export interface RoomMessage { readonly seq: number; readonly from: string; readonly id: string; readonly body: unknown; readonly at: number }

/** hidden: a member the presence policy keeps out of presence (docs/auth.md). */
interface Member { readonly w: WorkerAddr; readonly uid: string; readonly meta: Meta; readonly hidden?: true }

export interface RoomSnapshot {
  id: string;
  seq: number;
  history: RoomMessage[];
  /** Counted bytes of each history message (absent in older snapshots: computed on restore). */
  sizes?: number[];
  dedup: DedupEntry[];
  members: [string, WorkerAddr, string, Meta, (1 | undefined)?][];
}

/**
 * Presence diffs are coalesced for this long: a room that 10,000 members join
 * in a burst would otherwise send each join to every member (10^8 frames).
 */
export const PRESENCE_BATCH_MS = 50;

export class RoomActor extends StoredActor<RoomCmd | PurgeCmd> implements TimerEntry {
  timerSlot = -1;
  private diff: PresenceDiff | null = null;
  readonly members = new Map<string, Member>();
  /** Ring of the last room.historyMax messages, oldest first. */
  history: RoomMessage[] = [];
  /** Counted bytes of each history message, in step with history. */
  private sizes: number[] = [];
  /** Sum of sizes: what room.historyMaxBytes bounds. */
  historyBytes = 0;
  seq = 0;
  /** Recent client message ids per sender (dedup-window.ts). */
  private readonly dedup: DedupWindow;
  readonly topic: string;

  constructor(private readonly host: ShardHost, id: string) {
    super(host, id, ROOM_OVERHEAD);
    this.topic = `room:${id}`;
    this.dedup = new DedupWindow(dedupLimits(host.config));
  }

  /** No member and no message ever: the same as no actor at all. */
  private get empty(): boolean { return this.members.size === 0 && this.seq === 0; }

  protected handle(cmd: RoomCmd | PurgeCmd): void {
    switch (cmd.op) {
      case 'r.join': {
        const max = this.host.config.room.maxMembers;
        if (!this.members.has(cmd.sid) && this.members.size >= max) {
          this.host.replyError(cmd, toWire(new SandbarError('SANDBAR_ERR_ROOM_FULL', `room ${this.id} has ${max} members (room.maxMembers)`)));
          return;
        }
        // A join that creates a room stores something; one to a room that exists never asks.
        if (this.empty) {
          if (!this.host.silent) cmd.refused = this.storage.budget.admit(this.shard, 0, cmd.uid);
          if (cmd.refused) {
            this.host.replyError(cmd, toWire(refusalError(cmd.refused, `room ${this.id}`)));
            this.stop();
            return;
          }
        }
        this.members.set(cmd.sid, cmd.hidden ? { w: cmd.w, uid: cmd.uid, meta: cmd.meta, hidden: true } : { w: cmd.w, uid: cmd.uid, meta: cmd.meta });
        this.host.reply(cmd, {
          seq: this.seq,
          // Only a worker without its own copy of the room's presence needs
          // it (once); others build presence_state from the diffs they
          // follow. Sending the whole state with every join made a burst of
          // N joins cost O(N^2) (a 2,000-member room stalled a worker).
          presence: cmd.state && !this.host.silent ? this.presenceState() : undefined,
          history: cmd.last === null || cmd.last >= this.seq ? [] : this.history.filter((m) => m.seq > cmd.last!),
        });
        if (!cmd.hidden) {
          this.queueDiff('joins', cmd.uid, cmd.meta);
          if (emitting(this.host, 'presence.join')) this.host.event(presence('presence.join', this.id, cmd.uid, cmd.meta, Date.now()), this.id);
        }
        return;
      }
      case 'r.leave': {
        const m = this.members.get(cmd.sid);
        if (!m) return;
        this.members.delete(cmd.sid);
        this.left(m);
        return;
      }
      case 'purge': {
        for (const [sid, m] of this.members) {
          if (m.w !== cmd.w) continue;
          this.members.delete(sid);
          this.left(m);
        }
        return;
      }
      case 'r.meta': {
        // A member's new meta (Phoenix's Presence.update): the old meta leaves and the new one joins, in one diff.
        const m = this.members.get(cmd.sid);
        if (!m) {
          this.host.replyError(cmd, toWire(new SandbarError('SANDBAR_ERR_NOT_FOUND', `session ${cmd.sid} is not a member of room ${this.id}`)));
          return;
        }
        // A resend of an update already applied changes nothing (its diff would remove the member).
        if (m.meta.phx_ref !== cmd.meta.phx_ref) {
          this.members.set(cmd.sid, m.hidden ? { w: m.w, uid: m.uid, meta: cmd.meta, hidden: true } : { w: m.w, uid: m.uid, meta: cmd.meta });
          // A member the presence policy hides stays out of presence (docs/auth.md).
          if (!m.hidden) {
            this.queueDiff('leaves', m.uid, m.meta);
            this.queueDiff('joins', m.uid, cmd.meta);
          }
        }
        this.host.reply(cmd, { phx_ref: cmd.meta.phx_ref });
        return;
      }
      case 'r.msg': {
        const seen = this.dedup.get(cmd.from, cmd.mid);
        if (seen !== undefined) {
          this.host.reply(cmd, { seq: seen, duplicate: true });
          return;
        }
        const max = this.host.config.room.historyMax;
        const size = max > 0 ? entryBytes(cmd.size ?? measureBody(cmd.body), cmd.from, cmd.mid) : 0;
        const window = this.host.config.user.dedupWindow;
        const slot = window > 0 ? dedupSlotBytes(cmd.from, cmd.mid) : 0;
        // The master asks its budget and stamps the answer; copies apply the stamp.
        if (!this.host.silent) cmd.refused = this.storage.budget.admit(this.shard, size + slot, cmd.from);
        if (cmd.refused) {
          this.host.replyError(cmd, toWire(refusalError(cmd.refused, `room ${this.id}`)));
          return;
        }
        const msg: RoomMessage = { seq: ++this.seq, from: cmd.from, id: cmd.mid, body: cmd.body, at: cmd.at ?? 0 };
        if (max > 0) this.keep(msg, size, max);
        if (window > 0) {
          const before = this.dedup.bytes;
          this.dedup.add(cmd.from, cmd.mid, msg.seq, msg.at);
          this.count(this.dedup.bytes - before);
        }
        this.host.reply(cmd, { seq: msg.seq });
        this.publish('msg', msg);
        if (emitting(this.host, 'room.message')) this.host.event(roomMessage(this.id, msg), this.id);
        return;
      }
    }
  }

  /** A member left (a leave, or its worker died): out of presence, and an event out. */
  private left(m: Member): void {
    if (m.hidden) return;
    this.queueDiff('leaves', m.uid, m.meta);
    if (emitting(this.host, 'presence.leave')) this.host.event(presence('presence.leave', this.id, m.uid, m.meta, Date.now()), this.id);
  }

  /** Appends to the history, dropping the oldest past room.historyMax or room.historyMaxBytes. */
  private keep(msg: RoomMessage, size: number, max: number): void {
    this.history.push(msg);
    this.sizes.push(size);
    this.historyBytes += size;
    this.countEntry(msg.from, size);
    const maxBytes = this.host.config.room.historyMaxBytes;
    let trimmed = 0;
    while (this.history.length > max || (this.historyBytes > maxBytes && this.history.length > 1)) {
      const gone = this.history.shift()!;
      const freed = this.sizes.shift()!;
      this.historyBytes -= freed;
      this.countEntry(gone.from, -freed);
      trimmed++;
    }
    if (trimmed > 0 && !this.host.silent) this.storage.historyTrimmed += trimmed;
  }

  private queueDiff(kind: 'joins' | 'leaves', uid: string, meta: Meta): void {
    if (!this.diff) {
      this.diff = { joins: {}, leaves: {} };
      this.host.fastWheel.schedule(this, this.host.fastWheel.clock.now() + PRESENCE_BATCH_MS);
    }
    const side = this.diff[kind];
    (side[uid] ??= { metas: [] }).metas.push(meta);
  }

  /** Flushes the coalesced presence diff; a room left empty with no message ever then stops. */
  onTimer(): void {
    this.guard(() => {
      const d = this.diff;
      this.diff = null;
      if (d) this.publish('presence_diff', d);
      if (this.empty) this.stop();
    });
  }

  protected override terminate(): void {
    this.host.fastWheel.cancel(this);
    this.uncountAll(this.history, this.sizes);
  }

  /** One encode, one publish; workers fan the bytes out to their members. */
  private publish(event: string, payload: unknown): void {
    this.host.publishRoom(this.id, encodePush(null, this.topic, event, payload));
  }

  /**
   * After a promotion: every member gets the whole presence state again. The
   * phoenix Presence class diffs it against what it had, so leaves the dead
   * master never broadcast (its workers' sessions) still reach every client.
   */
  announcePresence(): void {
    if (this.members.size > 0) this.publish('presence_state', this.presenceState());
  }

  /** After a promotion: the stored message of a msg command goes out again (clients dedup by seq). */
  redeliver(cmd: RoomCmd): void {
    if (cmd.op !== 'r.msg') return;
    const seq = this.dedup.get(cmd.from, cmd.mid);
    const msg = seq === undefined ? undefined : this.history.find((m) => m.seq === seq);
    if (!msg) return;
    this.publish('msg', msg);
    if (emitting(this.host, 'room.message')) this.host.event(roomMessage(this.id, msg), this.id);
  }

  /** The room's state at this instant (copies of the arrays: see UserActor.snapshot). */
  snapshot(): RoomSnapshot {
    return { id: this.id, seq: this.seq, history: this.history.slice(), sizes: this.sizes.slice(), dedup: this.dedup.snapshot(), members: [...this.members].map(([sid, m]) => m.hidden ? [sid, m.w, m.uid, m.meta, 1] : [sid, m.w, m.uid, m.meta]) };
  }

  restore(s: RoomSnapshot): void {
    this.uncountAll(this.history, this.sizes);
    this.count(ROOM_OVERHEAD);
    this.seq = s.seq;
    this.history = s.history;
    this.sizes = s.sizes && s.sizes.length === s.history.length ? s.sizes : s.history.map((m) => entryBytes(measureBody(m.body), m.from, m.id));
    let bytes = 0;
    for (let i = 0; i < this.history.length; i++) {
      bytes += this.sizes[i]!;
      this.countEntry(this.history[i]!.from, this.sizes[i]!);
    }
    this.historyBytes = bytes;
    // uncountAll above took the old ids out with everything else.
    this.dedup.restore(s.dedup, Date.now());
    this.count(this.dedup.bytes);
    this.members.clear();
    for (const [sid, w, uid, meta, hidden] of s.members) this.members.set(sid, hidden ? { w, uid, meta, hidden: true } : { w, uid, meta });
  }

  presenceState(): Record<string, PresenceEntry> {
    const out: Record<string, PresenceEntry> = {};
    for (const m of this.members.values()) if (!m.hidden) (out[m.uid] ??= { metas: [] }).metas.push(m.meta);
    return out;
  }
}
