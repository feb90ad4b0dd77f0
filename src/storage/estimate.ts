/**
 * What a stored thing costs, in bytes, as the storage budget counts it: an
 * estimate computed once, when the thing is stored, from lengths already
 * known (the body's encoded length is measured once by the sender's worker,
 * which checks it against message.maxBytes anyway), never from the heap.
 *
 * The overheads were measured on Node 20 (x64, no pointer compression) by
 * building 200,000 of each from JSON-parsed commands and reading the heap
 * after a full GC (numbers in docs/storage.md): an inbox entry with a
 * 106-byte string body, a 13-character sender and an 18-character id took
 * 282 bytes; a dedup id of 32 characters 102 bytes; an idle user actor with
 * its map and shard-set slots 452 bytes. A body that is a string costs about
 * its encoded length; one made of many small arrays or objects costs more
 * (up to about ten times, for `[[],[],…]`): that is what the budget's share
 * of the heap (40 % by default) leaves room for.
 */

/** An inbox entry or room message beyond its body and strings: the object, its array slot, string headers, its size slot. */
export const ENTRY_OVERHEAD = 160;
/**
 * A dedup window slot beyond its key's characters: the Map entry and the
 * key's header (72 bytes measured), plus the entry object that links it into
 * its sender's chain (actors/dedup-window.ts: five fields, 64 bytes by layout).
 */
export const DEDUP_OVERHEAD = 136;
/** A user actor with no inbox: the actor, its maps, its slots in the shard host's maps. */
export const USER_OVERHEAD = 480;
/** A room actor with no history: the actor, its maps and topic, its slots in the shard host's maps. */
export const ROOM_OVERHEAD = 560;

/** One stored message: its body's encoded length plus its sender and id strings. */
export function entryBytes(bodyBytes: number, from: string, id: string): number {
  return ENTRY_OVERHEAD + bodyBytes + from.length + id.length;
}

/** One dedup slot for key (`${from}\n${id}`). */
export function dedupBytes(key: string): number {
  return DEDUP_OVERHEAD + key.length;
}

/** The same as dedupBytes for the key of (from, id), without building it. */
export function dedupSlotBytes(from: string, id: string): number {
  return DEDUP_OVERHEAD + from.length + 1 + id.length;
}

/**
 * The encoded length of a body, for the rare paths that do not carry it (a
 * snapshot written before sizes were recorded, a command from an older
 * worker). Deterministic: every copy of a shard computes the same value.
 */
export function measureBody(body: unknown): number {
  const json = JSON.stringify(body);
  return json === undefined ? 0 : Buffer.byteLength(json);
}
