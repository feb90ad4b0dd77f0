import { expect } from 'chai';
import { chainFrom, type LogEntry } from '../../../src/persistence/shard-log.js';

const e = (ep: number, s: number): LogEntry => ({ t: 'e', n: 0, e: ep, s, m: `h${ep}.0`, c: { op: 'u.ack', id: 'u', seq: 0, cid: 0, rw: '' }, rel: 0 });
const ids = (c: LogEntry[]) => c.map((x) => `${x.e}:${x.s}`);

describe('durable log: the chain restored after a snapshot', () => {
  it('takes the entries after the snapshot in seq order, skipping older ones and duplicates', () => {
    const { chain, dropped } = chainFrom([e(1, 1), e(1, 2), e(1, 3), e(1, 5), e(1, 4), e(1, 4)], 1, 2);
    expect(ids(chain)).to.deep.equal(['1:3', '1:4', '1:5']);
    expect(dropped).to.equal(0);
  });

  it('a higher epoch replaces the lower one from its first seq on (the deposed master\'s unacknowledged tail)', () => {
    const { chain } = chainFrom([e(1, 1), e(1, 2), e(1, 3), e(1, 4), e(2, 3), e(2, 4), e(2, 5), e(1, 5)], 0, 0);
    expect(ids(chain)).to.deep.equal(['1:1', '1:2', '2:3', '2:4', '2:5']);
  });

  it('entries of an epoch older than the snapshot\'s are never applied', () => {
    const { chain } = chainFrom([e(1, 6), e(1, 7), e(3, 6)], 2, 5);
    expect(ids(chain)).to.deep.equal(['3:6']);
  });

  it('stops at a gap and counts what it left out', () => {
    const { chain, dropped } = chainFrom([e(1, 1), e(1, 2), e(1, 4), e(1, 5)], 0, 0);
    expect(ids(chain)).to.deep.equal(['1:1', '1:2']);
    expect(dropped).to.equal(2);
  });

  it('without an entry right after the snapshot, nothing is applied', () => {
    expect(chainFrom([e(1, 2), e(1, 3)], 0, 0).chain).to.deep.equal([]);
  });
});
