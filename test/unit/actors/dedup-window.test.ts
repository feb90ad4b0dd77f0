import { expect } from 'chai';
import fc from 'fast-check';
import { DedupWindow, type DedupLimits } from '../../../src/actors/dedup-window.js';

/** The stated bound, written the obvious way: which of the messages added so far are still recognised. */
function remembered(adds: { from: string; mid: string; at: number }[], limits: DedupLimits): Set<string> {
  const out = new Set<string>();
  if (limits.perSender === 0) return out;
  // Replays the same eviction order as a log of events, without any cleverness.
  let kept: { from: string; mid: string; at: number }[] = [];
  for (const a of adds) {
    if (kept.some((k) => k.from === a.from && k.mid === a.mid)) continue;
    kept.push(a);
    const mine = kept.filter((k) => k.from === a.from);
    if (mine.length > limits.perSender) kept = kept.filter((k) => k !== mine[0]);
    if (limits.ttlMs > 0) {
      while (kept.length > 0 && kept[0]!.at <= a.at - limits.ttlMs) kept.shift();
    }
    while (kept.length > limits.maxIds) kept.shift();
  }
  for (const k of kept) out.add(`${k.from}\n${k.mid}`);
  return out;
}

describe('DedupWindow: per-sender dedup with a time and a size bound', () => {
  it('a resend to a busy recipient is recognised after more than the per-sender window of other senders\' messages (the shared-window fault)', () => {
    const w = new DedupWindow({ perSender: 10, ttlMs: 0, maxIds: 100000 });
    w.add('bot', 'first', 1, 0);
    // 1,000 messages from 100 other senders: the old shared window of 10 ids forgot "first" after 10 of them.
    for (let i = 0; i < 1000; i++) w.add(`u${i % 100}`, `m${i}`, i + 2, i);
    expect(w.get('bot', 'first')).to.equal(1);
  });

  it('forgets a sender\'s oldest ids past its own window, and ids older than the ttl', () => {
    const w = new DedupWindow({ perSender: 2, ttlMs: 1000, maxIds: 100 });
    w.add('a', '1', 1, 0);
    w.add('a', '2', 2, 10);
    w.add('a', '3', 3, 20);
    expect(w.get('a', '1')).to.equal(undefined);
    expect(w.get('a', '2')).to.equal(2);
    w.add('b', 'x', 4, 1010);
    expect(w.get('a', '2')).to.equal(undefined);
    expect(w.get('a', '3')).to.equal(3);
    w.add('b', 'y', 5, 1020);
    expect(w.get('a', '3')).to.equal(undefined);
    expect(w.size).to.equal(2);
  });

  it('never holds more than maxIds', () => {
    const w = new DedupWindow({ perSender: 1000, ttlMs: 0, maxIds: 50 });
    for (let i = 0; i < 500; i++) w.add(`s${i % 7}`, String(i), i + 1, i);
    expect(w.size).to.equal(50);
    expect(w.get('s0', '0')).to.equal(undefined);
    expect(w.get(`s${499 % 7}`, '499')).to.equal(500);
  });

  it('snapshot and restore keep exactly what is remembered (and accept stamp-less entries of older snapshots)', () => {
    const limits = { perSender: 3, ttlMs: 500, maxIds: 20 };
    const w = new DedupWindow(limits);
    for (let i = 0; i < 40; i++) w.add(`s${i % 4}`, String(i), i + 1, i * 10);
    const copy = new DedupWindow(limits);
    copy.restore(w.snapshot(), 0);
    expect(copy.snapshot()).to.deep.equal(w.snapshot());
    const old = new DedupWindow(limits);
    old.restore([['a\nx', 7], ['b\ny', 8]], 1000);
    expect(old.get('a', 'x')).to.equal(7);
    expect(old.snapshot()).to.deep.equal([['a\nx', 7, 1000], ['b\ny', 8, 1000]]);
  });

  it('matches the stated bound for any sequence of adds (property)', () => {
    fc.assert(fc.property(
      fc.record({ perSender: fc.integer({ min: 0, max: 5 }), ttlMs: fc.constantFrom(0, 50, 200), maxIds: fc.integer({ min: 1, max: 12 }) }),
      fc.array(fc.record({ from: fc.constantFrom('a', 'b', 'c', 'd'), mid: fc.constantFrom('1', '2', '3', '4', '5', '6'), dt: fc.integer({ min: 0, max: 60 }) }), { maxLength: 60 }),
      (limits, steps) => {
        const w = new DedupWindow(limits);
        const adds: { from: string; mid: string; at: number }[] = [];
        let at = 0;
        steps.forEach((s, i) => {
          at += s.dt;
          adds.push({ from: s.from, mid: s.mid, at });
          w.add(s.from, s.mid, i + 1, at);
        });
        const want = remembered(adds, limits);
        for (const from of ['a', 'b', 'c', 'd']) {
          for (const mid of ['1', '2', '3', '4', '5', '6']) {
            expect(w.get(from, mid) !== undefined, `${from}/${mid}`).to.equal(want.has(`${from}\n${mid}`));
          }
        }
        expect(w.size).to.be.at.most(limits.maxIds);
      },
    ), { numRuns: 300 });
  });
});
