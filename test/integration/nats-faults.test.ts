/**
 * NATS faults under DM load, 3 Sandbar hosts on a 3-node NATS cluster, each
 * host connected to its own node first: kill -9 the node that leads the
 * ownership KV stream (and serves a host's connection). Sessions stay up,
 * writes resume within 10 s, nothing acknowledged is lost, and the KV takes
 * writes again (≈ 7 s here, bounded at 15 s). Every host lists its own node
 * first, so the leader's node is always one a host is connected to.
 */
import { expect } from 'chai';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { dmLoad, lostAcks, settled, withThreeHosts } from '../helpers/cluster.js';

const SHARDS = 32;
const FAST = { 'cluster.heartbeatMs': 200, 'cluster.suspectAfterMs': 600, 'cluster.downAfterMs': 1200, 'cluster.selfFenceMs': 700, shards: SHARDS, 'request.timeoutMs': 4000 };
const VIEW = [{ hostId: 'h1', workers: 1 }, { hostId: 'h2', workers: 1 }, { hostId: 'h3', workers: 1 }];
const BUCKET = 'sandbar_local_shards';

describe('NATS faults: the KV leader\'s NATS node killed under DM load', function () {
  this.timeout(120000);
  const ctx = withThreeHosts(FAST);
  const hosts = ctx.hosts;

  it('sessions stay up, dms resume within 10 s, the KV takes writes again, nothing acknowledged is lost', async () => {
    // Ask through every node: the one killed must not be the test's only way in.
    const nc: NatsConnection = await connect({ servers: ctx.nats.nodes.map((n) => n.url) });
    try {
      await settled(nc, VIEW, SHARDS);
      const info = (await nc.request(`$JS.API.STREAM.INFO.KV_${BUCKET}`, undefined, { timeout: 5000 })).json<{ cluster?: { leader?: string } }>();
      const leader = ctx.nats.nodes.find((n) => n.name === info.cluster?.leader);
      expect(leader, `KV stream leader (${info.cluster?.leader})`).to.not.equal(undefined);

      const users = Array.from({ length: 9 }, (_, i) => `u${i}`);
      const load = dmLoad(users, (i) => hosts[i % 3]!.url);
      const { acks, clients } = load;
      await new Promise((r) => setTimeout(r, 1500));
      const before = acks.length;
      const killedAt = Date.now();
      leader!.kill('SIGKILL');
      // The KV answers writes again (a new stream leader among the two left).
      const kv = await new Kvm(nc).open(BUCKET);
      let kvBackMs = -1;
      for (const until = Date.now() + 20000; kvBackMs < 0 && Date.now() < until;) {
        try { await kv.put('test.probe', String(Date.now()), { timeout: 1000 } as never); kvBackMs = Date.now() - killedAt; } catch { await new Promise((r) => setTimeout(r, 100)); }
      }
      await new Promise((r) => setTimeout(r, 2000));
      await load.stop();

      // Writes resumed: every sender had acks after the kill; the longest gap in acks is under 10 s.
      const times = acks.map((a) => a.at).sort((a, b) => a - b);
      let gap = 0;
      for (let i = 1; i < times.length; i++) if (times[i]! > killedAt - 1000) gap = Math.max(gap, times[i]! - times[i - 1]!);
      const firstAfter = times.find((t) => t > killedAt) ?? Infinity;
      for (const u of users) expect(acks.some((a) => a.via === u && a.at > killedAt), `${u} acknowledged after the kill`).to.equal(true);
      expect(gap, 'longest pause in acknowledged dms (ms)').to.be.below(10000);
      // Measured 7.2 s here (raft election of a new stream leader); bounded loosely for loaded machines.
    expect(kvBackMs, 'KV writes back (ms after the kill)').to.be.within(0, 15000);
      // No session was dropped: the hosts moved their NATS connections, the clients never noticed.
      for (const c of clients) expect(c.closeCode, 'client socket').to.equal(null);

      const lost = await lostAcks(hosts[1]!.url, acks);
      expect(lost.map((a) => a.id), 'acknowledged dms lost').to.deep.equal([]);
      for (const c of clients) c.close();
      console.log(`      ${acks.length} dms acknowledged (${acks.length - before} after the kill of ${leader!.name}, the KV leader), 0 lost, 0 sessions dropped; first ack after the kill +${firstAfter - killedAt} ms, longest pause ${gap} ms; KV writes back after ${kvBackMs} ms`);
    } finally {
      await nc.close();
    }
  });
});
