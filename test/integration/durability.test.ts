/**
 * Durability beyond the in-memory replicas (docs/durability.md): shard
 * snapshots and the durable log in JetStream, with a real nats-server whose
 * store outlives the Sandbar hosts, real hosts stopped (SIGTERM) or killed
 * (kill -9 of the whole process group), and real clients.
 */
import { expect } from 'chai';
import { errors, type NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { RawClient, freePort, token, useLab, withNats, type Frame, type HostHandle, type HostOptions } from '../support/index.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { place, shardOf } from '../../src/placement/index.js';
import { Subjects } from '../../src/bus/subjects.js';
import { snapshotBucket, SnapshotStore, type SnapshotHead } from '../../src/persistence/snapshot-store.js';

type Reply = { status: string; response: Record<string, unknown> };
const reply = (f: Frame) => f[4] as Reply;
interface Dm { seq: number; from: string; id: string; body: unknown }

const SHARDS = 32;

function hostFlags(cluster: string, hostId: string, extra: Record<string, string | number | boolean> = {}): Record<string, string | number | boolean> {
  return { 'cluster.name': cluster, hostId, shards: SHARDS, 'cluster.heartbeatMs': 200, 'cluster.suspectAfterMs': 600, 'cluster.downAfterMs': 1200, 'cluster.selfFenceMs': 700, 'session.ratePerSecond': 0, ...extra };
}

/** Joins user:<id> with last_seq 0 and returns the join's seq and every replayed dm (waits until the replay reached that seq). */
async function inboxOf(url: string, userId: string): Promise<{ seq: number; dms: Dm[]; client: RawClient }> {
  const c = await RawClient.open(url, token(userId));
  const j = await c.join(`user:${userId}`, { last_seq: 0 }, 'u');
  expect(reply(j).status, JSON.stringify(reply(j))).to.equal('ok');
  const seq = reply(j).response.seq as number;
  if (seq > 0) await c.waitFor((f) => f[3] === 'dm' && (f[4] as Dm).seq === seq, 10000);
  const dms = c.frames.filter((f) => f[2] === `user:${userId}` && f[3] === 'dm').map((f) => f[4] as Dm);
  return { seq, dms, client: c };
}

async function sendDm(c: RawClient, to: string, id: string, body: unknown): Promise<number> {
  const r = reply(await c.request('u', `user:${senders.get(c)}`, 'dm', { to, id, body }));
  expect(r.status, JSON.stringify(r)).to.equal('ok');
  return r.response.seq as number;
}

/** The user each sending client is. */
const senders = new WeakMap<RawClient, string>();

async function sender(url: string, userId: string): Promise<RawClient> {
  const c = await RawClient.open(url, token(userId));
  senders.set(c, userId);
  expect(reply(await c.join(`user:${userId}`, {}, 'u')).status).to.equal('ok');
  return c;
}

async function snapshotHead(nc: NatsConnection, cluster: string, shard: number): Promise<SnapshotHead | null> {
  const kv = await new Kvm(nc).open(snapshotBucket(cluster));
  const e = await kv.get(SnapshotStore.headKey(shard));
  return e && e.operation === 'PUT' && e.length > 0 ? e.json<SnapshotHead>() : null;
}

describe('durability: snapshots and the durable log in JetStream', function () {
  this.timeout(90000);
  // Every host a test started is stopped after it; `hosts` lists those still running, in start order.
  const lab = useLab({ each: true });
  const hosts = lab.hosts;
  const start = (opts: HostOptions): Promise<HostHandle> => lab.startHost(opts);
  const nats = withNats();
  let nc: NatsConnection;
  before(async () => { nc = await nats.connect(); });

  it('single host, SIGTERM and start again: the offline inbox and the room history are intact, seqs continue', async () => {
    const flags = hostFlags('single', 'h1', { 'persistence.snapshotIntervalMs': 600000 });
    let host = await start({ nats: nats.url, workers: 2, flags });
    const bob = await sender(host.url, 'bob');
    for (let i = 1; i <= 10; i++) expect(await sendDm(bob, 'carol', `c${i}`, { text: `note ${i}` })).to.equal(i);
    const r = await RawClient.open(host.url, token('bob'));
    expect(reply(await r.join('room:lobby', {}, 'r')).status).to.equal('ok');
    for (let i = 1; i <= 5; i++) expect(reply(await r.request('r', 'room:lobby', 'msg', { id: `r${i}`, body: `hi ${i}` })).response.seq).to.equal(i);
    bob.close(); r.close();
    await hosts.pop()!.stop();
    expect(host.lines.some((l) => l.msg === 'shard snapshots written before stop')).to.equal(true);

    host = await start({ nats: nats.url, workers: 2, flags });
    await host.waitFor((l) => l.msg === 'shard restored from JetStream');
    const carol = await inboxOf(host.url, 'carol');
    expect(carol.seq).to.equal(10);
    expect(carol.dms.map((d) => d.seq)).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(carol.dms.map((d) => d.id)).to.deep.equal(Array.from({ length: 10 }, (_, i) => `c${i + 1}`));
    expect(carol.dms[4]!.body).to.deep.equal({ text: 'note 5' });
    const room = await RawClient.open(host.url, token('dave'));
    const j = await room.join('room:lobby', { last_seq: 0 }, 'r');
    expect(reply(j).response.seq).to.equal(5);
    await room.waitFor((f) => f[3] === 'msg' && (f[4] as Dm).seq === 5);
    expect(room.frames.filter((f) => f[3] === 'msg').map((f) => (f[4] as Dm).body)).to.deep.equal(['hi 1', 'hi 2', 'hi 3', 'hi 4', 'hi 5']);
    // New seqs continue where they were; a resend of an old id is still recognised (dedup window restored).
    const bob2 = await sender(host.url, 'bob');
    expect(await sendDm(bob2, 'carol', 'c11', 'new')).to.equal(11);
    const dup = reply(await bob2.request('u', 'user:bob', 'dm', { to: 'carol', id: 'c3', body: { text: 'note 3' } }));
    expect(dup.response).to.include({ seq: 3, duplicate: true });
    expect(reply(await room.request('r', 'room:lobby', 'msg', { id: 'r6', body: 'hi 6' })).response.seq).to.equal(6);
    for (const c of [carol.client, room, bob2]) c.close();
  });

  it('single host with the embedded nats-server: its JetStream store in dataDir survives the restart of both', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'sandbar-embedded-'));
    const port = await freePort();
    const flags = hostFlags('emb', 'h1', { 'nats.embedded': true, dataDir, 'persistence.snapshotIntervalMs': 600000 });
    try {
      let host = await start({ nats: `nats://127.0.0.1:${port}`, workers: 1, flags });
      expect(host.lines.some((l) => l.msg === 'embedded nats-server started')).to.equal(true);
      const bob = await sender(host.url, 'bob');
      for (let i = 1; i <= 3; i++) await sendDm(bob, 'ivan', `i${i}`, i);
      bob.close();
      await hosts.pop()!.stop();
      host = await start({ nats: `nats://127.0.0.1:${port}`, workers: 1, flags });
      const ivan = await inboxOf(host.url, 'ivan');
      expect(ivan.dms.map((d) => d.id)).to.deep.equal(['i1', 'i2', 'i3']);
      ivan.client.close();
    } finally {
      await Promise.all(hosts.splice(0).map((h) => h.stop()));
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('3 hosts, mode log, kill -9 of all three under DM load: every dm that got an ok is delivered exactly once', async () => {
    const flags = (id: string) => hostFlags('logc', id, { 'persistence.mode': 'log', 'persistence.snapshotIntervalMs': 1000 });
    const hs: HostHandle[] = [];
    for (const id of ['h1', 'h2', 'h3']) hs.push(await start({ nats: nats.url, workers: 1, flags: flags(id) }));
    const receivers = Array.from({ length: 8 }, (_, i) => `rx${i}`);
    const okd = new Map<string, number>();
    const senders = await Promise.all(Array.from({ length: 6 }, (_, i) => sender(hs[i % 3]!.url, `tx${i}`)));
    let stop = false;
    const loops = senders.map(async (c, i) => {
      for (let k = 0; !stop; k++) {
        const to = receivers[(i + k) % receivers.length]!;
        const id = `tx${i}-${k}`;
        try {
          const r = reply(await c.request('u', `user:tx${i}`, 'dm', { to, id, body: k }, 3000));
          if (r.status === 'ok') okd.set(`${to}/${id}`, r.response.seq as number);
        } catch { return; /* the socket died with the host */ }
      }
    });
    // Under load: kill every host at once once a good number of dms are acknowledged.
    const t0 = Date.now();
    while (okd.size < 300 && Date.now() - t0 < 20000) await new Promise((r) => setTimeout(r, 50));
    for (const h of hs) h.killHost();
    stop = true;
    await Promise.all(hs.map((h) => h.exit));
    await Promise.all(loops);
    expect(okd.size).to.be.greaterThan(100);
    hosts.splice(0);
    for (const h of hs) await h.stop();

    const back: HostHandle[] = [];
    for (const id of ['h1', 'h2', 'h3']) back.push(await start({ nats: nats.url, workers: 1, flags: flags(id) }));
    let delivered = 0;
    for (const [i, rx] of receivers.entries()) {
      const inbox = await inboxOf(back[i % 3]!.url, rx);
      const count = new Map<string, number>();
      for (const d of inbox.dms) count.set(d.id, (count.get(d.id) ?? 0) + 1);
      for (const [key, seq] of okd) {
        const [to, id] = key.split('/') as [string, string];
        if (to !== rx) continue;
        expect(count.get(id), `${key} (ok seq ${seq})`).to.equal(1);
        expect(inbox.dms.find((d) => d.id === id)!.seq, key).to.equal(seq);
        delivered++;
      }
      for (const [id, n] of count) expect(n, id).to.equal(1);
      // Seqs are dense and continue: nothing is reused.
      expect(inbox.dms.map((d) => d.seq)).to.deep.equal(Array.from({ length: inbox.seq }, (_, k) => k + 1));
      inbox.client.close();
    }
    expect(delivered).to.equal(okd.size);
  });

  it('3 hosts, SIGTERM to all three at once: nothing acknowledged is lost (shards whose handoff nobody takes are snapshotted)', async () => {
    const flags = (id: string) => hostFlags('allstop', id, { 'persistence.snapshotIntervalMs': 600000 });
    const hs: HostHandle[] = [];
    for (const id of ['h1', 'h2', 'h3']) hs.push(await start({ nats: nats.url, workers: 1, flags: flags(id) }));
    const okd = new Map<string, number>();
    const txs = await Promise.all(hs.map((h, i) => sender(h.url, `st${i}`)));
    for (let k = 0; k < 20; k++) {
      await Promise.all(txs.map(async (c, i) => {
        const to = `sr${(i + k) % 6}`;
        okd.set(`${to}/st${i}-${k}`, await sendDm(c, to, `st${i}-${k}`, k));
      }));
    }
    for (const c of txs) c.close();
    hosts.splice(0);
    await Promise.all(hs.map((h) => h.stop()));
    for (const h of hs) expect(h.lines.some((l) => l.msg === 'shard snapshots written before stop'), 'snapshots written').to.equal(true);
    const waited = hs.reduce((k, h) => k + h.lines.filter((l) => l.msg === 'the old master left the cluster but still holds the shard: waiting for its handoff').length, 0);
    console.log(`      all-stop: ${waited} shards waited for their leaving master instead of claiming them empty`);

    const back: HostHandle[] = [];
    for (const id of ['h1', 'h2', 'h3']) back.push(await start({ nats: nats.url, workers: 1, flags: flags(id) }));
    for (let r = 0; r < 6; r++) {
      const inbox = await inboxOf(back[r % 3]!.url, `sr${r}`);
      const mine = [...okd].filter(([key]) => key.startsWith(`sr${r}/`));
      expect(inbox.dms.map((d) => `sr${r}/${d.id}`).sort()).to.deep.equal(mine.map(([key]) => key).sort());
      for (const [key, seq] of mine) expect(inbox.dms.find((d) => `sr${r}/${d.id}` === key)!.seq, key).to.equal(seq);
      inbox.client.close();
    }
  });

  it('a stopping master says it holds a shard until its handoff or snapshot (holds?), a gone one is not waited for, and the next master restores that snapshot', async () => {
    // R = 0: the next master never has a copy. h2's worker is stopped
    // (SIGSTOP), so h1's handoff to it goes unanswered and h1 keeps the shard.
    const flags = (id: string) => hostFlags('holds', id, { 'persistence.snapshotIntervalMs': 600000, 'replication.replicas': 0, 'cluster.workerHangMs': 60000 });
    const [h1, h2] = await Promise.all(['h1', 'h2'].map((id) => start({ nats: nats.url, workers: 1, flags: flags(id) })));
    const both = [{ hostId: 'h1', workers: 1 }, { hostId: 'h2', workers: 1 }];
    const users = Array.from({ length: 64 }, (_, i) => `hold${i}`);
    const on = (host: string) => users.find((u) => place(shardOf(u, SHARDS), both, 0).master.hostId === host)!;
    const [mine, theirs] = [on('h1'), on('h2')];
    const subjects = new Subjects('holds');
    const masterOf = async (u: string) => (await nc.request(subjects.shardCmd(shardOf(u, SHARDS)), JSON.stringify({ op: 'u.info', id: u }), { timeout: 2000 }).catch(() => null))?.json<{ master: string }>().master;
    for (const deadline = Date.now() + 15000; (await masterOf(mine)) !== 'h1.0' || (await masterOf(theirs)) !== 'h2.0';) {
      if (Date.now() > deadline) throw new Error('ownership did not settle on both hosts');
      await new Promise((r) => setTimeout(r, 100));
    }
    const bob = await sender(h2.url, 'holdbob');
    const okd = new Map<string, number>();
    for (let k = 0; k < 10; k++) okd.set(`m${k}`, await sendDm(bob, mine, `m${k}`, k));
    bob.close();
    const ask = (u: string) => nc.request(subjects.worker('h1', 0), JSON.stringify({ t: 'holds?', n: shardOf(u, SHARDS) }), { timeout: 2000 });
    const holds = async (u: string) => (await ask(u)).json<{ holds: boolean }>().holds;
    expect(await holds(mine), 'a running master does not stop').to.equal(false);

    const w2 = h2.workerPids().get(0)!;
    process.kill(w2, 'SIGSTOP');
    try {
      h1.kill('SIGTERM');
      await h1.waitFor((l) => l.msg === 'host stopping', 5000);
      // Its worker gets the stop from the primary, then waits up to 3 s for
      // h2's stopped worker to take the handoff: it holds the shard meanwhile.
      let held = await holds(mine);
      for (const until = Date.now() + 2500; !held && Date.now() < until; held = await holds(mine)) await new Promise((r) => setTimeout(r, 50));
      expect(held, 'stopping, the shard not handed off').to.equal(true);
      expect(await holds(theirs), 'a shard it does not master').to.equal(false);
      expect((await h1.exit).code).to.equal(0);
      expect(h1.lines.some((l) => l.msg === 'shard snapshots written before stop'), 'h1 snapshotted what nobody took').to.equal(true);
      // Gone: NATS says at once that nobody answers there.
      const err = await ask(mine).then(() => null, (e: Error) => e);
      expect(err instanceof errors.RequestError && err.isNoResponders(), String(err)).to.equal(true);
    } finally { process.kill(w2, 'SIGCONT'); }
    const inbox = await inboxOf(h2.url, mine);
    expect(inbox.dms.map((d) => [d.id, d.seq])).to.deep.equal([...okd]);
    inbox.client.close();
  });

  it('mode snapshots, kill -9: only dms acknowledged within the last persistence.snapshotIntervalMs can be lost', async () => {
    const interval = 1000;
    const flags = hostFlags('snapc', 'h1', { 'persistence.snapshotIntervalMs': interval });
    let host = await start({ nats: nats.url, workers: 1, flags });
    const bob = await sender(host.url, 'bob');
    const okAt = new Map<string, number>();
    for (let i = 1; i <= 10; i++) { await sendDm(bob, 'erin', `a${i}`, i); okAt.set(`a${i}`, Date.now()); }
    // The first batch is in a snapshot (read from the bucket, not assumed from a sleep).
    const shard = shardOf('erin', SHARDS);
    const deadline = Date.now() + 10000;
    while (((await snapshotHead(nc, 'snapc', shard))?.seq ?? 0) < 10) {
      if (Date.now() > deadline) throw new Error('no periodic snapshot of erin\'s shard');
      await new Promise((r) => setTimeout(r, 100));
    }
    // Then a steady stream for 2.5 intervals, and kill -9.
    const until = Date.now() + 2.5 * interval;
    for (let i = 1; Date.now() < until; i++) { await sendDm(bob, 'erin', `b${i}`, i); okAt.set(`b${i}`, Date.now()); }
    host.killHost();
    const killedAt = Date.now();
    await host.exit;
    await hosts.pop()!.stop();

    host = await start({ nats: nats.url, workers: 1, flags });
    const erin = await inboxOf(host.url, 'erin');
    const have = new Set(erin.dms.map((d) => d.id));
    const lost = [...okAt].filter(([id]) => !have.has(id));
    for (const [id, at] of lost) expect(killedAt - at, `${id} lost though acknowledged ${killedAt - at} ms before the kill`).to.be.lessThan(interval + 500);
    for (let i = 1; i <= 10; i++) expect(have.has(`a${i}`)).to.equal(true);
    expect(erin.dms.length).to.be.greaterThan(10);
    erin.client.close();
    await hosts.pop()!.stop();
    // Each snapshot (at least 3 periodic ones, and one at the stop) replaced the one before:
    // besides the current generation's chunks, at most one other is left (a write cut by the kill).
    const kv = await new Kvm(nc).open(snapshotBucket('snapc'));
    const gens = new Set<string>();
    for await (const k of await kv.keys(`chunk.${shard}.>`)) gens.add(k.split('.')[2]!);
    expect([...gens]).to.include((await snapshotHead(nc, 'snapc', shard))!.gen);
    expect(gens.size).to.be.at.most(2);
  });

  it('a corrupt or truncated snapshot is detected and never restored: from the log when it reaches back, else empty, loudly', async () => {
    // (a) mode snapshots, a truncated chunk: the shard starts empty with an error naming it.
    const flagsA = hostFlags('corruptc', 'h1', { 'persistence.snapshotIntervalMs': 600000 });
    let host = await start({ nats: nats.url, workers: 1, flags: flagsA });
    let bob = await sender(host.url, 'bob');
    for (let i = 1; i <= 5; i++) await sendDm(bob, 'frank', `f${i}`, i);
    bob.close();
    await hosts.pop()!.stop();
    const shardF = shardOf('frank', SHARDS);
    const bucket = await new Kvm(nc).open(snapshotBucket('corruptc'));
    const head = (await snapshotHead(nc, 'corruptc', shardF))!;
    expect(head.seq).to.be.greaterThan(0);
    const chunk = await bucket.get(SnapshotStore.chunkKey(shardF, head.gen, 0));
    await bucket.put(SnapshotStore.chunkKey(shardF, head.gen, 0), chunk!.value.subarray(0, Math.floor(chunk!.length / 2)));
    host = await start({ nats: nats.url, workers: 1, flags: flagsA });
    const err = await host.waitFor((l) => l.shard === shardF && l.code === 'SANDBAR_ERR_SNAPSHOT_CORRUPT');
    expect(err.level).to.equal(50);
    expect(String(err.msg)).to.include('STARTS EMPTY');
    expect(String(err.reason)).to.match(/truncated/);
    const frank = await inboxOf(host.url, 'frank');
    expect(frank.seq).to.equal(0);
    frank.client.close();
    await hosts.pop()!.stop();

    // (b) mode log, garbage in the head: the shard comes back from its log alone (it reaches back to seq 1).
    const flagsB = hostFlags('corruptl', 'h1', { 'persistence.mode': 'log', 'persistence.snapshotIntervalMs': 600000 });
    host = await start({ nats: nats.url, workers: 1, flags: flagsB });
    bob = await sender(host.url, 'bob');
    for (let i = 1; i <= 5; i++) await sendDm(bob, 'gina', `g${i}`, i);
    host.killHost();
    await host.exit;
    await hosts.pop()!.stop();
    const shardG = shardOf('gina', SHARDS);
    const bucketB = await new Kvm(nc).open(snapshotBucket('corruptl'));
    await bucketB.put(SnapshotStore.headKey(shardG), new TextEncoder().encode('\u0000garbage{'));
    host = await start({ nats: nats.url, workers: 1, flags: flagsB });
    const errB = await host.waitFor((l) => l.shard === shardG && l.code === 'SANDBAR_ERR_SNAPSHOT_CORRUPT');
    expect(String(errB.msg)).to.include('from its durable log');
    const gina = await inboxOf(host.url, 'gina');
    expect(gina.dms.map((d) => d.id)).to.deep.equal(['g1', 'g2', 'g3', 'g4', 'g5']);
    gina.client.close();
  });
});
