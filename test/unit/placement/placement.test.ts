import { expect } from 'chai';
import { fnv1a32, shardOf } from '../../../src/placement/shard.js';
import { place, shardsOf } from '../../../src/placement/rendezvous.js';

describe('placement', () => {
  it('FNV-1a 32 matches the published test vectors', () => {
    expect(fnv1a32('')).to.equal(0x811c9dc5);
    expect(fnv1a32('a')).to.equal(0xe40c292c);
    expect(fnv1a32('foobar')).to.equal(0xbf9cf968);
    expect(shardOf('alice', 1024)).to.equal(fnv1a32('alice') % 1024);
  });

  it('is a pure function of (shard, live hosts): the same table on every host', () => {
    const a = place(17, [{ hostId: 'h1', workers: 4 }, { hostId: 'h2', workers: 4 }], 1);
    const b = place(17, [{ hostId: 'h2', workers: 4 }, { hostId: 'h1', workers: 4 }], 1);
    expect(a).to.deep.equal(b);
  });

  it('puts master and replica on different hosts when there are enough, else on different workers', () => {
    for (let s = 0; s < 200; s++) {
      const p = place(s, [{ hostId: 'a', workers: 2 }, { hostId: 'b', workers: 2 }, { hostId: 'c', workers: 2 }], 1);
      expect(p.replicas).to.have.length(1);
      expect(p.replicas[0]!.hostId).to.not.equal(p.master.hostId);
      const one = place(s, [{ hostId: 'a', workers: 2 }], 1);
      expect(one.replicas[0]!.worker).to.not.equal(one.master.worker);
    }
  });

  it('spreads shards over workers roughly evenly, and each shard has exactly one master', () => {
    const hosts = [{ hostId: 'h1', workers: 4 }];
    const counts = [0, 1, 2, 3].map((w) => shardsOf('h1', w, 1024, hosts).length);
    expect(counts.reduce((a, b) => a + b)).to.equal(1024);
    for (const c of counts) expect(c).to.be.within(200, 312);
  });

  it('when a host leaves, only the shards it mastered move', () => {
    const three = [{ hostId: 'a', workers: 2 }, { hostId: 'b', workers: 2 }, { hostId: 'c', workers: 2 }];
    const two = three.filter((h) => h.hostId !== 'c');
    for (let s = 0; s < 300; s++) {
      const before = place(s, three, 0).master;
      if (before.hostId !== 'c') expect(place(s, two, 0).master).to.deep.equal(before);
    }
  });
});
