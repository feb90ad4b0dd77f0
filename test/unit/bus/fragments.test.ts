import { expect } from 'chai';
import fc from 'fast-check';
import { Fragmenter, Reassembler, isPiece } from '../../../src/bus/fragments.js';

const LIMITS = { maxBytes: 1 << 20, maxAgeMs: 1000 };

function bytes(n: number, seed = 7): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

describe('bus: messages over max_payload go in pieces (fragments.ts)', () => {
  it('cuts a message into pieces of at most max bytes that put back together give the same bytes, whatever the sizes', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 50_000 }), fc.integer({ min: 1300, max: 9000 }), (n, max) => {
      const data = bytes(n, n);
      const pieces = new Fragmenter('h1.0').split(data, max);
      expect(pieces.length).to.equal(Math.ceil(n / (max - 256)));
      for (const p of pieces) {
        expect(p.length).to.be.at.most(max);
        expect(isPiece(p)).to.equal(true);
      }
      const r = new Reassembler(LIMITS, () => 0);
      const outs = pieces.map((p) => r.add(p));
      expect(outs.slice(0, -1).every((o) => o === null)).to.equal(true);
      expect(Buffer.compare(Buffer.from(outs[outs.length - 1]!), Buffer.from(data))).to.equal(0);
      expect(r.pending).to.deep.equal({ messages: 0, bytes: 0 });
    }), { numRuns: 200 });
  });

  it('pieces of messages from several publishers may interleave; each message comes back whole', () => {
    const a = bytes(10_000, 1);
    const b = bytes(7_000, 2);
    const pa = new Fragmenter('h1.0').split(a, 2048);
    const pb = new Fragmenter('h2.1').split(b, 2048);
    const r = new Reassembler(LIMITS, () => 0);
    const done: Uint8Array[] = [];
    for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
      for (const p of [pa[i], pb[i]]) {
        if (!p) continue;
        const whole = r.add(p);
        if (whole) done.push(whole);
      }
    }
    expect(done.map((d) => d.length).sort((x, y) => x - y)).to.deep.equal([7_000, 10_000]);
  });

  it('JSON text and Phoenix frames are never taken for pieces', () => {
    for (const t of ['{"t":"reply"}', '[null,null,"room:x","msg",{}]', ' {}', '\n[]']) expect(isPiece(Buffer.from(t))).to.equal(false);
  });

  it('an unfinished message older than maxAgeMs is dropped and counted; a later piece of it is dropped too', () => {
    let now = 0;
    const r = new Reassembler({ maxBytes: 1 << 20, maxAgeMs: 1000 }, () => now);
    const pieces = new Fragmenter('h1.0').split(bytes(5000), 2048);
    expect(r.add(pieces[0]!)).to.equal(null);
    now = 1500;
    // Any piece triggers the age check: the first message is gone, so its second piece has nothing to join.
    expect(r.add(pieces[1]!)).to.equal(null);
    expect(r.dropped).to.equal(2);
    expect(r.pending.messages).to.equal(0);
  });

  it('unfinished messages past maxBytes: the oldest is dropped first, the newest completes', () => {
    const r = new Reassembler({ maxBytes: 6000, maxAgeMs: 60_000 }, () => 0);
    const first = new Fragmenter('h1.0').split(bytes(7000, 1), 4096);
    const second = new Fragmenter('h2.0').split(bytes(7000, 2), 4096);
    expect([first.length, second.length]).to.deep.equal([2, 2]);
    r.add(first[0]!);
    r.add(second[0]!); // two unfinished: over 6000 bytes, so the older goes
    expect(r.dropped).to.equal(1);
    expect(r.add(first[1]!)).to.equal(null); // its start is gone
    expect(r.dropped).to.equal(2);
    expect(r.add(second[1]!)?.length).to.equal(7000);
    expect(r.pending).to.deep.equal({ messages: 0, bytes: 0 });
  });

  it('a message sent again from its first piece replaces the unfinished one with that id', () => {
    const r = new Reassembler(LIMITS, () => 0);
    const f = new Fragmenter('h1.0');
    const pieces = f.split(bytes(5000), 2048);
    r.add(pieces[0]!);
    r.add(pieces[0]!);
    r.add(pieces[1]!);
    expect(r.add(pieces[2]!)?.length).to.equal(5000);
  });

  it('a malformed piece is dropped and counted, never thrown', () => {
    const r = new Reassembler(LIMITS, () => 0);
    for (const t of ['\x01no-newline', '\x01id x y\nabc', '\x01id 3 2\nabc', '\x01 0 1\nabc']) expect(r.add(Buffer.from(t))).to.equal(null);
    expect(r.dropped).to.equal(4);
  });
});
