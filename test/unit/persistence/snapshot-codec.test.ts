import { expect } from 'chai';
import fc from 'fast-check';
import { SnapshotDecoder, SnapshotEncoder, SnapshotFormatError, settleSizes, type ShardSnapshot } from '../../../src/persistence/snapshot-codec.js';

const entry = fc.record({
  seq: fc.integer({ min: 1, max: 1e9 }),
  from: fc.string({ minLength: 1, maxLength: 20 }),
  id: fc.string({ minLength: 1, maxLength: 30 }),
  body: fc.jsonValue({ maxDepth: 3 }),
  at: fc.integer({ min: 0, max: 2e12 }),
});
const actor = fc.record({
  id: fc.string({ minLength: 1, maxLength: 64 }),
  seq: fc.integer({ min: 0, max: 1e9 }),
  entries: fc.array(entry, { maxLength: 12 }),
  dedup: fc.array(fc.tuple(fc.string(), fc.integer({ min: 0, max: 1e9 })), { maxLength: 5 }),
});
const snapshot = fc.record({ users: fc.array(actor, { maxLength: 6 }), rooms: fc.array(actor, { maxLength: 6 }) }).map(({ users, rooms }): ShardSnapshot => ({
  users: users.map((u) => ({ id: u.id, seq: u.seq, inbox: u.entries, sizes: u.entries.map((_, i) => 100 + i), dedup: u.dedup })),
  rooms: rooms.map((r) => ({ id: r.id, seq: r.seq, history: r.entries, sizes: r.entries.map((_, i) => 200 + i), dedup: r.dedup })),
}));

/** Encodes into chunks of chunkBytes, then decodes them one by one. */
function roundTrip(snap: ShardSnapshot, chunkBytes: number): { chunks: Buffer[]; back: ReturnType<SnapshotDecoder['end']> } {
  const enc = new SnapshotEncoder(snap, chunkBytes);
  const chunks: Buffer[] = [];
  for (let c = enc.next(); c !== null; c = enc.next()) chunks.push(Buffer.from(c));
  const dec = new SnapshotDecoder();
  for (const c of chunks) dec.push(c);
  return { chunks, back: dec.end() };
}

/** What the decoder must give back: the same actors, entries and sizes (JSON values as JSON gives them), no presence. */
function expected(s: ShardSnapshot) {
  const j = JSON.parse(JSON.stringify(s)) as ShardSnapshot;
  return {
    users: j.users.map((u) => ({ ...u, conns: [] })),
    rooms: j.rooms.map((r) => ({ ...r, members: [] })),
  };
}

describe('persistence/snapshot-codec: snapshots written and read a chunk at a time (format 2)', () => {
  it('property: any snapshot, cut into chunks of any size, decodes to itself (records spanning chunks included)', () => {
    fc.assert(fc.property(snapshot, fc.integer({ min: 1, max: 4096 }), (snap, chunkBytes) => {
      const { chunks, back } = roundTrip(snap, chunkBytes);
      for (const c of chunks.slice(0, -1)) if (c.length !== chunkBytes) return false;
      expect(back).to.deep.equal(expected(snap));
      return true;
    }), { numRuns: 300 });
  });

  it('never holds more than about one chunk and one record: a 40 MB shard is encoded 512 KiB at a time', () => {
    const body = 'b'.repeat(16_000);
    const inbox = Array.from({ length: 2500 }, (_, i) => ({ seq: i + 1, from: 'm', id: `i${i}`, body, at: i }));
    const snap: ShardSnapshot = { users: [{ id: 'u', seq: 2500, inbox, sizes: inbox.map(() => 16_200), dedup: [] }], rooms: [] };
    const enc = new SnapshotEncoder(snap, 512 * 1024);
    let chunks = 0;
    let max = 0;
    for (let c = enc.next(); c !== null; c = enc.next()) { chunks++; max = Math.max(max, c.length); }
    expect(max).to.equal(512 * 1024);
    expect(chunks).to.equal(Math.ceil(enc.total / (512 * 1024)));
    expect(enc.total).to.be.greaterThan(40_000_000);
  });

  it('a body cut inside a record is an error at the end; a line that is not a record, or a message before any actor, is one at once', () => {
    const snap: ShardSnapshot = { users: [{ id: 'u', seq: 2, inbox: [{ seq: 1, from: 'a', id: 'x', body: 'hello', at: 1 }], sizes: [10], dedup: [] }], rooms: [] };
    const all = Buffer.concat(roundTrip(snap, 1 << 20).chunks);
    const cut = new SnapshotDecoder();
    cut.push(all.subarray(0, all.length - 5));
    expect(() => cut.end()).to.throw(SnapshotFormatError, /ends inside a record/);
    expect(() => new SnapshotDecoder().push(Buffer.from('not json\n'))).to.throw(SnapshotFormatError);
    expect(() => new SnapshotDecoder().push(Buffer.from('{"m":{"seq":1},"b":3}\n'))).to.throw(SnapshotFormatError, /without its user or room/);
    expect(() => new SnapshotDecoder().push(Buffer.from('{"x":1}\n'))).to.throw(SnapshotFormatError, /neither/);
  });

  it('an actor whose sizes were not recorded gets none (the actor measures its entries on restore)', () => {
    const dec = new SnapshotDecoder();
    dec.push(Buffer.from('{"u":"u","seq":1,"dedup":[]}\n{"m":{"seq":1,"from":"a","id":"x","body":1,"at":0}}\n'));
    const s = dec.end();
    settleSizes(s);
    expect(s.users[0]!.sizes).to.equal(undefined);
    expect(s.users[0]!.inbox).to.have.length(1);
  });
});
