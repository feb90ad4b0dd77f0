/**
 * Messages larger than what NATS carries in one message (the server's
 * `max_payload`, 1 MiB by default), in pieces.
 *
 * Most bus messages are small, but some carry a whole shard (a replica's
 * snapshot, a planned handoff), a user's unacknowledged inbox (the replay of
 * a join) or a big room's presence: nats.js refuses to publish anything over
 * max_payload, and before this the message was simply lost (a replica that
 * never synced held its master's outputs for good; a handoff never arrived,
 * so its shard was claimed empty).
 *
 * A piece is the bytes of one slice of the encoded message behind a one-line
 * prefix that no JSON text or Phoenix frame starts with:
 *
 *   \x01<origin>:<n> <index> <count>\n<bytes>
 *
 * NATS keeps the order of one publisher's messages on one subject, so the
 * pieces of a message arrive in order; pieces of different messages may
 * interleave (several publishers), hence the id. Whoever receives keeps the
 * pieces of unfinished messages within a byte bound and an age bound, and
 * drops (with a count) what passes them: every sender of a large message
 * sends it again until it is answered (a replica asks for its snapshot again,
 * a handoff is resent), so a dropped one costs time, not data.
 */

/** First byte of a piece. JSON text and Phoenix frames start with `{`, `[` or whitespace. */
const MARK = 0x01;
const NL = 0x0a;
/** Room the prefix may take in a piece (the id is at most a worker address and a counter). */
const PREFIX_ROOM = 256;

export function isPiece(data: Uint8Array): boolean {
  return data.length > 0 && data[0] === MARK;
}

/** Cuts messages into pieces; one per publisher (its ids are unique within it). */
export class Fragmenter {
  private next = 1;
  /** Messages cut so far (for the worker's stats). */
  cut = 0;

  constructor(private readonly origin: string) {}

  /** The pieces of data, each at most max bytes, prefix included. */
  split(data: Uint8Array, max: number): Uint8Array[] {
    const room = max - PREFIX_ROOM;
    if (room < 1024) throw new RangeError(`pieces of at most ${max} bytes leave no room for data`);
    const count = Math.ceil(data.length / room);
    const id = `${this.origin}:${this.next++}`;
    const out: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      const body = data.subarray(i * room, Math.min(data.length, (i + 1) * room));
      const head = Buffer.from(`\x01${id} ${i} ${count}\n`);
      const piece = new Uint8Array(head.length + body.length);
      piece.set(head, 0);
      piece.set(body, head.length);
      out.push(piece);
    }
    this.cut++;
    return out;
  }
}

interface Partial { readonly count: number; readonly parts: Uint8Array[]; bytes: number; readonly since: number }

export interface ReassemblyLimits {
  /** Most bytes of unfinished messages kept at once; past it the oldest unfinished message is dropped. */
  readonly maxBytes: number;
  /** An unfinished message older than this is dropped. */
  readonly maxAgeMs: number;
}

/** Puts pieces back together; one per subscriber process (ids are unique per publisher). */
export class Reassembler {
  private readonly partial = new Map<string, Partial>();
  private bytes = 0;
  /** Unfinished messages dropped for the bounds, or for a piece out of order. */
  dropped = 0;

  constructor(private readonly limits: ReassemblyLimits, private readonly now: () => number) {}

  /** Takes a piece; returns the whole message once its last piece is in, else null. */
  add(piece: Uint8Array): Uint8Array | null {
    const nl = piece.indexOf(NL);
    if (nl < 0) { this.dropped++; return null; }
    const [id, i, n] = Buffer.from(piece.subarray(1, nl)).toString().split(' ');
    const index = Number(i);
    const count = Number(n);
    if (!id || !Number.isSafeInteger(index) || !Number.isSafeInteger(count) || count < 1 || index >= count) { this.dropped++; return null; }
    const body = piece.subarray(nl + 1);
    const now = this.now();
    this.expire(now);
    let p = this.partial.get(id);
    if (index === 0) {
      if (p) this.forget(id, p); // a message sent again from its start
      p = { count, parts: [], bytes: 0, since: now };
      this.partial.set(id, p);
    }
    // A piece whose earlier ones were dropped (bounds) or never came: nothing to add it to.
    if (!p || p.count !== count || p.parts.length !== index) {
      if (p) this.forget(id, p);
      this.dropped++;
      return null;
    }
    p.parts.push(body);
    p.bytes += body.length;
    this.bytes += body.length;
    if (p.parts.length < count) {
      while (this.bytes > this.limits.maxBytes && this.partial.size > 0) {
        const [oldId, old] = this.partial.entries().next().value!;
        this.forget(oldId, old);
        this.dropped++;
      }
      return null;
    }
    this.forget(id, p);
    return count === 1 ? p.parts[0]! : Buffer.concat(p.parts);
  }

  /** Unfinished messages kept now, and their bytes. */
  get pending(): { messages: number; bytes: number } { return { messages: this.partial.size, bytes: this.bytes }; }

  private expire(now: number): void {
    // Insertion order is age order: the first one not too old ends the scan.
    for (const [id, p] of this.partial) {
      if (now - p.since < this.limits.maxAgeMs) break;
      this.forget(id, p);
      this.dropped++;
    }
  }

  private forget(id: string, p: Partial): void {
    this.partial.delete(id);
    this.bytes -= p.bytes;
  }
}
