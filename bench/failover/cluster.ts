/**
 * The failover bench's cluster: a 3-node NATS cluster with JetStream (the
 * shard-ownership KV bucket is replicated on all three) and N Sandbar hosts,
 * each in its own process group so one can be killed with `kill -9` of the
 * group (primary and workers at once), as test/integration/cluster.test.ts
 * does with its helpers.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { sleep } from '../lib/metrics.js';
import { spawnServer, type ServerHandle } from '../lib/proc.js';
import { place } from '../../src/placement/rendezvous.js';
import { bucketName } from '../../src/placement/ownership.js';

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

export interface NatsNode { readonly name: string; readonly url: string; readonly server: ServerHandle }

/** Starts `size` nats-server nodes routed to each other; resolves when JetStream answers through every node. */
export async function startNatsCluster(dir: string, size: number, command: string): Promise<NatsNode[]> {
  const ports = [];
  for (let i = 0; i < size; i++) ports.push({ client: await freePort(), cluster: await freePort() });
  const nodes: NatsNode[] = [];
  for (let i = 0; i < size; i++) {
    const name = `n${i + 1}`;
    const routes = ports.filter((_, j) => j !== i).map((p) => `nats-route://127.0.0.1:${p.cluster}`).join(', ');
    const conf = join(dir, `${name}.conf`);
    mkdirSync(join(dir, name), { recursive: true });
    writeFileSync(conf, `server_name: ${name}\nlisten: 127.0.0.1:${ports[i]!.client}\njetstream { store_dir: "${join(dir, name)}" }\ncluster { name: sandbar-bench, listen: 127.0.0.1:${ports[i]!.cluster}, routes: [${routes}] }\n`);
    const server = await spawnServer({ name, command, args: ['-c', conf], logPath: join(dir, `${name}.log`), readyTimeoutMs: 0 });
    nodes.push({ name, url: `nats://127.0.0.1:${ports[i]!.client}`, server });
  }
  const deadline = Date.now() + 30000;
  for (const n of nodes) {
    for (;;) {
      try {
        const nc = await connect({ servers: n.url, timeout: 500 });
        const info = (await nc.request('$JS.API.INFO', undefined, { timeout: 1000 })).json<{ error?: unknown }>();
        await nc.close();
        if (!info.error) break;
      } catch { /* not yet */ }
      if (Date.now() > deadline) throw new Error(`NATS cluster did not form in 30 s; logs in ${dir}`);
      await sleep(200);
    }
  }
  return nodes;
}

export interface SandbarHost { readonly hostId: string; readonly port: number; readonly url: string; readonly server: ServerHandle }

/** Starts the hosts together (one discovery window); host i talks to NATS node i first. */
export async function startHosts(o: {
  dir: string; count: number; workers: number; nats: readonly NatsNode[]; secret: string; sandbarMain: string; extraArgs: readonly string[];
}): Promise<SandbarHost[]> {
  const started = await Promise.allSettled(Array.from({ length: o.count }, async (_, i) => {
    const hostId = `h${i + 1}`;
    const servers = [...o.nats.slice(i % o.nats.length), ...o.nats.slice(0, i % o.nats.length)].map((n) => n.url).join(',');
    const dataDir = join(o.dir, hostId);
    mkdirSync(dataDir, { recursive: true });
    const server = await spawnServer({
      name: hostId,
      command: process.execPath,
      args: [
        o.sandbarMain, 'start', `--hostId=${hostId}`, '--http.host=127.0.0.1', '--http.port=0', '--admin.listener=public', `--cluster.workers=${o.workers}`,
        `--nats.servers=${servers}`, '--nats.embedded=false', `--auth.secret=${o.secret}`, '--authz.default=public', `--dataDir=${dataDir}`,
        '--log.level=info', '--session.idleTimeoutMs=600000', '--cluster.workerHangMs=60000',
        // Clients from a few loopback addresses at full speed: no per-IP, admission or frame-rate limits.
        '--http.ipConnectRate=0', '--http.ipMaxSessions=0', '--http.acceptRate=0', '--session.ratePerSecond=0',
        ...o.extraArgs,
      ],
      logPath: join(o.dir, `${hostId}.log`),
      readyTimeoutMs: 90000,
      readyMsg: 'host ready',
    });
    return { hostId, port: server.port, url: `ws://127.0.0.1:${server.port}/socket/websocket?vsn=2.0.0`, server };
  }));
  const hosts = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) {
    await Promise.all(hosts.map((h) => h.server.stop()));
    throw (failed as PromiseRejectedResult).reason;
  }
  return hosts;
}

/** Waits until the KV says every shard is mastered where rendezvous placement over these hosts puts it. */
export async function waitSettled(natsUrl: string, hosts: readonly { hostId: string; workers: number }[], shards: number, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  const nc = await connect({ servers: natsUrl });
  try {
    const kv = await new Kvm(nc).open(bucketName('local'));
    for (;;) {
      let ok = true;
      for (let base = 0; base < shards && ok; base += 64) {
        const batch = await Promise.all(Array.from({ length: Math.min(64, shards - base) }, (_, k) => kv.get(`shard.${base + k}`)));
        batch.forEach((e, k) => {
          const p = place(base + k, hosts, 1);
          const rec = e && e.length > 0 ? e.json<{ master?: string }>() : undefined;
          if (rec?.master !== `${p.master.hostId}.${p.master.worker}`) ok = false;
        });
      }
      if (ok) return Date.now() - t0;
      if (Date.now() - t0 > timeoutMs) throw new Error(`shard ownership did not settle in ${timeoutMs} ms`);
      await sleep(250);
    }
  } finally {
    await nc.close();
  }
}
