/**
 * JetStream limits from config (issue 21): persistence.logMaxBytes and
 * persistence.snapshotStoreMaxBytes become the stream's and the bucket's
 * max_bytes; a full store is a clear error at once, never a timeout; a
 * limit JetStream cannot reserve stops start-up with exit 78 naming the key.
 */
import { expect } from 'chai';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { startNatsServer, type NatsServerHandle } from '../support/nats.js';
import { startHost, token, type HostHandle } from '../support/host.js';
import { RawClient, type Frame } from '../support/clients.js';
import { logStream } from '../../src/persistence/shard-log.js';
import { snapshotBucket } from '../../src/persistence/snapshot-store.js';
import { kvStream } from '../../src/bus/subjects.js';

type Reply = { status: string; response: Record<string, unknown> };
const reply = (f: Frame) => f[4] as Reply;

describe('JetStream limits: max_bytes from config, a full store is a clear error at once', function () {
  this.timeout(90_000);
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  const hosts: HostHandle[] = [];

  before(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
  });
  after(async () => {
    for (const h of hosts) await h.stop();
    await nc?.close();
    await nats?.stop();
  });

  it('mode log: a full log refuses new writes with SANDBAR_ERR_JETSTREAM_FULL at once; once a snapshot trims it, writes are taken again', async () => {
    const host = await startHost({ nats: nats.url, workers: 1, flags: {
      'cluster.name': 'jslog', shards: 8, 'persistence.mode': 'log', 'persistence.logMaxBytes': 262144, 'persistence.snapshotIntervalMs': 8000,
      'session.ratePerSecond': 0, 'sender.bytesPerMin': 0,
    } });
    hosts.push(host);
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(logStream('jslog'));
    expect(info.config.max_bytes).to.equal(262144);
    expect(info.config.discard).to.equal('new');

    const c = await RawClient.open(host.url, token('writer'));
    expect(reply(await c.join('user:writer', {}, 'u')).status).to.equal('ok');
    const body = 'y'.repeat(8000);
    let full: { ms: number; code: string } | null = null;
    let ok = 0;
    for (let i = 0; i < 200 && !full; i++) {
      const t0 = Date.now();
      const r = reply(await c.request('u', 'user:writer', 'dm', { to: `r${i % 4}`, id: `a${i}`, body }, 20000));
      if (r.status === 'ok') ok++;
      else full = { ms: Date.now() - t0, code: r.response.code as string };
    }
    console.log(`      log full after ${ok} dms: ${JSON.stringify(full)}`);
    expect(full, 'a write refused').to.not.equal(null);
    expect(full!.code).to.equal('SANDBAR_ERR_JETSTREAM_FULL');
    // At once: not a request timeout (5 s).
    expect(full!.ms).to.be.below(1000);
    const line = await host.waitFor((l) => l.code === 'SANDBAR_ERR_JETSTREAM_FULL' && l.level === 50);
    expect(String(line.msg)).to.match(/persistence\.logMaxBytes/);
    // A periodic snapshot trims the log; writes are taken again.
    const deadline = Date.now() + 30_000;
    let back = false;
    for (let i = 0; Date.now() < deadline && !back; i++) {
      await new Promise((r) => setTimeout(r, 500));
      back = reply(await c.request('u', 'user:writer', 'dm', { to: 'r0', id: `b${i}`, body: 'small' }, 20000)).status === 'ok';
    }
    expect(back, 'writes taken again after the log was trimmed').to.equal(true);
    c.close();
  });

  it('a full snapshot bucket: the snapshot is not written, an error names the store at once; the shard goes on serving', async () => {
    const host = await startHost({ nats: nats.url, workers: 1, flags: {
      'cluster.name': 'jssnap', shards: 4, 'persistence.snapshotStoreMaxBytes': 65536, 'persistence.snapshotIntervalMs': 1000,
      'session.ratePerSecond': 0, 'sender.bytesPerMin': 0,
    } });
    hosts.push(host);
    const info = await (await jetstreamManager(nc)).streams.info(kvStream(snapshotBucket('jssnap')));
    expect(info.config.max_bytes).to.equal(65536);
    const c = await RawClient.open(host.url, token('writer'));
    expect(reply(await c.join('user:writer', {}, 'u')).status).to.equal('ok');
    for (let i = 0; i < 12; i++) expect(reply(await c.request('u', 'user:writer', 'dm', { to: 'big', id: `s${i}`, body: 'z'.repeat(8000) })).status).to.equal('ok');
    const line = await host.waitFor((l) => l.code === 'SANDBAR_ERR_JETSTREAM_FULL', 15000);
    expect(line.level).to.equal(50);
    expect(String(line.msg)).to.match(/snapshot bucket is full.*persistence\.snapshotStoreMaxBytes/);
    expect(String(line.err)).to.include(snapshotBucket('jssnap'));
    // Still served.
    expect(reply(await c.request('u', 'user:writer', 'dm', { to: 'big', id: 'after', body: 'x' })).status).to.equal('ok');
    c.close();
  });

  it('a limit the NATS server cannot reserve stops start-up with exit 78, naming the key', async () => {
    const host = await startHost({ nats: nats.url, workers: 1, noWait: true, flags: { 'cluster.name': 'jshuge', 'persistence.snapshotStoreMaxBytes': 1125899906842624 } });
    hosts.push(host);
    const { code } = await host.exit;
    expect(code).to.equal(78);
    expect(host.stderr()).to.match(/persistence\.snapshotStoreMaxBytes = 1125899906842624/);
  });
});
