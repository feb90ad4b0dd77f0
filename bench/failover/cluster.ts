/**
 * The failover bench's cluster, started with the launchers the tests use
 * (test/support): a 3-node NATS cluster with JetStream (the shard-ownership
 * KV bucket is replicated on all three) and N Sandbar hosts, each in its own
 * process group so one can be killed with `kill -9` of the group (primary
 * and workers at once), as test/integration/cluster.test.ts does.
 */
import { settled } from '../../test/support/cluster.js';
import { startTogether, type SandbarHost } from '../../test/support/host.js';
import { NatsCluster } from '../../test/support/nats.js';
import { benchHost } from '../lib/servers.js';

/** Starts `size` nats-server nodes routed to each other (configs, stores and logs in `dir`); resolves when JetStream answers through every node. */
export function startNatsCluster(dir: string, size: number, command: string): Promise<NatsCluster> {
  return new NatsCluster(size, () => ({}), { dir, command, logs: true, readyTimeoutMs: 30000 }).start();
}

/** Starts the hosts h1..h<count> together (one discovery window); host i talks to NATS node i first. */
export async function startHosts(o: {
  dir: string; count: number; workers: number; nats: NatsCluster; secret: string; sandbarMain: string; extraArgs: readonly string[];
}): Promise<SandbarHost[]> {
  const hosts = Array.from({ length: o.count }, (_, i) => benchHost({
    nats: o.nats.serversFor(i), dir: o.dir, hostId: `h${i + 1}`, logName: `h${i + 1}.log`, workers: o.workers, secret: o.secret, main: o.sandbarMain,
    flags: { 'cluster.workerHangMs': 60000 }, args: o.extraArgs, readyTimeoutMs: 90000,
  }));
  try {
    await startTogether(hosts);
  } catch (err) {
    await Promise.all(hosts.map((h) => h.stop()));
    throw err;
  }
  return hosts;
}

/** Waits until the KV says every shard is mastered where rendezvous placement over these hosts puts it; resolves with the time that took. */
export async function waitSettled(nats: NatsCluster, hosts: readonly { hostId: string; workers: number }[], shards: number, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  const nc = await nats.connect({ servers: nats.nodes[0]!.url });
  try {
    await settled(nc, hosts, shards, timeoutMs);
    return Date.now() - t0;
  } finally {
    await nc.close();
  }
}

