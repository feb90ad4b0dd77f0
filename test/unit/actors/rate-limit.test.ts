import { expect } from 'chai';
import { msUntilToken, rate, take, type Bucket } from '../../../src/actors/rate-limit.js';

describe('actors/rate-limit: lazily refilled token buckets', () => {
  it('gives the burst at once, then one token per 1/rate seconds, never more than the burst', () => {
    const r = rate(10, 3);
    const b: Bucket = { tokens: r.burst, at: 0 };
    expect([take(b, 0, r), take(b, 0, r), take(b, 0, r), take(b, 0, r)]).to.deep.equal([true, true, true, false]);
    expect(msUntilToken(b, r)).to.equal(100);
    expect(take(b, 99, r)).to.equal(false);
    expect(take(b, 100, r)).to.equal(true);
    // A long pause refills to the burst, not beyond.
    expect([1, 2, 3, 4].map(() => take(b, 60000, r))).to.deep.equal([true, true, true, false]);
  });

  it('a clock that goes back refills nothing', () => {
    const r = rate(1000, 1);
    const b: Bucket = { tokens: 0, at: 500 };
    expect(take(b, 100, r)).to.equal(false);
  });
});
