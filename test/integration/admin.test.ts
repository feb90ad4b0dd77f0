/**
 * The operator surface of a live host, asked exactly as the `nats` CLI asks:
 * `nats micro ls|info|stats` ($SRV.PING/INFO/STATS, validated against the
 * CLI's JSON schemas) and `nats req sandbar.<c>.admin.<endpoint> ''`.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { Ajv, type ValidateFunction } from 'ajv';
import ajvFormats from 'ajv-formats';
import { Empty, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { RawClient, runSandbar, token, withHosts } from '../support/index.js';

const SCHEMA_DIR = new URL('../fixtures/nats-micro-v1/', import.meta.url);

function schemas(): Record<'ping' | 'info' | 'stats', ValidateFunction> {
  const ajv = new Ajv({ allErrors: true, strict: true });
  ajvFormats.default(ajv);
  const load = (f: string) => ajv.compile(JSON.parse(readFileSync(new URL(f, SCHEMA_DIR), 'utf8')) as object);
  return { ping: load('ping_response.json'), info: load('info_response.json'), stats: load('stats_response.json') };
}

async function all(nc: NatsConnection, subject: string): Promise<Msg[]> {
  const out: Msg[] = [];
  const it = await nc.requestMany(subject, Empty, { strategy: 'stall', stall: 300, maxWait: 3000 });
  for await (const m of it) out.push(m);
  return out;
}

describe('admin: NATS micro service and admin endpoints of live hosts', function () {
  this.timeout(60000);
  const { nats, hosts } = withHosts(['h1', 'h2'], { workers: 1, flags: { shards: 32 } });
  let nc: NatsConnection;
  const v = schemas();
  before(async () => { nc = await nats.connect(); });

  it('$SRV.PING, $SRV.INFO.sandbar and $SRV.STATS.sandbar answer once per host and validate against the CLI schemas', async () => {
    for (const [subject, schema] of [['$SRV.PING', v.ping], ['$SRV.INFO.sandbar', v.info], ['$SRV.STATS.sandbar', v.stats]] as const) {
      const replies = await all(nc, subject);
      expect(replies, subject).to.have.length(2);
      for (const r of replies) {
        const body = r.json<{ name: string; metadata: { hostId: string } }>();
        expect(schema(body), `${subject}: ${JSON.stringify(schema.errors)}`).to.equal(true);
        expect(body.name).to.equal('sandbar');
      }
      expect(replies.map((r) => r.json<{ metadata: { hostId: string } }>().metadata.hostId).sort()).to.deep.equal(['h1', 'h2']);
    }
    const info = (await nc.request('$SRV.INFO.sandbar', Empty)).json<{ id: string; endpoints: { subject: string }[] }>();
    expect(info.endpoints.map((e) => e.subject)).to.include.members(['sandbar.local.admin.status', 'sandbar.local.admin.user.*', 'sandbar.local.admin.kick.>']);
    const one = await all(nc, `$SRV.STATS.sandbar.${info.id}`);
    expect(one).to.have.length(1);
  });

  it('admin.status lists both hosts; admin.shards the table with epochs', async () => {
    const st = (await nc.request('sandbar.local.admin.status', Empty, { timeout: 3000 })).json<{ hosts: { hostId: string }[]; workers: { serving: boolean }[] }>();
    expect(st.hosts.map((h) => h.hostId).sort()).to.deep.equal(['h1', 'h2']);
    expect(st.workers.every((w) => w.serving)).to.equal(true);
    const sh = (await nc.request('sandbar.local.admin.shards', Empty, { timeout: 5000 })).json<{ records: { shard: number; epoch: number; master: string; replicas: string[] }[] }>();
    expect(sh.records).to.have.length(32);
    for (const r of sh.records) {
      expect(r.epoch).to.be.at.least(1);
      expect(r.replicas[0]!.split('.')[0]).to.not.equal(r.master.split('.')[0]);
    }
  });

  it('admin.user.<id> shows where the user lives, its devices, inbox size; admin.room.<id> the room; kick closes a session with 4001', async () => {
    const alice = await RawClient.open(hosts[0]!.url, token('alice'));
    await alice.join('user:alice', { device: 'phone' }, 'u');
    await alice.join('room:lobby', {}, 'r');
    const bob = await RawClient.open(hosts[1]!.url, token('bob'));
    await bob.join('user:bob', {}, 'u');
    await bob.request('u', 'user:bob', 'dm', { to: 'alice', id: 'x1', body: 'hi' });
    const u = (await nc.request('sandbar.local.admin.user.alice', Empty, { timeout: 3000 })).json<{ exists: boolean; inbox: number; seq: number; online: boolean; master: string; record: { master: string; replicas: string[] }; presence: { alice: { metas: { device: string; phx_ref: string }[] } } }>();
    expect(u).to.include({ exists: true, inbox: 1, seq: 1, online: true });
    expect(u.master).to.equal(u.record.master);
    expect(u.presence.alice.metas[0]!.device).to.equal('phone');
    const room = (await nc.request('sandbar.local.admin.room.lobby', Empty, { timeout: 3000 })).json<{ members: number }>();
    expect(room.members).to.equal(1);
    const sessions = (await nc.request('sandbar.local.admin.sessions', Empty, { timeout: 3000 })).json<{ hosts: { sessions: number }[] }>();
    expect(sessions.hosts).to.have.length(2);

    const sid = u.presence.alice.metas[0]!.phx_ref;
    const kicked = await nc.request(`sandbar.local.admin.kick.${sid}`, Empty, { timeout: 3000 });
    expect(kicked.json<{ kicked: string }>().kicked).to.equal(sid);
    expect(await alice.closed).to.equal(4001);
    bob.close();
  });

  async function sandbarStatus(...args: string[]): Promise<string> {
    const { code, stdout: out } = await runSandbar(['status', `--nats.servers=${nats.url}`, ...args]);
    expect(code).to.equal(0);
    return out;
  }

  it('sandbar status --json prints the same status over NATS', async () => {
    const out = await sandbarStatus('--json');
    expect(JSON.parse(out).hosts.map((h: { hostId: string }) => h.hostId).sort()).to.deep.equal(['h1', 'h2']);
  });

  it('sandbar status prints tables: every host and its state, then the answering host\'s workers', async () => {
    const out = await sandbarStatus();
    const lines = out.split('\n');
    expect(lines[0]).to.match(/^cluster local: 2 host\(s\), \d+ shards, \d+ replica\(s\) each; answered by h[12] \(sandbar \d+\.\d+\.\d+\)$/);
    expect(out).to.match(/^HOST +STATE +WORKERS +SESSIONS +VERSION +LAST HEARD$/m);
    for (const h of ['h1', 'h2']) expect(out).to.match(new RegExp(`^${h} +alive +[0-9,]+ +\\d+ +\\d+\\.\\d+\\.\\d+ +[0-9.]+ s ago$`, 'm'));
    expect(out).to.match(/^WORKER +PID +STATE +SESSIONS +MASTER +REPLICA +HEAP +RSS$/m);
    expect(out).to.match(/^ +0 +\d+ +serving +\d+ +\d+ +\d+ +\d+ MB +\d+ MB$/m);
  });

  it('bad operator input gets a clear error reply: empty or invalid id, unknown session, bad log level', async () => {
    for (const [subject, code] of [
      ['sandbar.local.admin.user', 'SANDBAR_ERR_BAD_PAYLOAD'],
      ['sandbar.local.admin.user.bad!id', 'SANDBAR_ERR_INVALID_ID'],
      ['sandbar.local.admin.kick.h1.0.abc.zz', 'SANDBAR_ERR_NOT_FOUND'],
      ['sandbar.local.admin.kick.nonsense', 'SANDBAR_ERR_BAD_PAYLOAD'],
      ['sandbar.local.admin.loglevel.loud', 'SANDBAR_ERR_BAD_PAYLOAD'],
    ] as const) {
      const r = await nc.request(subject, Empty, { timeout: 3000 });
      expect(r.headers?.get('Nats-Service-Error-Code'), subject).to.match(/^4\d\d$/);
      expect(r.json<{ error: { code: string; message: string } }>().error.code, subject).to.equal(code);
    }
    const ok = await nc.request('sandbar.local.admin.loglevel.debug', Empty, { timeout: 3000 });
    expect(ok.json<{ level: string }>().level).to.equal('debug');
  });
});
