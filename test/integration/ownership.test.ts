/**
 * Shard ownership (src/placement/ownership.ts) against a real nats-server
 * with JetStream: claims by compare-and-set with the epoch one higher (two
 * claimants never win the same epoch), the serving master's replica set
 * written on its own epoch only, the lease key, readAll, and the watch that
 * tells a master it was deposed. No Sandbar host: the module alone.
 */
import { expect } from 'chai';
import pino from 'pino';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { Ownership, bucketName, ensureBucket, whileJetStreamElects, type OwnershipRecord } from '../../src/placement/ownership.js';
import { until, withNats } from '../support/index.js';

const logger = pino({ level: 'silent' });

describe('placement/ownership: the shard ownership bucket on a real nats-server', function () {
  this.timeout(30000);
  const nats = withNats();
  let nc: NatsConnection;
  let own: Ownership;
  before(async () => {
    nc = await nats.connect();
    await ensureBucket(nc, 'own', logger);
    own = await Ownership.open(nc, 'own', logger);
  });

  it('creates the bucket once (again is harmless), named after the cluster, keeping one revision per key', async () => {
    await ensureBucket(nc, 'own', logger);
    const st = await (await new Kvm(nc).open(bucketName('own'))).status();
    expect(st.bucket).to.equal('sandbar_own_shards');
    expect(st.history).to.equal(1);
  });

  it('a first claim writes epoch 1, each later claim one more, and read() gives the record', async () => {
    expect(await own.read(1)).to.equal(null);
    expect(await own.claim(1, 'h1.0', ['h2.0'])).to.equal(1);
    expect(await own.claim(1, 'h2.0', [])).to.equal(2);
    const r = (await own.read(1))!;
    expect(r).to.deep.include({ epoch: 2, master: 'h2.0', replicas: [] });
    expect(r.at).to.be.a('number');
  });

  it('claimants racing for one shard get distinct epochs: no epoch is won twice', async () => {
    const others = await Promise.all(Array.from({ length: 4 }, () => nats.connect().then((c) => Ownership.open(c, 'own', logger))));
    const got = await Promise.all([own, ...others].map((o, i) => o.claim(2, `h${i}.0`, [])));
    const won = got.filter((e): e is number => e !== null);
    expect(won.length, 'at least one claim wins').to.be.greaterThan(0);
    expect(new Set(won).size, `epochs ${won}`).to.equal(won.length);
    const last = (await own.read(2))!;
    expect(last.epoch).to.equal(Math.max(...won));
    expect(`h${got.indexOf(last.epoch)}.0`).to.equal(last.master);
  });

  it('setReplicas keeps the epoch, and only the serving master of that epoch may write it', async () => {
    const epoch = (await own.claim(3, 'h1.0', ['h2.0']))!;
    expect(await own.setReplicas(3, epoch, 'h1.0', [])).to.equal(true);
    expect(await own.read(3)).to.deep.include({ epoch, master: 'h1.0', replicas: [] });
    expect(await own.setReplicas(3, epoch, 'h9.0', ['h2.0']), 'not the master').to.equal(false);
    expect(await own.setReplicas(3, epoch - 1, 'h1.0', ['h2.0']), 'an older epoch').to.equal(false);
    await own.claim(3, 'h2.0', []);
    expect(await own.setReplicas(3, epoch, 'h1.0', ['h3.0']), 'deposed').to.equal(false);
    expect(await own.setReplicas(99, 1, 'h1.0', []), 'no record').to.equal(false);
  });

  it('readAll lists every shard in order, epoch 0 and no master where nothing is written', async () => {
    const all = await own.readAll(70);
    expect(all.map((r) => r.shard)).to.deep.equal(Array.from({ length: 70 }, (_, i) => i));
    expect(all[0]).to.deep.equal({ shard: 0, epoch: 0, master: null });
    expect(all[1]).to.include({ epoch: 2, master: 'h2.0' });
  });

  it('the watch gives the current records first, then every claim as it is written (how a master learns it was deposed)', async () => {
    const seen: [number, OwnershipRecord][] = [];
    const w = await own.watch((shard, rec) => { seen.push([shard, rec]); });
    try {
      await until(() => seen.some(([s]) => s === 1), 5000, () => `current records: ${JSON.stringify(seen)}`);
      await own.claim(4, 'h3.0', ['h1.0']);
      await until(() => seen.some(([s, r]) => s === 4 && r.master === 'h3.0'), 5000, () => `the claim of shard 4: ${JSON.stringify(seen)}`);
    } finally {
      w.stop();
    }
    // The lease key lives in the same bucket and is not a shard record.
    await own.renewLease('h1', 'abc');
    const lease = await (await new Kvm(nc).open(bucketName('own'))).get('host.h1');
    expect(lease?.json<{ incarnation: string }>().incarnation).to.equal('abc');
    expect(seen.every(([s]) => Number.isInteger(s))).to.equal(true);
  });

  it('a JetStream step is retried while the answer is transient, and any other error is thrown at once', async () => {
    let calls = 0;
    await whileJetStreamElects(async () => { if (++calls < 3) throw new Error('JetStream system temporarily unavailable'); }, 'test', logger, 5000);
    expect(calls).to.equal(3);
    let other = 0;
    const err = await whileJetStreamElects(async () => { other++; throw new Error('bucket name invalid'); }, 'test', logger, 5000).then(() => null, (e: Error) => e);
    expect(err?.message).to.equal('bucket name invalid');
    expect(other).to.equal(1);
  });
});
