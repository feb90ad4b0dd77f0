/**
 * The pure part of a worker's reaction to a new cluster view
 * (src/cluster/view-changes.ts, used by cluster/worker.ts): which workers
 * died, and which local joins go again to a restarted worker.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { goneWorkers, joinsToResync, workerAddrs } from '../../../src/cluster/view-changes.js';
import { place, shardOf, type HostView } from '../../../src/placement/index.js';

const SHARDS = 64;
const view = (...hosts: [string, number[]][]): HostView[] => hosts.map(([hostId, alive]) => ({ hostId, workers: Math.max(0, ...alive) + 1, alive }));

describe('cluster/view-changes: what a new view means to a worker', () => {
  it('lists the live workers of a view as <hostId>.<index>', () => {
    expect(workerAddrs(view(['h1', [0, 1]], ['h2', [1]]))).to.deep.equal(['h1.0', 'h1.1', 'h2.1']);
    expect(workerAddrs([])).to.deep.equal([]);
  });

  it('a worker that left the view, or its whole host, is gone; one that stayed or joined is not', () => {
    const before = view(['h1', [0, 1]], ['h2', [0]], ['h3', [0]]);
    const after = view(['h1', [0]], ['h3', [0]], ['h4', [0]]);
    expect(goneWorkers(before, after)).to.deep.equal(['h1.1', 'h2.0']);
    expect(goneWorkers(after, after)).to.deep.equal([]);
    expect(goneWorkers([], after)).to.deep.equal([]);
  });

  it('property: gone workers are exactly those of the old view missing from the new one', () => {
    const hostArb = fc.record({ hostId: fc.constantFrom('h1', 'h2', 'h3', 'h4'), alive: fc.uniqueArray(fc.integer({ min: 0, max: 3 }), { maxLength: 4 }) });
    const viewArb = fc.uniqueArray(hostArb, { selector: (h) => h.hostId, maxLength: 4 }).map((hs) => hs.map((h) => ({ hostId: h.hostId, workers: 4, alive: h.alive })));
    fc.assert(fc.property(viewArb, viewArb, (a, b) => {
      const gone = new Set(goneWorkers(a, b));
      const after = new Set(workerAddrs(b));
      for (const w of workerAddrs(a)) expect(gone.has(w)).to.equal(!after.has(w));
      for (const w of gone) expect(after.has(w)).to.equal(false);
    }), { numRuns: 200 });
  });

  it('re-announces to a restarted worker the user: and room: joins whose shard it masters, and nothing else', () => {
    const v = view(['h1', [0, 1]], ['h2', [0]]);
    const ids = Array.from({ length: 40 }, (_, i) => `x${i}`);
    const channels = [...ids.map((id) => ({ topic: `user:${id}`, id })), ...ids.map((id) => ({ topic: `room:${id}`, id })), { topic: 'echo:x1', id: 'x1' }, { topic: 'sandbar:session', id: 'session' }];
    for (const w of ['h1.0', 'h1.1', 'h2.0']) {
      const got = joinsToResync(channels, w, v, SHARDS);
      const want = channels.filter((c) => /^(user|room):/.test(c.topic) && (() => { const m = place(shardOf(c.id, SHARDS), v, 0).master; return `${m.hostId}.${m.worker}` === w; })());
      expect(got.map((g) => g.ch)).to.deep.equal(want);
      for (const g of got) {
        expect(g.kind).to.equal(g.ch.topic.startsWith('user:') ? 'u' : 'r');
        expect(g.shard).to.equal(shardOf(g.ch.id, SHARDS));
      }
    }
    // Every user: and room: join goes to exactly one worker of the view.
    const total = ['h1.0', 'h1.1', 'h2.0'].reduce((n, w) => n + joinsToResync(channels, w, v, SHARDS).length, 0);
    expect(total).to.equal(2 * ids.length);
  });

  it('re-announces nothing while the worker has no view yet, or to a worker that masters nothing', () => {
    const channels = [{ topic: 'user:ann', id: 'ann' }, { topic: 'room:lobby', id: 'lobby' }];
    expect(joinsToResync(channels, 'h1.0', [], SHARDS)).to.deep.equal([]);
    expect(joinsToResync(channels, 'h9.0', view(['h1', [0]]), SHARDS)).to.deep.equal([]);
  });
});
