/**
 * Per-sender budgets, checked on the sender's worker before a dm or room
 * message is sent to its shard: new recipients per minute, new rooms per
 * minute, body bytes per minute. Spraying random ids is refused with
 * SANDBAR_ERR_SEND_QUOTA while ordinary use never notices: a message to one
 * of the sender's recent recipients (or rooms) costs no "new" token.
 *
 * Each budget is a token bucket holding one minute's worth, refilled lazily
 * from the time of the next message (no timer). "Recent" is a small ring of
 * recipient hashes per sender (the last 16 users, the last 8 rooms): a
 * collision costs a token nobody pays, never a refusal.
 *
 * The state is per worker and keyed by the sender's user id, in a map of at
 * most {@link MAX_SENDERS} senders (the least recently refreshed is
 * forgotten first, and starts again with full buckets). A client with
 * sessions on W workers therefore gets at most W times each budget; the
 * sessions one address may hold (http.ipMaxSessions) bound W × users
 * (docs/storage.md).
 */
import { SandbarError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { ThrottledLog } from './throttled-log.js';

/** Most senders a worker tracks (about 300 bytes each). */
export const MAX_SENDERS = 20_000;
const RECENT_USERS = 16;
const RECENT_ROOMS = 8;
/** A sender's place in the map is refreshed at most this often (a Map delete and set per message would cost more). */
const REFRESH_MS = 5_000;
const MINUTE = 60_000;

export interface SenderLimits {
  /** Each 0: no limit. */
  readonly newRecipientsPerMin: number;
  readonly newRoomsPerMin: number;
  readonly bytesPerMin: number;
  /** message.maxBytes: the bytes bucket holds at least one largest message. */
  readonly maxBodyBytes: number;
}

class Sender {
  readonly users = new Int32Array(RECENT_USERS);
  readonly rooms = new Int32Array(RECENT_ROOMS);
  userPos = 0;
  roomPos = 0;
  nUsers = 0;
  nRooms = 0;
  recipients: number;
  newRooms: number;
  bytes: number;
  /** When the buckets were last refilled, and when the map entry was refreshed (ms). */
  at: number;
  seen: number;
  constructor(l: SenderLimits, now: number) {
    this.recipients = l.newRecipientsPerMin;
    this.newRooms = l.newRoomsPerMin;
    this.bytes = bytesCap(l);
    this.at = now;
    this.seen = now;
  }
}

function bytesCap(l: SenderLimits): number {
  return Math.max(l.bytesPerMin, l.maxBodyBytes);
}

/** One line per this many ms at most about refused senders. */
const REFUSAL_LOG_MS = 10_000;

/**
 * FNV-1a over the id's UTF-16 code units: only this worker compares these
 * hashes (the recent rings), so unlike placement's hash (UTF-8 bytes, the
 * same in every language) it need not encode the string first, and a
 * message costs no allocation here.
 */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h | 0;
}

/** Whether h is in the first n slots of ring. */
function has(ring: Int32Array, n: number, h: number): boolean {
  for (let i = 0; i < n; i++) if (ring[i] === h) return true;
  return false;
}

export type QuotaKind = 'recipients' | 'rooms' | 'bytes';

export class SenderBudget {
  private readonly senders = new Map<string, Sender>();
  /** Messages refused, by budget. */
  readonly refused = { recipients: 0, rooms: 0, bytes: 0 };
  private readonly log = new ThrottledLog(REFUSAL_LOG_MS);

  constructor(private readonly limits: SenderLimits, private readonly maxSenders = MAX_SENDERS, private readonly logger: Logger | null = null) {}

  get size(): number { return this.senders.size; }

  /** A dm from `from` to `to` of `bytes` body bytes at `now` (ms): throws SANDBAR_ERR_SEND_QUOTA when over a budget. */
  dm(from: string, to: string, bytes: number, now: number): void {
    this.check(from, to, false, bytes, now);
  }

  /** A room message from `from` to room `room`. */
  roomMsg(from: string, room: string, bytes: number, now: number): void {
    this.check(from, room, true, bytes, now);
  }

  private check(from: string, target: string, room: boolean, bytes: number, now: number): void {
    const l = this.limits;
    const s = this.sender(from, now);
    // Refill every bucket for the time since the last message.
    const dt = Math.max(0, now - s.at);
    s.at = now;
    if (dt > 0) {
      s.recipients = Math.min(l.newRecipientsPerMin, s.recipients + dt * l.newRecipientsPerMin / MINUTE);
      s.newRooms = Math.min(l.newRoomsPerMin, s.newRooms + dt * l.newRoomsPerMin / MINUTE);
      s.bytes = Math.min(bytesCap(l), s.bytes + dt * l.bytesPerMin / MINUTE);
    }
    const perMin = room ? l.newRoomsPerMin : l.newRecipientsPerMin;
    let fresh = false;
    let h = 0;
    if (perMin > 0) {
      h = hash32(target);
      fresh = room ? !has(s.rooms, s.nRooms, h) : !has(s.users, s.nUsers, h);
      if (fresh && (room ? s.newRooms : s.recipients) < 1) {
        throw this.refuse(room ? 'rooms' : 'recipients', from, now, room ? `at most ${perMin} new rooms per minute (sender.newRoomsPerMin)` : `at most ${perMin} new recipients per minute (sender.newRecipientsPerMin)`, MINUTE / perMin);
      }
    }
    if (l.bytesPerMin > 0 && s.bytes < bytes) {
      throw this.refuse('bytes', from, now, `at most ${l.bytesPerMin} body bytes per minute (sender.bytesPerMin)`, (bytes - s.bytes) * MINUTE / l.bytesPerMin);
    }
    if (l.bytesPerMin > 0) s.bytes -= bytes;
    if (fresh) {
      if (room) {
        s.newRooms--;
        s.rooms[s.roomPos] = h;
        s.roomPos = (s.roomPos + 1) % RECENT_ROOMS;
        if (s.nRooms < RECENT_ROOMS) s.nRooms++;
      } else {
        s.recipients--;
        s.users[s.userPos] = h;
        s.userPos = (s.userPos + 1) % RECENT_USERS;
        if (s.nUsers < RECENT_USERS) s.nUsers++;
      }
    }
  }

  /** Counts a refusal and logs it (one warning every 10 s at most, with how many since). */
  private refuse(kind: QuotaKind, from: string, now: number, what: string, retryMs: number): SandbarError {
    this.refused[kind]++;
    if (this.logger && this.log.hit(now)) this.logger.warn({ code: 'SANDBAR_ERR_SEND_QUOTA', user: from, quota: kind, refused: this.log.take(), refusedTotal: { ...this.refused } }, 'sender quota: messages refused (spraying new recipients or rooms, or too many bytes)');
    return quota(what, retryMs);
  }

  private sender(id: string, now: number): Sender {
    let s = this.senders.get(id);
    if (s) {
      if (now - s.seen > REFRESH_MS) {
        // Least recently refreshed first: move to the end of the Map's order.
        s.seen = now;
        this.senders.delete(id);
        this.senders.set(id, s);
      }
      return s;
    }
    if (this.senders.size >= this.maxSenders) this.senders.delete(this.senders.keys().next().value!);
    s = new Sender(this.limits, now);
    this.senders.set(id, s);
    return s;
  }
}

function quota(what: string, retryMs: number): SandbarError {
  return new SandbarError('SANDBAR_ERR_SEND_QUOTA', `sender quota: ${what}; retry in ${Math.max(1, Math.ceil(retryMs / 1000))} s`);
}
