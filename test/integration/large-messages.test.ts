/**
 * Regression: bus messages over NATS's max_payload (1 MiB by default) were
 * lost. nats.js refuses to publish them, so a replica asking for the snapshot
 * of a shard bigger than that never got it (and its master's death then lost
 * the shard), and a join whose inbox replay passed it never got its reply.
 * They now go in pieces (src/bus/fragments.ts).
 */
import { expect } from 'chai';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startNatsServer, type NatsServerHandle } from '../support/nats.js';
import { startHost, token, type HostHandle } from '../support/host.js';
import { RawClient, type Frame } from '../support/clients.js';
import { Subjects } from '../../src/bus/subjects.js';
import { shardOf } from '../../src/placement/shard.js';

const SHARDS = 8;
const BODY = 'x'.repeat(15_000);
type Reply = { status: string; response: Record<string, unknown> };
const reply = (f: Frame) => f[4] as Reply;

describe('large messages: a shard, or a reply, bigger than NATS max_payload (regression: the replica never synced, the join replay never came)', function () {
  this.timeout(120000);
  let nats: NatsServerHandle;
  let host: HostHandle;
  let nc: NatsConnection;
  const subjects = new Subjects('lmsg');
  const clients: RawClient[] = [];

  before(async () => {
    nats = await startNatsServer();
    // Replicas only: with persistence off, what a killed master held survives on its replica or nowhere.
    host = await startHost({ nats: nats.url, workers: 2, flags: { hostId: 'lm', 'cluster.name': 'lmsg', shards: SHARDS, 'persistence.mode': 'none', 'sender.bytesPerMin': 0, 'session.ratePerSecond': 0 } });
    nc = await connect({ servers: nats.url });
    expect(nc.info?.max_payload).to.equal(1024 * 1024);
  });
  after(async () => {
    for (const c of clients) c.close();
    await nc?.close();
    await host?.stop();
    await nats?.stop();
  });

  async function open(user: string, worker?: number): Promise<RawClient> {
    for (let i = 0; i < 40; i++) {
      const c = await RawClient.open(host.url, token(user));
      const j = await c.join('echo:where', {}, 'e');
      if (worker === undefined || String(reply(j).response.session).split('.')[1] === String(worker)) {
        clients.push(c);
        return c;
      }
      c.close();
    }
    throw new Error(`no connection of ${user} landed on worker ${worker}`);
  }

  async function masterOf(op: 'u.info' | 'r.info', id: string): Promise<number> {
    const r = await nc.request(subjects.shardCmd(shardOf(id, SHARDS)), JSON.stringify({ op, id }), { timeout: 5000 });
    return Number(r.json<{ master: string }>().master.split('.')[1]);
  }

  /** kill -9 of a worker, and its replacement has taken up every role of its first view (replicas synced). */
  async function killAndResync(worker: number): Promise<void> {
    const from = host.lines.length;
    process.kill(host.workerPids().get(worker)!, 'SIGKILL');
    await host.waitFor((l) => l.msg === 'worker serves its shards' && l.worker === worker, 60000, from);
  }

  it('a room history of 3 MiB is synced to the restarted replica, and survives its master\'s kill -9 there', async () => {
    const alice = await open('alice');
    await alice.join('room:big', {}, 'r');
    for (let i = 1; i <= 200; i += 20) {
      const oks = await Promise.all(Array.from({ length: 20 }, (_, k) => alice.request('r', 'room:big', 'msg', { id: `m${i + k}`, body: BODY }, 30000)));
      for (const ok of oks) expect(reply(ok).status, JSON.stringify(reply(ok))).to.equal('ok');
    }
    const master = await masterOf('r.info', 'big');
    // The replica's worker restarts: it asks the master for the whole shard (over 3 MiB) and must get it.
    await killAndResync(1 - master);
    // Now the master dies: the room is served from that replica, with every message.
    await killAndResync(master);
    const bob = await open('bob');
    const join = await bob.join('room:big', { last_seq: 0 }, 'r', 30000);
    expect(reply(join).status, JSON.stringify(reply(join))).to.equal('ok');
    await bob.waitFor(() => bob.frames.filter((f) => f[2] === 'room:big' && f[3] === 'msg').length >= 200, 30000).catch(() => null);
    const ids = bob.frames.filter((f) => f[2] === 'room:big' && f[3] === 'msg').map((f) => (f[4] as { id: string }).id);
    expect(ids).to.deep.equal(Array.from({ length: 200 }, (_, k) => `m${k + 1}`));
  });

  it('a join whose inbox replay is over 2 MiB gets every message, from a master on another worker', async () => {
    const dave = await open('dave');
    await dave.join('user:dave', {}, 'u');
    for (let i = 1; i <= 150; i += 15) {
      const oks = await Promise.all(Array.from({ length: 15 }, (_, k) => dave.request('u', 'user:dave', 'dm', { to: 'carol', id: `d${i + k}`, body: BODY }, 30000)));
      for (const ok of oks) expect(reply(ok).status, JSON.stringify(reply(ok))).to.equal('ok');
    }
    const master = await masterOf('u.info', 'carol');
    const carol = await open('carol', 1 - master);
    const join = await carol.join('user:carol', { last_seq: 0 }, 'u', 30000);
    expect(reply(join).status, JSON.stringify(reply(join))).to.equal('ok');
    await carol.waitFor(() => carol.frames.filter((f) => f[2] === 'user:carol' && f[3] === 'dm').length >= 150, 30000).catch(() => null);
    const seqs = carol.frames.filter((f) => f[2] === 'user:carol' && f[3] === 'dm').map((f) => (f[4] as { seq: number }).seq);
    expect(seqs).to.deep.equal(Array.from({ length: 150 }, (_, k) => k + 1));
  });
});
