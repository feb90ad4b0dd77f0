/**
 * Events out (docs/api.md): the JetStream stream sandbar_<c>_events seen by a
 * consumer across a host kill -9 under load, webhooks after a receiver was
 * down, and per-sender dedup for a recipient that many senders write to.
 */
import { expect } from 'chai';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { dmLoad, freePort, withHosts } from '../support/index.js';
import { verify } from '../../src/events/sign.js';

const KEY = 'events-test-key-0123456789';
const WH_SECRET = 'webhook-secret-0123456789';

interface Ev { v: number; id: string; type: string; at: number; data: Record<string, any> }

async function post(port: number, op: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://127.0.0.1:${port}/api/${op}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` }, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

/** Every event in the stream, in stream order, with the number of stream entries per id. */
async function readStream(nc: NatsConnection): Promise<Ev[]> {
  const js = jetstream(nc);
  const c = await js.consumers.get('sandbar_local_events');
  const out: Ev[] = [];
  for (;;) {
    const batch = await c.fetch({ max_messages: 1000, expires: 1500 });
    let n = 0;
    for await (const m of batch) { n++; out.push(m.json<Ev>()); }
    if (n === 0) return out;
  }
}

describe('events out: the stream, webhooks, per-sender dedup', function () {
  this.timeout(120000);
  let ports: number[] = [];
  let nc: NatsConnection;
  let hookPort = 0;
  const received: { body: string; sig: string | undefined; at: number }[] = [];
  let receiver: Server | null = null;
  after(() => { receiver?.close(); });

  // The webhook receiver's port is known before the hosts start; the receiver itself comes and goes in the tests.
  before(async () => { hookPort = await freePort(); });
  const { nats, hosts } = withHosts(['h1', 'h2'], () => ({
    workers: 1,
    flags: {
      shards: 32,
      'api.port': 0,
      'api.keys': `t:*:${KEY}`,
      'events.enabled': true,
      'events.partitions': 4,
      'webhooks.urls': `http://127.0.0.1:${hookPort}/hook`,
      'webhooks.secret': WH_SECRET,
      'webhooks.backoffMs': 100,
      'webhooks.maxBackoffMs': 1000,
      'webhooks.maxAttempts': 1000,
      'webhooks.timeoutMs': 1000,
      'user.dedupWindow': 5,
    },
  }));
  before(async () => {
    ports = await Promise.all(hosts.map(async (h) => (await h.waitFor((l) => l.msg === 'api listening')).port as number));
    nc = await nats.connect();
  });

  it('a webhook receiver that is down for 10 s gets every event afterwards, signed, in order per room', async () => {
    const rooms = ['w0', 'w1', 'w2', 'w3'];
    for (let i = 0; i < 40; i++) {
      const r = await post(ports[i % 2]!, 'publish', { room: rooms[i % 4], id: `wh-${i}`, body: i });
      expect(r.status).to.equal(200);
    }
    await new Promise((r) => setTimeout(r, 10000));
    expect(received).to.have.length(0);
    receiver = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (d: Buffer) => { body += d.toString(); });
      req.on('end', () => {
        received.push({ body, sig: req.headers['sandbar-signature'] as string | undefined, at: Date.now() });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => receiver!.listen(hookPort, '127.0.0.1', r));
    const mine = () => received.map((r) => JSON.parse(r.body) as Ev).filter((e) => e.type === 'room.message' && rooms.includes(e.data.room));
    const deadline = Date.now() + 30000;
    while (new Set(mine().map((e) => e.id)).size < 40 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(new Set(mine().map((e) => e.id)).size).to.equal(40);
    for (const r of received) expect(verify(WH_SECRET, r.body, r.sig, Date.now()), r.body).to.equal(true);
    expect(verify(WH_SECRET, received[0]!.body + ' ', received[0]!.sig, Date.now())).to.equal(false);
    for (const room of rooms) {
      const seqs: number[] = [];
      for (const e of mine()) if (e.data.room === room && !seqs.includes(e.data.seq)) seqs.push(e.data.seq);
      expect(seqs, room).to.deep.equal(Array.from({ length: 10 }, (_, i) => i + 1));
    }
    const e = mine()[0]!;
    expect(e).to.include({ v: 1, type: 'room.message' });
    expect(e.data).to.include.keys('room', 'seq', 'from', 'id', 'body', 'at');
  });

  it('a recipient that many senders write to at once recognises each sender\'s resend after more than user.dedupWindow messages from others', async () => {
    const senders = Array.from({ length: 20 }, (_, i) => `sender${i}`);
    const first = new Map<string, number>();
    await Promise.all(senders.map(async (from, i) => {
      // Each sender stays within its own window (5); together they send 20 times that.
      for (let n = 0; n < 5; n++) {
        const r = await post(ports[i % 2]!, 'dm', { to: 'helpdesk', from, id: `m${n}`, body: n });
        expect(r.status).to.equal(200);
        if (n === 0) first.set(from, r.body.seq);
      }
    }));
    // 100 messages from 20 senders; the old window (5 ids shared by all) forgot every m0 long ago.
    for (const from of senders) {
      const again = await post(ports[0]!, 'dm', { to: 'helpdesk', from, id: 'm0', body: 0 });
      expect(again.body, from).to.deep.include({ seq: first.get(from), duplicate: true });
    }
    const inbox = await post(ports[1]!, 'history', { user: 'helpdesk', limit: 1000 });
    expect(inbox.body.messages).to.have.length(100);
    // Past its own window a sender's oldest id is forgotten (the stated bound): m0 is stored anew after 5 more.
    for (let n = 5; n < 10; n++) await post(ports[0]!, 'dm', { to: 'helpdesk', from: 'sender0', id: `m${n}`, body: n });
    const late = await post(ports[0]!, 'dm', { to: 'helpdesk', from: 'sender0', id: 'm0', body: 0 });
    expect(late.body.duplicate).to.equal(undefined);
  });

  it('a consumer of the events stream sees every stored dm exactly once by id across a host kill -9 under load', async () => {
    const users = Array.from({ length: 8 }, (_, i) => `ev${i}`);
    const load = dmLoad(users, (i) => hosts[i % 2]!.url);
    await new Promise((r) => setTimeout(r, 2500));
    hosts[0]!.killHost();
    await hosts[0]!.exit;
    await new Promise((r) => setTimeout(r, 5000));
    await load.stop();
    expect(load.acks.length).to.be.above(50);
    await new Promise((r) => setTimeout(r, 1000));
    const events = await readStream(nc);
    const ids = new Map<string, number>();
    for (const e of events) ids.set(e.id, (ids.get(e.id) ?? 0) + 1);
    const twice = [...ids].filter(([, n]) => n > 1);
    expect(twice, 'event ids stored more than once').to.deep.equal([]);
    const stored = new Map<string, Ev>();
    for (const e of events) if (e.type === 'dm.stored') stored.set(`${e.data.to}:${e.data.seq}`, e);
    const missing = load.acks.filter((a) => stored.get(`${a.to}:${a.seq}`)?.data.id !== a.id);
    expect(missing.map((a) => `${a.to}:${a.seq}:${a.id}`), `of ${load.acks.length} acknowledged dms`).to.deep.equal([]);
    // Every stored dm event is one message: no (recipient, seq) twice under another id.
    const bySeq = new Map<string, Set<string>>();
    for (const e of events) if (e.type === 'dm.stored') (bySeq.get(`${e.data.to}:${e.data.seq}`) ?? bySeq.set(`${e.data.to}:${e.data.seq}`, new Set()).get(`${e.data.to}:${e.data.seq}`)!).add(e.data.id);
    expect([...bySeq].filter(([, s]) => s.size > 1)).to.deep.equal([]);
  });
});
