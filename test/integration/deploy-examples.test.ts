/**
 * config/examples/three-hosts, run as written: three NATS nodes from
 * nats-1/2/3.conf and three Sandbar hosts from host-1/2/3.toml, on one
 * machine. The test copies change only what one machine forces (addresses,
 * ports and paths: nats-1..3 and 0.0.0.0 become 127.0.0.1 with free ports,
 * http.port 0, store_dir and dataDir temp dirs), and the test checks that
 * nothing else changed. Then it does what docs/deploy.md tells an operator to
 * check: NATS routes and JetStream, /health/ready, `sandbar status`, the
 * admin requests of docs/operations.md on every host, clients on every host
 * and a dm across hosts; a misspelt key; then the rolling restart of one host
 * and the adding (and removing) of a fourth, as docs/deploy.md describes them.
 *
 * One thing comes from outside the files: SANDBAR_CLUSTER_WORKERS=1, so the
 * test runs 3 hosts × (primary + 1 worker) whatever the machine's CPU count
 * (the examples leave cluster.workers at 0, one per CPU). The environment is
 * the layer sandbar.service uses for the secret too; the files stay as they are.
 * A host that exits 69 at start is started again after 3 s, as the unit's
 * Restart=on-failure does; each such retry is printed.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, Empty, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { Socket } from 'phoenix';
import WebSocket from 'ws';
import { parse as parseToml } from 'smol-toml';
import { NatsNode, RawClient, freePort, runSandbar, startHostFromConfig, withTempDir, type ConfigHostHandle, type Frame } from '../support/index.js';
import { mintToken } from '../../src/auth/token.js';
import { shardsOf } from '../../src/placement/rendezvous.js';

const EXAMPLES = join(import.meta.dirname, '../../config/examples/three-hosts');
const N = [1, 2, 3] as const;
const ENV = { SANDBAR_CLUSTER_WORKERS: '1' };

interface Ports { client: number; cluster: number; monitor: number }

// ------------------------------------------------------------------ rewriting

const isComment = (line: string) => /^\s*#/.test(line);

/** A NATS node config with nats-1..3, 0.0.0.0 and the store dir replaced by test values. */
function rewriteNats(text: string, ports: Ports[], store: string): string {
  return text.split('\n').map((line) => {
    if (isComment(line)) return line;
    return line
      .replace(/^(\s*)listen: 0\.0\.0\.0:4222$/, (_, ws: string) => `${ws}listen: 127.0.0.1:${ports[self(text)]!.client}`)
      .replace(/^(\s*)listen: 0\.0\.0\.0:6222$/, (_, ws: string) => `${ws}listen: 127.0.0.1:${ports[self(text)]!.cluster}`)
      .replace(/^(\s*)http: 0\.0\.0\.0:8222$/, (_, ws: string) => `${ws}http: 127.0.0.1:${ports[self(text)]!.monitor}`)
      .replace(/^(\s*)store_dir: \/var\/lib\/nats$/, (_, ws: string) => `${ws}store_dir: "${store}"`)
      .replace(/nats-route:\/\/nats-([123]):6222/g, (_, n: string) => `nats-route://127.0.0.1:${ports[Number(n) - 1]!.cluster}`);
  }).join('\n');
}

/** Index of the node a NATS config is for, from its server_name. */
function self(text: string): number {
  const m = /^server_name: nats-([123])$/m.exec(text);
  if (!m) throw new Error('no server_name: nats-1|2|3 line');
  return Number(m[1]) - 1;
}

/** A Sandbar config with its NATS URLs, HTTP listener and dataDir replaced by test values. */
function rewriteHost(text: string, ports: Ports[], dataDir: string): string {
  return text.split('\n').map((line) => {
    if (isComment(line)) return line;
    return line
      .replace(/^dataDir = "\/var\/lib\/sandbar"$/, `dataDir = "${dataDir}"`)
      .replace(/^host = "0\.0\.0\.0"$/, 'host = "127.0.0.1"')
      .replace(/^port = 4000$/, 'port = 0')
      .replace(/nats:\/\/nats-([123]):4222/g, (_, n: string) => `nats://127.0.0.1:${ports[Number(n) - 1]!.client}`);
  }).join('\n');
}

/** The line with every address, port and path replaced by a placeholder. */
function mask(line: string): string {
  return line
    .replace(/\b(nats-route|nats):\/\/[^\s",\]]+/g, '$1://ADDR')
    .replace(/\b(?:\d{1,3}\.){3}\d{1,3}:\d+\b/g, 'ADDR')
    .replace(/"?\/[^\s"]*"?/g, 'PATH')
    .replace(/^port = \d+$/, 'port = PORT')
    .replace(/^host = "[^"]*"$/, 'host = HOST');
}

/** The changed lines between two versions of a file: [original, rewritten]. */
function changedLines(a: string, b: string): [string, string][] {
  const la = a.split('\n');
  const lb = b.split('\n');
  expect(lb.length, 'the rewrite keeps every line').to.equal(la.length);
  return la.flatMap((l, i) => (l === lb[i] ? [] : [[l, lb[i]!] as [string, string]]));
}

// ------------------------------------------------------------------ processes

/** A node of the example cluster, with its monitoring endpoint (/jsz). */
type ExampleNode = NatsNode & { readonly monitor: string };

function startNatsNode(name: string, conf: string, port: Ports): Promise<ExampleNode> {
  return Object.assign(new NatsNode(name, conf, `nats://127.0.0.1:${port.client}`), { monitor: `http://127.0.0.1:${port.monitor}` }).start();
}

/**
 * Resolves when JetStream answers through every node and every node's /jsz
 * shows the meta group whole (a leader and two current replicas), the check
 * docs/deploy.md gives operators.
 */
async function jetStreamReady(nodes: ExampleNode[], timeoutMs = 30000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const n of nodes) {
    for (;;) {
      if (n.proc.exitCode !== null) throw new Error(`${n.name} exited ${n.proc.exitCode}: ${n.stderr().slice(-2000)}`);
      try {
        const jsz = await getJson<{ meta_cluster?: { leader?: string; replicas?: { current: boolean }[] } }>(`${n.monitor}/jsz`);
        const meta = jsz.body.meta_cluster;
        const nc = await connect({ servers: n.url, timeout: 500 });
        try {
          const info = (await nc.request('$JS.API.INFO', undefined, { timeout: 1000 })).json<{ error?: unknown }>();
          if (!info.error && meta?.leader) break;
        } finally {
          await nc.close();
        }
      } catch { /* not yet */ }
      if (Date.now() > deadline) throw new Error(`NATS cluster did not form; ${n.name}: ${n.stderr().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  // The leader's /jsz lists the other two as replicas.
  for (;;) {
    const metas = await Promise.all(nodes.map(async (n) => (await getJson<{ meta_cluster?: { replicas?: { current: boolean }[] } }>(`${n.monitor}/jsz`)).body.meta_cluster));
    if (metas.some((m) => m?.replicas?.length === 2 && m.replicas.every((r) => r.current))) return;
    if (Date.now() > deadline) throw new Error(`JetStream meta group not current: ${JSON.stringify(metas)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A `sandbar` command with no SANDBAR_* variable of this environment: only the files configure it. */
const run = (args: string[]) => runSandbar(args, { clean: true });

async function getJson<T>(url: string): Promise<{ status: number; body: T }> {
  const r = await fetch(url);
  return { status: r.status, body: (await r.json()) as T };
}

/** Every reply to a request, until none came for 500 ms (or `count` arrived). */
async function all(nc: NatsConnection, subject: string, count?: number): Promise<Msg[]> {
  const out: Msg[] = [];
  const it = await nc.requestMany(subject, Empty, count ? { strategy: 'count', maxMessages: count, maxWait: 5000 } : { strategy: 'stall', stall: 500, maxWait: 5000 });
  for await (const m of it) out.push(m);
  return out;
}

/**
 * Starts a host from its file and waits for "host ready"; a host that exits
 * 69 first (NATS or JetStream not answering in time, as when the JetStream
 * cluster is still electing the bucket's leaders on a loaded machine) is
 * started again after 3 s, as sandbar.service does (Restart=on-failure,
 * RestartSec=3s), twice at most. Each retry is printed.
 */
async function startLikeSystemd(config: string): Promise<ConfigHostHandle> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startHostFromConfig(config, { env: ENV, readyTimeoutMs: 60000 });
    } catch (err) {
      const text = (err as Error).message;
      if (attempt >= 3 || !/exited \(code 69\)/.test(text)) throw err;
      console.log(`      ${config}: exited 69 (${/SANDBAR_ERR_\w+/.exec(text)?.[0]}); started again in 3 s, as sandbar.service would`);
      await new Promise((r) => setTimeout(r, 3000));
    }
  }
}

type Reply = { status: string; response: Record<string, unknown> };
const reply = (f: Frame) => f[4] as Reply;

// ------------------------------------------------------------------ the test

describe('deploy examples: config/examples/three-hosts runs as a 3-host cluster', function () {
  this.timeout(120000);
  let dir: string;
  let ports: Ports[];
  let nodes: ExampleNode[] = [];
  let hosts: ConfigHostHandle[] = [];
  const ncs: NatsConnection[] = [];
  const clients: RawClient[] = [];
  let phx: Socket | null = null;
  let secret: string;
  const original = (f: string) => readFileSync(join(EXAMPLES, f), 'utf8');
  const copy = (f: string) => join(dir, f);

  after(async function () {
    this.timeout(60000);
    phx?.disconnect();
    for (const c of clients) c.terminate();
    await Promise.all(ncs.map((nc) => nc.close().catch(() => {})));
    await Promise.all(hosts.map((h) => h.stop()));
    await Promise.all(nodes.map((n) => n.stop()));
  });
  // Declared after the after() above, so that the nodes' stores in it are removed once the nodes are gone.
  const tmp = withTempDir('sandbar-deploy-');

  before(async function () {
    this.timeout(90000);
    dir = tmp.path;
    ports = await Promise.all(N.map(async () => ({ client: await freePort(), cluster: await freePort(), monitor: await freePort() })));
    for (const n of N) {
      writeFileSync(copy(`nats-${n}.conf`), rewriteNats(original(`nats-${n}.conf`), ports, join(dir, `nats-${n}-store`)));
      writeFileSync(copy(`host-${n}.toml`), rewriteHost(original(`host-${n}.toml`), ports, join(dir, `host-${n}-data`)));
    }
    secret = (parseToml(original('host-1.toml')) as { auth: { secret: string } }).auth.secret;

    // NATS nodes first, then the hosts (docs/deploy.md).
    nodes = await Promise.all(N.map((n) => startNatsNode(`nats-${n}`, copy(`nats-${n}.conf`), ports[n - 1]!)));
    await jetStreamReady(nodes);
    // The three together, as a fresh cluster starts: within the discovery
    // window (2 × cluster.heartbeatMs) they see each other before placing any
    // shard, so nothing is handed over at start.
    const started = await Promise.allSettled(N.map((n) => startLikeSystemd(copy(`host-${n}.toml`))));
    for (const r of started) if (r.status === 'fulfilled') hosts.push(r.value); // after() stops them whatever happens next
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    for (const node of nodes) ncs.push(await connect({ servers: node.url }));
  });


  it('the example directory holds exactly the six configs and a README', () => {
    expect(readdirSync(EXAMPLES).sort()).to.deep.equal(['README.md', 'host-1.toml', 'host-2.toml', 'host-3.toml', 'nats-1.conf', 'nats-2.conf', 'nats-3.conf']);
  });

  it('every example passes its tool as shipped: sandbar check-config (exit 0) and nats-server -t', async () => {
    for (const n of N) {
      const r = await run(['check-config', '--config', join(EXAMPLES, `host-${n}.toml`)]);
      expect(r.code, `host-${n}.toml: ${r.stderr}`).to.equal(0);
      const c = JSON.parse(r.stdout) as { hostId: string; dataDir: string; cluster: { name: string }; http: { port: number }; nats: { servers: string[]; embedded: boolean }; replication: { replicas: number }; shards: number };
      expect(c.hostId).to.equal(`host-${n}`);
      expect(c.dataDir).to.equal('/var/lib/sandbar');
      expect(c.http.port).to.equal(4000);
      expect(c.nats.embedded).to.equal(false);
      expect(c.replication.replicas).to.equal(1);
      // All three nodes, this host's own first.
      expect(c.nats.servers[0]).to.equal(`nats://nats-${n}:4222`);
      expect([...c.nats.servers].sort()).to.deep.equal(['nats://nats-1:4222', 'nats://nats-2:4222', 'nats://nats-3:4222']);
      const t = spawnSync('nats-server', ['-t', '-c', join(EXAMPLES, `nats-${n}.conf`)], { encoding: 'utf8', timeout: 15000 });
      expect(t.status, `nats-${n}.conf: ${t.stdout}${t.stderr}`).to.equal(0);
    }
    // What every host must share.
    const shared = N.map((n) => { const c = parseToml(original(`host-${n}.toml`)) as Record<string, Record<string, unknown>>; return JSON.stringify([c.cluster, c.auth, c.replication, c.shards ?? null]); });
    expect(new Set(shared).size, 'cluster, auth, replication and shards are the same on every host').to.equal(1);
    expect(secret).to.match(/CHANGE-ME/);
  });

  it('the copies under test differ from the examples only in addresses, ports and paths', () => {
    for (const n of N) {
      for (const [file, keys, count] of [
        [`nats-${n}.conf`, /^\s*(listen|http|store_dir):|^\s*nats-route:\/\//, 6],
        [`host-${n}.toml`, /^(dataDir|host|port|servers) = /, 4],
      ] as const) {
        const changed = changedLines(original(file), readFileSync(copy(file), 'utf8'));
        expect(changed, file).to.have.length(count);
        for (const [a, b] of changed) {
          expect(a, `${file}: only these keys change`).to.match(keys);
          expect(mask(b), `${file}: "${a}" → "${b}"`).to.equal(mask(a));
        }
        // No production address or path is left in the copy.
        for (const line of readFileSync(copy(file), 'utf8').split('\n').filter((l) => !isComment(l))) {
          expect(line, file).to.not.match(/nats-[123]:|0\.0\.0\.0|:4222|:6222|:8222|\/var\/lib|= 4000$/);
        }
      }
    }
  });

  it('the NATS nodes form one cluster with JetStream (the checks of docs/deploy.md)', async () => {
    for (const node of nodes) {
      expect((await getJson<{ status: string }>(`${node.monitor}/healthz`)).body.status, node.name).to.equal('ok');
      const routez = await getJson<{ num_routes: number; routes: { remote_id: string }[] }>(`${node.monitor}/routez`);
      expect(routez.body.num_routes, `${node.name} routes`).to.equal(2);
      const jsz = await getJson<{ meta_cluster: { name: string; cluster_size: number; leader: string } }>(`${node.monitor}/jsz`);
      expect(jsz.body.meta_cluster.name).to.equal('sandbar-nats');
      expect(jsz.body.meta_cluster.cluster_size).to.equal(3);
      expect(jsz.body.meta_cluster.leader).to.match(/^nats-[123]$/);
    }
    // Shard ownership is replicated on the three NATS nodes.
    const kv = (await ncs[0]!.request('$JS.API.STREAM.INFO.KV_sandbar_prod_shards', Empty, { timeout: 3000 })).json<{ config: { num_replicas: number } }>();
    expect(kv.config.num_replicas).to.equal(3);
  });

  it('every host is ready: "host ready", GET /health/ready 200, and each sees all three hosts', async () => {
    for (const [i, h] of hosts.entries()) {
      const ready = await h.waitFor((l) => l.msg === 'host ready');
      expect(ready.hostId).to.equal(`host-${i + 1}`);
      expect(h.port).to.be.above(0);
      const r = await getJson<{ status: string }>(`http://127.0.0.1:${h.port}/health/ready`);
      expect(r.status).to.equal(200);
      expect(r.body.status).to.equal('ready');
      // The others joined, in this host's view.
      for (const other of N.filter((n) => n !== i + 1)) {
        await h.waitFor((l) => l.msg === 'host joined the cluster' && l.host === `host-${other}`, 15000);
      }
    }
  });

  it('clients connect to every host; dms between users on different hosts arrive (raw and phoenix clients)', async () => {
    const url = (i: number) => `ws://127.0.0.1:${hosts[i]!.port}`;
    const users = ['alice', 'bob', 'carol'];
    // alice on host-1, bob on host-2 (raw frames); carol on host-3 with the official phoenix client.
    for (const i of [0, 1]) {
      const c = await RawClient.open(url(i), mintToken(secret, users[i]!, 600));
      clients.push(c);
      expect(reply(await c.join(`user:${users[i]}`, { device: `dev-${i}` }, 'u', 15000)).status).to.equal('ok');
      const echo = await c.join('echo:where', {}, 'e');
      expect(String(reply(echo).response.session).split('.')[0], 'the session lives on the host it connected to').to.equal(`host-${i + 1}`);
    }
    await clients[0]!.join('room:lobby', {}, 'r');
    phx = new Socket(`${url(2)}/socket`, { transport: WebSocket as any, params: { token: mintToken(secret, 'carol', 600) }, reconnectAfterMs: () => 60000 });
    phx.connect();
    const carolDms: { from: string; body: unknown; seq: number }[] = [];
    const ch = phx.channel('user:carol', { device: 'phoenix' });
    ch.on('dm', (m: { from: string; body: unknown; seq: number }) => carolDms.push(m));
    await new Promise((resolve, reject) => { ch.join(15000).receive('ok', resolve).receive('error', reject).receive('timeout', () => reject(new Error('phoenix join timed out'))); });
    const where = phx.channel('echo:where', {});
    const wr = await new Promise<{ session: string }>((resolve, reject) => { where.join(15000).receive('ok', resolve).receive('error', reject); });
    expect(wr.session.split('.')[0]).to.equal('host-3');

    // A ring of dms: host-1 → host-2, host-2 → host-3, host-3 → host-1.
    const [alice, bob] = clients as [RawClient, RawClient];
    expect(reply(await alice.request('u', 'user:alice', 'dm', { to: 'bob', id: 'a1', body: 'hi bob' }, 15000)).status).to.equal('ok');
    expect(reply(await bob.request('u', 'user:bob', 'dm', { to: 'carol', id: 'b1', body: 'hi carol' }, 15000)).status).to.equal('ok');
    const carolSent = await new Promise<{ seq: number }>((resolve, reject) => {
      ch.push('dm', { to: 'alice', id: 'c1', body: 'hi alice' }, 15000).receive('ok', resolve).receive('error', (e: unknown) => reject(new Error(JSON.stringify(e))));
    });
    expect(carolSent.seq).to.equal(1);
    const atBob = await bob.waitFor((f) => f[3] === 'dm', 10000);
    expect(atBob[4]).to.include({ from: 'alice', body: 'hi bob', seq: 1 });
    const atAlice = await alice.waitFor((f) => f[3] === 'dm', 10000);
    expect(atAlice[4]).to.include({ from: 'carol', body: 'hi alice', seq: 1 });
    const deadline = Date.now() + 10000;
    while (carolDms.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(carolDms).to.have.length(1);
    expect(carolDms[0]).to.include({ from: 'bob', body: 'hi carol', seq: 1 });
  });

  it('every host answers the admin requests of docs/operations.md; $SRV.PING and $SRV.STATS.sandbar answer once per host', async () => {
    const s = (e: string) => `sandbar.prod.admin.${e}`;
    // One reply per host to discovery, with the hostId in its metadata.
    const ping = await all(ncs[0]!, '$SRV.PING.sandbar');
    expect(ping.map((m) => m.json<{ metadata: { hostId: string } }>().metadata.hostId).sort()).to.deep.equal(['host-1', 'host-2', 'host-3']);
    const idOf = new Map(ping.map((m) => { const b = m.json<{ id: string; metadata: { hostId: string } }>(); return [b.id, b.metadata.hostId] as const; }));

    // The endpoints share a queue group: one host answers each request. Ask
    // through every NATS node until each host has answered each endpoint; the
    // answering host is in the reply (status, sessions) or in its STATS.
    const answered = async (endpoint: string, subject: string, check: (m: Msg) => void): Promise<void> => {
      const deadline = Date.now() + 30000;
      for (let i = 0; ; i++) {
        const m = await ncs[i % 3]!.request(subject, Empty, { timeout: 5000 });
        expect(m.headers?.get('Nats-Service-Error') ?? '', `${subject}: ${m.string()}`).to.equal('');
        check(m);
        const stats = await all(ncs[0]!, '$SRV.STATS.sandbar', 3);
        const by = new Map(stats.map((r) => {
          const b = r.json<{ id: string; endpoints: { name: string; num_requests: number; num_errors: number }[] }>();
          const ep = b.endpoints.find((e) => e.name === endpoint)!;
          expect(ep.num_errors, `${endpoint} errors on ${idOf.get(b.id)}`).to.equal(0);
          return [idOf.get(b.id), ep.num_requests] as const;
        }));
        if (stats.length === 3 && [...by.values()].every((n) => n > 0)) return;
        if (Date.now() > deadline) throw new Error(`${endpoint}: not every host answered in ${i + 1} requests: ${JSON.stringify([...by])}`);
      }
    };

    const statusFrom = new Set<string>();
    await answered('status', s('status'), (m) => {
      const st = m.json<{ cluster: string; host: string; shards: number; replicas: number; hosts: { hostId: string }[]; workers: { serving: boolean }[] }>();
      statusFrom.add(st.host);
      expect(st).to.include({ cluster: 'prod', shards: 1024, replicas: 1 });
      expect(st.hosts.map((h) => h.hostId).sort()).to.deep.equal(['host-1', 'host-2', 'host-3']);
      expect(st.workers).to.have.length(1);
      expect(st.workers.every((w) => w.serving)).to.equal(true);
    });
    expect([...statusFrom].sort()).to.deep.equal(['host-1', 'host-2', 'host-3']);

    await answered('shards', s('shards'), (m) => {
      const sh = m.json<{ shards: number; records: { shard: number; epoch: number; master: string; replicas: string[] }[] }>();
      expect(sh.shards).to.equal(1024);
      expect(sh.records).to.have.length(1024);
      const mastersOn = new Set<string>();
      for (const r of sh.records) {
        expect(r.epoch, `shard ${r.shard}`).to.be.at.least(1);
        expect(r.replicas, `shard ${r.shard}`).to.have.length(1);
        expect(r.replicas[0]!.split('.')[0], `shard ${r.shard}: replica on another host`).to.not.equal(r.master.split('.')[0]);
        mastersOn.add(r.master.split('.')[0]!);
      }
      expect([...mastersOn].sort()).to.deep.equal(['host-1', 'host-2', 'host-3']);
    });

    const sessionsFrom = new Set<string>();
    await answered('sessions', s('sessions'), (m) => {
      const ss = m.json<{ host: string; workers: { sessions: number }[]; hosts: { hostId: string; sessions: number }[] }>();
      sessionsFrom.add(ss.host);
      expect(ss.hosts.map((h) => h.hostId).sort()).to.deep.equal(['host-1', 'host-2', 'host-3']);
    });
    expect([...sessionsFrom].sort()).to.deep.equal(['host-1', 'host-2', 'host-3']);

    await answered('user', s('user.alice'), (m) => {
      const u = m.json<{ id: string; exists: boolean; online: boolean; seq: number; master: string; record: { master: string }; presence: { alice: { metas: { device: string; phx_ref: string }[] } } }>();
      expect(u).to.include({ id: 'alice', exists: true, online: true, seq: 1 });
      expect(u.master).to.equal(u.record.master);
      expect(u.presence.alice.metas.map((x) => x.device)).to.deep.equal(['dev-0']);
      expect(u.presence.alice.metas[0]!.phx_ref.split('.')[0]).to.equal('host-1');
    });

    await answered('room', s('room.lobby'), (m) => {
      const r = m.json<{ id: string; exists: boolean; members: number }>();
      expect(r).to.include({ id: 'lobby', exists: true, members: 1 });
    });

    // $SRV.STATS.sandbar: one reply per host, each listing the endpoints it answered.
    const stats = await all(ncs[1]!, '$SRV.STATS.sandbar');
    expect(stats.map((m) => m.json<{ metadata: { hostId: string } }>().metadata.hostId).sort()).to.deep.equal(['host-1', 'host-2', 'host-3']);
  });

  it('sandbar status, run with a host\'s own config file, prints the cluster', async () => {
    for (const n of N) {
      const r = await run(['status', '--json', '--config', copy(`host-${n}.toml`)]);
      expect(r.code, r.stderr).to.equal(0);
      const st = JSON.parse(r.stdout) as { cluster: string; hosts: { hostId: string }[] };
      expect(st.cluster).to.equal('prod');
      expect(st.hosts.map((h) => h.hostId).sort()).to.deep.equal(['host-1', 'host-2', 'host-3']);
    }
  });

  it('a copy of host-1.toml with one key misspelt fails check-config with exit 78 and a line naming the key', async () => {
    const text = original('host-1.toml');
    expect(text).to.match(/^replicas = 1$/m);
    const bad = join(dir, 'host-1-typo.toml');
    writeFileSync(bad, text.replace(/^replicas = 1$/m, 'replcas = 1'));
    const r = await run(['check-config', '--config', bad]);
    expect(r.code).to.equal(78);
    const lines = r.stderr.trim().split('\n');
    expect(lines, r.stderr).to.have.length(1);
    expect(lines[0]).to.match(/replication\.replcas = 1 .*unknown key; did you mean replication\.replicas\?/);
    expect(lines[0]).to.include(bad);
  });

  it('rolling restart of host-2: SIGTERM moves its shards to the others before its sessions close (1012); restarted from the same file it is ready again and gets shards back by planned handoff', async () => {
    const bob = clients[1]!;
    const masters = async () => {
      const sh = (await ncs[0]!.request('sandbar.prod.admin.shards', Empty, { timeout: 5000 })).json<{ records: { master: string | null }[] }>();
      return sh.records.filter((r) => r.master?.startsWith('host-2.')).length;
    };
    const had = await masters();
    expect(had, 'host-2 masters shards before the restart').to.be.above(0);
    const old = hosts[1]!;
    const others = [hosts[0]!, hosts[2]!];
    const from = others.map((h) => h.lines.length);
    const tookOver = () => others.flatMap((h, i) => h.lines.slice(from[i]).filter((l) => l.msg === 'serving shard as master'));
    old.proc.kill('SIGTERM');
    expect(await bob.closed).to.equal(1012);
    expect((await old.exit).code).to.equal(0);
    const handedOff = old.lines.find((l) => l.msg === 'shards handed off');
    const closing = old.lines.find((l) => l.msg === 'worker stopping: closing sessions with 1012');
    expect(handedOff, 'the worker waited for the handoff before closing sessions').to.not.equal(undefined);
    expect(closing).to.not.equal(undefined);
    expect(old.lines.indexOf(handedOff!), old.lines.map((l) => `${l.time} ${l.worker} ${l.msg}`).join('\n')).to.be.below(old.lines.indexOf(closing!));
    // Every shard host-2 mastered is served by host-1 or host-3 (promoted or
    // handed over), each logged before host-2 began closing its sessions
    // (same machine, same clock).
    const deadline0 = Date.now() + 10000;
    while (tookOver().length < had && Date.now() < deadline0) await new Promise((res) => setTimeout(res, 50));
    const took = tookOver();
    expect(took, 'shards taken over by host-1 and host-3').to.have.length(had);
    const closedAt = Date.parse(String(closing!.time));
    // A shard promoted elsewhere is taken over when the new master's claim is
    // in the ownership bucket: host-2 sees it (and stops serving the shard,
    // logged) the moment the claimer does, while the claimer, busy promoting
    // hundreds of shards, may log "serving" a few ms later. Such a shard
    // counts as taken over before the close when host-2 logged that it saw
    // the claim before it began closing its sessions.
    const closeIdx = old.lines.indexOf(closing!);
    const seenClaimed = new Set(old.lines.slice(0, closeIdx).filter((l) => l.msg === 'a higher epoch names another master: this worker stops serving the shard').map((l) => l.shard));
    const late = took.filter((l) => Date.parse(String(l.time)) > closedAt && !seenClaimed.has(l.shard));
    expect(late.map((l) => `shard ${l.shard} at ${l.time}`), `served elsewhere only after host-2 closed its sessions at ${closing!.time}`).to.deep.equal([]);
    const deadline1 = Date.now() + 5000;
    while ((await masters()) !== 0 && Date.now() < deadline1) await new Promise((res) => setTimeout(res, 100));
    expect(await masters(), 'the ownership bucket names no master on host-2').to.equal(0);
    // The others serve host-2's users meanwhile, inboxes included.
    const away = await RawClient.open(`ws://127.0.0.1:${hosts[0]!.port}`, mintToken(secret, 'bob', 600));
    clients.push(away);
    expect(reply(await away.join('user:bob', {}, 'u', 15000)).status).to.equal('ok');
    await away.waitFor((f) => f[3] === 'dm' && (f[4] as { id: string }).id === 'a1', 10000);
    away.close();
    // How the others took host-2's shards: promoted from their replica, or handed over.
    const how = Object.entries(took.map((l) => String(l.why).replace(/ .*/, '')).reduce<Record<string, number>>((a, w) => ({ ...a, [w]: (a[w] ?? 0) + 1 }), {})).map(([w, c]) => `${c} by ${w}`).join(', ');

    // Start it again from the same file; the next host would be restarted only after this.
    const t0 = Date.now();
    const back = await startLikeSystemd(copy('host-2.toml'));
    hosts[1] = back;
    const readyAt = Date.now();
    const startMs = readyAt - t0;
    const r = await getJson<{ status: string }>(`http://127.0.0.1:${back.port}/health/ready`);
    expect(r.status).to.equal(200);
    // Rendezvous placement over the three hosts (one worker each) says which shards are host-2's.
    const view = N.map((n) => ({ hostId: `host-${n}`, workers: 1 }));
    const expected = shardsOf('host-2', 0, 1024, view).length;
    const deadline = Date.now() + 20000;
    let now = 0;
    while ((now = await masters()) !== expected) {
      if (Date.now() > deadline) throw new Error(`host-2 masters ${now} shards, placement gives it ${expected}`);
      await new Promise((res) => setTimeout(res, 200));
    }
    const settledMs = Date.now() - readyAt;
    const served = back.lines.filter((l) => l.msg === 'serving shard as master').map((l) => String(l.why));
    expect(served).to.have.length(expected);
    expect(served.filter((w) => !w.startsWith('handoff from ')), 'every shard came back by planned handoff').to.deep.equal([]);
    for (const h of hosts) {
      const empty = h.lines.filter((l) => l.msg === 'shard starts empty: its master is gone and no live replica held its state');
      expect(empty.map((l) => `${l.time} shard ${l.shard} (was ${l.deadMaster})`), `${h.config}: ${h.lines.filter((l) => (l.level ?? 0) >= 40).slice(0, 5).map((l) => JSON.stringify(l)).join('\n')}`).to.deep.equal([]);
    }
    // Bob's inbox survived the restart, on host-2 again.
    const again = await RawClient.open(`ws://127.0.0.1:${back.port}`, mintToken(secret, 'bob', 600));
    clients.push(again);
    expect(reply(await again.join('user:bob', {}, 'u', 15000)).status).to.equal('ok');
    const dm = await again.waitFor((f) => f[3] === 'dm', 10000);
    expect(dm[4]).to.include({ from: 'alice', id: 'a1', seq: 1 });
    console.log(`      host-2 stopped in ${Date.parse(String(old.lines.at(-1)?.time)) - Date.parse(String(old.lines.find((l) => l.msg === 'host stopping')?.time))} ms (handoff ${handedOff!.ms} ms; the others took its shards: ${how}); `
      + `started again, ready in ${startMs} ms with ${expected} of 1024 shards, all by handoff (KV settled ${settledMs} ms after ready; e.g. "${served[0]}")`);
  });

  it('adding host-4 (a copy of host-1.toml with a new hostId): only the shards that now hash to it move, all by planned handoff; a graceful stop gives them back', async () => {
    const text = original('host-1.toml');
    expect(text).to.match(/^hostId = "host-1"$/m);
    const file = join(dir, 'host-4.toml');
    writeFileSync(file, rewriteHost(text.replace(/^hostId = "host-1"$/m, 'hostId = "host-4"'), ports, join(dir, 'host-4-data')));
    const records = async () => (await ncs[0]!.request('sandbar.prod.admin.shards', Empty, { timeout: 5000 })).json<{ records: { shard: number; master: string; epoch: number }[] }>().records;
    const before = await records();
    const three = N.map((n) => ({ hostId: `host-${n}`, workers: 1 }));
    const four = [...three, { hostId: 'host-4', workers: 1 }];
    const mine = new Set(shardsOf('host-4', 0, 1024, four));
    const t0 = Date.now();
    const h4 = await startLikeSystemd(file);
    hosts.push(h4);
    const readyMs = Date.now() - t0;
    expect((await getJson<{ status: string }>(`http://127.0.0.1:${h4.port}/health/ready`)).status).to.equal(200);
    let after = await records();
    const deadline = Date.now() + 20000;
    while (after.filter((r) => r.master === 'host-4.0').length !== mine.size) {
      if (Date.now() > deadline) throw new Error(`host-4 masters ${after.filter((r) => r.master === 'host-4.0').length} shards, placement gives it ${mine.size}`);
      await new Promise((res) => setTimeout(res, 200));
      after = await records();
    }
    for (const r of after) {
      const was = before[r.shard]!;
      if (mine.has(r.shard)) {
        expect(r.master, `shard ${r.shard}`).to.equal('host-4.0');
        expect(r.epoch, `shard ${r.shard}: one claim, by handoff`).to.equal(was.epoch + 1);
      } else {
        expect(r.master, `shard ${r.shard} stays where it was`).to.equal(was.master);
      }
    }
    const served = h4.lines.filter((l) => l.msg === 'serving shard as master').map((l) => String(l.why));
    expect(served).to.have.length(mine.size);
    expect(served.filter((w) => !w.startsWith('handoff from ')), 'every shard came to host-4 by planned handoff').to.deep.equal([]);
    const st = (await ncs[0]!.request('sandbar.prod.admin.status', Empty, { timeout: 3000 })).json<{ hosts: { hostId: string }[] }>();
    expect(st.hosts.map((h) => h.hostId).sort()).to.deep.equal(['host-1', 'host-2', 'host-3', 'host-4']);

    // Removing it: a graceful stop hands its shards back to the placement over three hosts.
    const t1 = Date.now();
    const from = hosts.slice(0, 3).map((h) => h.lines.length);
    h4.proc.kill('SIGTERM');
    expect((await h4.exit).code).to.equal(0);
    const stopMs = Date.now() - t1;
    const back = new Set(N.flatMap((n) => shardsOf(`host-${n}`, 0, 1024, three).map((s) => `${s}:host-${n}.0`)));
    const deadline2 = Date.now() + 20000;
    for (;;) {
      const now = await records();
      if (now.every((r) => back.has(`${r.shard}:${r.master}`))) break;
      if (Date.now() > deadline2) throw new Error('shards did not return to the three hosts');
      await new Promise((res) => setTimeout(res, 200));
    }
    const took = hosts.slice(0, 3).flatMap((h, i) => h.lines.slice(from[i]).filter((l) => l.msg === 'serving shard as master').map((l) => String(l.why).replace(/ .*/, '')));
    const how = Object.entries(took.reduce<Record<string, number>>((a, w) => ({ ...a, [w]: (a[w] ?? 0) + 1 }), {})).map(([w, c]) => `${c} by ${w}`).join(', ');
    const handedOff = h4.lines.find((l) => l.msg === 'shards handed off');
    console.log(`      host-4 ready in ${readyMs} ms with ${mine.size} of 1024 shards (all by handoff); stopped in ${stopMs} ms (handoff ${handedOff?.ms} ms; the others took its shards: ${how})`);
  });
});
