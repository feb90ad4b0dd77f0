/**
 * The body of a shard snapshot in JetStream, format 2: one JSON record per
 * line, written and read a chunk at a time, so that neither a write nor a
 * restore ever holds the whole shard as one string or blocks the event loop
 * for longer than one chunk takes (docs/durability.md, "Restores that fit").
 *
 *   {"u":"<user id>","seq":12,"dedup":[["<from>\n<mid>",12,<at>],…]}
 *   {"m":{"seq":11,"from":"a","id":"…","body":…,"at":…},"b":412}
 *   {"r":"<room id>","seq":40,"dedup":[…]}
 *   {"m":{…},"b":300}
 *
 * A `u` or `r` line starts an actor; the `m` lines after it are its inbox
 * (or history), oldest first, each with its counted size `b` (storage
 * budget). Presence is not written: its connections are gone at a restore.
 *
 * Format 1 (one JSON document) is still read (snapshot-store.ts).
 */

// The shapes of actors/replication.ts's ShardSnapshot this codec reads and
// writes, spelled out here so that the codec depends on nothing else.
interface Entry { readonly seq: number; readonly from: string; readonly id: string; readonly body: unknown; readonly at: number }
/** dedup: `[from + "\n" + id, seq, at?]` (actors/dedup-window.ts; `at`, the master's stamp, absent in older snapshots). */
interface Stored { id: string; seq: number; sizes?: number[]; dedup: [string, number, number?][] }
interface UserSnapshot extends Stored { inbox: Entry[] }
interface RoomSnapshot extends Stored { history: Entry[] }
/** What the encoder reads (presence, if any, is not written). */
export interface ShardSnapshot { users: UserSnapshot[]; rooms: RoomSnapshot[] }
/** What the decoder gives: presence always empty. */
export interface DecodedSnapshot { users: (UserSnapshot & { conns: never[] })[]; rooms: (RoomSnapshot & { members: never[] })[] }
type InboxEntry = Entry;
type RoomMessage = Entry;

const NL = 0x0a;

/**
 * Encodes a snapshot lazily: each {@link next} call encodes just enough
 * records for one chunk of `chunkBytes` (the last may be shorter). The
 * snapshot's arrays must not change meanwhile: actors give copies
 * (UserActor.snapshot).
 */
export class SnapshotEncoder {
  private readonly pending: Buffer[] = [];
  private pendingBytes = 0;
  private actor = 0;
  /** Index of the next entry of the current actor; -1: its header is next. */
  private entry = -1;
  private done = false;
  /** Bytes returned so far. */
  total = 0;

  constructor(private readonly snap: ShardSnapshot, private readonly chunkBytes: number) {}

  /** The next chunk, or null when the whole body has been returned. */
  next(): Buffer | null {
    while (this.pendingBytes < this.chunkBytes && !this.done) this.encodeOne();
    if (this.pendingBytes === 0) return null;
    const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    this.pending.length = 0;
    const chunk = all.length > this.chunkBytes ? all.subarray(0, this.chunkBytes) : all;
    if (all.length > this.chunkBytes) this.pending.push(all.subarray(this.chunkBytes));
    this.pendingBytes = all.length - chunk.length;
    this.total += chunk.length;
    return chunk;
  }

  private encodeOne(): void {
    const { users, rooms } = this.snap;
    const isUser = this.actor < users.length;
    const a: UserSnapshot | RoomSnapshot | undefined = isUser ? users[this.actor] : rooms[this.actor - users.length];
    if (!a) { this.done = true; return; }
    const list: readonly (InboxEntry | RoomMessage)[] = isUser ? (a as UserSnapshot).inbox : (a as RoomSnapshot).history;
    let line: string;
    if (this.entry < 0) {
      line = isUser ? JSON.stringify({ u: a.id, seq: a.seq, dedup: a.dedup }) : JSON.stringify({ r: a.id, seq: a.seq, dedup: a.dedup });
      this.entry = 0;
    } else {
      const i = this.entry++;
      line = JSON.stringify({ m: list[i], b: a.sizes?.[i] });
    }
    if (this.entry >= list.length) { this.actor++; this.entry = -1; }
    const buf = Buffer.from(line + '\n');
    this.pending.push(buf);
    this.pendingBytes += buf.length;
  }
}

/** A record of format 2 that does not parse or does not fit the grammar. */
export class SnapshotFormatError extends Error {}

/**
 * Decodes format 2 chunk by chunk; a record may span chunks. Throws
 * SnapshotFormatError on a line that is not a record.
 */
export class SnapshotDecoder {
  readonly snap: DecodedSnapshot = { users: [], rooms: [] };
  private carry: Buffer | null = null;
  private cur: { list: (InboxEntry | RoomMessage)[]; sizes: number[] } | null = null;

  push(chunk: Buffer): void {
    let buf = chunk;
    if (this.carry) { buf = Buffer.concat([this.carry, chunk]); this.carry = null; }
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(NL, start);
      if (nl < 0) break;
      if (nl > start) this.line(buf.toString('utf8', start, nl));
      start = nl + 1;
    }
    if (start < buf.length) this.carry = buf.subarray(start);
  }

  /** The snapshot; throws if a record was cut off. */
  end(): DecodedSnapshot {
    if (this.carry && this.carry.length > 0) throw new SnapshotFormatError(`the body ends inside a record (${this.carry.length} bytes)`);
    return this.snap;
  }

  private line(text: string): void {
    let rec: Record<string, unknown>;
    try { rec = JSON.parse(text) as Record<string, unknown>; } catch { throw new SnapshotFormatError('a record is not JSON'); }
    if (rec === null || typeof rec !== 'object') throw new SnapshotFormatError('a record is not an object');
    if ('m' in rec) {
      const m = rec.m as InboxEntry;
      if (!this.cur || !m || typeof m !== 'object' || !Number.isSafeInteger(m.seq)) throw new SnapshotFormatError('a message record without its user or room, or without a seq');
      this.cur.list.push(m);
      this.cur.sizes.push(typeof rec.b === 'number' && rec.b > 0 ? rec.b : 0);
      return;
    }
    const id = typeof rec.u === 'string' ? rec.u : typeof rec.r === 'string' ? rec.r : null;
    if (id === null || !Number.isSafeInteger(rec.seq) || !Array.isArray(rec.dedup)) throw new SnapshotFormatError('a record that is neither a user, a room nor a message');
    const dedup = rec.dedup as [string, number, number?][];
    if (typeof rec.u === 'string') {
      const u: DecodedSnapshot['users'][number] = { id, seq: rec.seq as number, inbox: [], sizes: [], dedup, conns: [] };
      this.snap.users.push(u);
      this.cur = { list: u.inbox, sizes: u.sizes! };
    } else {
      const r: DecodedSnapshot['rooms'][number] = { id, seq: rec.seq as number, history: [], sizes: [], dedup, members: [] };
      this.snap.rooms.push(r);
      this.cur = { list: r.history, sizes: r.sizes! };
    }
  }
}

/**
 * Sizes read back as 0 (a record written without one) are dropped, so the
 * actor measures every entry itself on restore (UserActor.restore).
 */
export function settleSizes(snap: ShardSnapshot): void {
  for (const a of [...snap.users, ...snap.rooms]) if (a.sizes && a.sizes.includes(0)) delete a.sizes;
}
