/**
 * The server API (docs/api.md) of two live hosts, over HTTP and over NATS,
 * checked by connected phoenix and raw clients that see each effect; bad
 * input; client events and presence meta updates; the API's start-up rules.
 */
import { expect } from 'chai';
import { Socket, Presence } from 'phoenix';
import WebSocket from 'ws';
import { Empty, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { RawClient, readInbox, runSandbar, token, useLab, withHosts, withNats, SECRET, type Frame } from '../support/index.js';

const KEY = 'backend-key-0123456789abcdef';
const READER_KEY = 'reader-key-0123456789abcdef';
const FLAGS = {
  shards: 32,
  'api.port': 0,
  'api.keys': `backend:*:${KEY},reader:presence|history:${READER_KEY}`,
  'api.maxBodyBytes': 4096,
  'message.maxBytes': 1024,
  'room.clientEvents': '*:typing,game:move',
  'session.idleTimeoutMs': 5000,
};

interface ApiAnswer { status: number; body: any; headers: Headers }

async function post(port: number, op: string, body: unknown, key: string | null = KEY, raw?: string): Promise<ApiAnswer> {
  const res = await fetch(`http://127.0.0.1:${port}/api/${op}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key === null ? {} : { authorization: `Bearer ${key}` }) },
    body: raw ?? JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
}

async function nreq(nc: NatsConnection, op: string, body: unknown): Promise<Msg> {
  return nc.request(`sandbar.local.api.${op}`, body === undefined ? Empty : JSON.stringify(body), { timeout: 8000 });
}

function okReply(f: Frame): { status: string; response: any } {
  return f[4] as { status: string; response: any };
}

describe('server API: HTTP and NATS on live hosts', function () {
  this.timeout(90000);
  const sockets: Socket[] = [];
  const raws: RawClient[] = [];
  after(() => {
    for (const s of sockets) s.disconnect();
    for (const r of raws) r.close();
  });
  const { nats, hosts } = withHosts(['h1', 'h2'], { workers: 1, flags: FLAGS });
  let nc: NatsConnection;
  let ports: number[] = [];
  before(async () => {
    ports = await Promise.all(hosts.map(async (h) => (await h.waitFor((l) => l.msg === 'api listening')).port as number));
    nc = await nats.connect();
  });

  function phoenix(user: string, host = 0): Socket {
    const s = new Socket(`${hosts[host]!.url}/socket`, { transport: WebSocket as any, params: { token: token(user) }, heartbeatIntervalMs: 1000, reconnectAfterMs: () => 60000 });
    s.connect();
    sockets.push(s);
    return s;
  }

  async function raw(user: string, host = 0): Promise<RawClient> {
    const c = await RawClient.open(hosts[host]!.url, token(user));
    raws.push(c);
    return c;
  }

  function joined(ch: ReturnType<Socket['channel']>): Promise<unknown> {
    return new Promise((resolve, reject) => ch.join().receive('ok', resolve).receive('error', reject).receive('timeout', () => reject(new Error('join timeout'))));
  }

  it('publish over HTTP and over NATS: a phoenix client in the room gets each message with the seq the API answered; a retry with the same id is stored once', async () => {
    const s = phoenix('watcher');
    const ch = s.channel('room:news', {});
    const got: { seq: number; from: string; id: string; body: unknown }[] = [];
    ch.on('msg', (m: any) => got.push(m));
    await joined(ch);
    const a = await post(ports[0]!, 'publish', { room: 'news', id: 'n1', body: { text: 'hello' } });
    expect(a.status).to.equal(200);
    expect(a.body).to.include.keys('seq', 'epoch');
    const b = (await nreq(nc, 'publish', { room: 'news', id: 'n2', from: 'newsbot', body: 'second' })).json<{ seq: number; epoch: number }>();
    expect(b.seq).to.equal(a.body.seq + 1);
    const again = await post(ports[1]!, 'publish', { room: 'news', id: 'n1', body: { text: 'hello' } });
    expect(again.body).to.deep.include({ seq: a.body.seq, duplicate: true });
    const againNats = (await nreq(nc, 'publish', { room: 'news', id: 'n2', from: 'newsbot', body: 'second' })).json<{ seq: number; duplicate: boolean }>();
    expect(againNats).to.deep.include({ seq: b.seq, duplicate: true });
    const deadline = Date.now() + 5000;
    while (got.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(got.map((m) => [m.seq, m.from, m.id])).to.deep.equal([[a.body.seq, '$system', 'n1'], [b.seq, 'newsbot', 'n2']]);
    const hist = await post(ports[0]!, 'history', { room: 'news' });
    expect(hist.body.messages.map((m: { id: string }) => m.id)).to.deep.equal(['n1', 'n2']);
  });

  it('broadcast reaches every named room once, with one result per room', async () => {
    const rooms = ['b1', 'b2', 'b3'];
    const clients = await Promise.all(rooms.map(async (r, i) => {
      const c = await raw(`bwatch${i}`, i % 2);
      await c.join(`room:${r}`, {}, 'r');
      return c;
    }));
    const res = await post(ports[1]!, 'broadcast', { rooms, id: 'bc1', body: 'to all' });
    expect(res.status).to.equal(200);
    expect(res.body.results.map((r: { room: string; seq: number }) => [r.room, r.seq])).to.deep.equal(rooms.map((r) => [r, 1]));
    for (const c of clients) await c.waitFor((f) => f[3] === 'msg' && (f[4] as { id: string }).id === 'bc1');
    const nres = (await nreq(nc, 'broadcast', { rooms, id: 'bc1', body: 'to all' })).json<{ results: { duplicate: boolean }[] }>();
    expect(nres.results.every((r) => r.duplicate)).to.equal(true);
  });

  it('dm over HTTP and NATS lands in the inbox of a connected phoenix client (as a bot, as the system); presence and history of the user', async () => {
    const s = phoenix('bob', 1);
    const ch = s.channel('user:bob', { device: 'phone' });
    const dms: { seq: number; from: string; id: string }[] = [];
    ch.on('dm', (m: any) => dms.push(m));
    await joined(ch);
    const a = await post(ports[0]!, 'dm', { to: 'bob', id: 'd1', from: 'supportbot', body: 'ticket #1' });
    expect(a.status).to.equal(200);
    const b = (await nreq(nc, 'dm', { to: 'bob', id: 'd2', body: 'system notice' })).json<{ seq: number }>();
    const deadline = Date.now() + 5000;
    while (dms.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(dms.map((m) => [m.seq, m.from, m.id])).to.deep.equal([[a.body.seq, 'supportbot', 'd1'], [b.seq, '$system', 'd2']]);
    const pres = await post(ports[0]!, 'presence', { user: 'bob' }, READER_KEY);
    expect(pres.body.presence.bob.metas.map((m: { device: string }) => m.device)).to.deep.equal(['phone']);
    const inbox = (await nreq(nc, 'history', { user: 'bob', limit: 1 })).json<{ seq: number; messages: { id: string }[]; more: boolean }>();
    expect(inbox).to.deep.include({ seq: b.seq, more: true });
    expect(inbox.messages.map((m) => m.id)).to.deep.equal(['d1']);
    const back = await post(ports[1]!, 'history', { user: 'bob', before: b.seq + 1, limit: 1 }, READER_KEY);
    expect(back.body.messages.map((m: { id: string }) => m.id)).to.deep.equal(['d2']);
  });

  it('presence and history of a room, paged by seq, over HTTP and NATS', async () => {
    const c1 = await raw('pam', 0);
    const c2 = await raw('pat', 1);
    await c1.join('room:paged', { device: 'web' }, 'r');
    await c2.join('room:paged', { device: 'ios' }, 'r');
    for (let i = 1; i <= 5; i++) await post(ports[i % 2]!, 'publish', { room: 'paged', id: `p${i}`, body: i });
    const p = (await nreq(nc, 'presence', { room: 'paged' })).json<{ presence: Record<string, { metas: { device: string }[] }> }>();
    expect(Object.keys(p.presence).sort()).to.deep.equal(['pam', 'pat']);
    const first = await post(ports[0]!, 'history', { room: 'paged', limit: 2 }, READER_KEY);
    expect(first.body).to.deep.include({ seq: 5, more: true });
    expect(first.body.messages.map((m: { seq: number }) => m.seq)).to.deep.equal([1, 2]);
    const next = await post(ports[0]!, 'history', { room: 'paged', after: 2, limit: 10 }, READER_KEY);
    expect(next.body.messages.map((m: { seq: number }) => m.seq)).to.deep.equal([3, 4, 5]);
    expect(next.body.more).to.equal(false);
    const empty = await post(ports[0]!, 'history', { room: 'never-used' }, READER_KEY);
    expect(empty.body).to.deep.include({ seq: 0, messages: [], more: false });
  });

  it('disconnect closes every device of the user on every host with the close code (with revoke: 4403 and the token refused); unsubscribe ends its room channel with phx_close', async () => {
    const phone = await raw('dora', 0);
    const laptop = await raw('dora', 1);
    const other = await raw('dave', 0);
    await phone.join('room:club', {}, 'r');
    await laptop.join('user:dora', {}, 'u');
    await other.join('room:club', {}, 'r');
    const res = await post(ports[0]!, 'disconnect', { user: 'dora', code: 4100, reason: 'banned for a day' });
    expect(res.body).to.deep.equal({ user: 'dora', code: 4100 });
    expect(await Promise.race([Promise.all([phone.closed, laptop.closed]), new Promise((r) => setTimeout(() => r('timeout'), 5000))])).to.deep.equal([4100, 4100]);
    expect(phone.closeReason).to.include('banned for a day');
    expect(other.closeCode).to.equal(null);
    // unsubscribe over NATS: dave's room channel ends, his socket stays.
    const u = (await nreq(nc, 'unsubscribe', { user: 'dave', room: 'club' })).json<{ user: string }>();
    expect(u.user).to.equal('dave');
    await other.waitFor((f) => f[2] === 'room:club' && f[3] === 'phx_close', 5000);
    const pres = await post(ports[1]!, 'presence', { room: 'club' });
    expect(pres.body.presence).to.not.have.property('dave');
    expect(other.closeCode).to.equal(null);
    // A default disconnect uses 4002.
    const again = await raw('dora', 1);
    await post(ports[1]!, 'disconnect', { user: 'dora' });
    expect(await again.closed).to.equal(4002);
    // With revoke (auth's revocation): closed with 4403, and the same token is refused at the upgrade.
    const leaked = token('dora');
    const kept = await RawClient.open(hosts[0]!.url, leaked);
    raws.push(kept);
    const rv = await post(ports[1]!, 'disconnect', { user: 'dora', revoke: true, reason: 'token leaked' });
    expect(rv.body).to.deep.equal({ user: 'dora', code: 4403 });
    expect(await kept.closed).to.equal(4403);
    const refused = await RawClient.open(hosts[0]!.url, leaked).then((c) => { raws.push(c); return null; }, (e: { statusCode?: number; code?: string }) => e);
    expect([refused?.statusCode, refused?.code]).to.deep.equal([403, 'SANDBAR_ERR_AUTH_REVOKED']);
  });

  it('bad input: 401 without leaking the key, 403, 404, 400 naming the field with a stable code, 413; over NATS the micro error headers and the field', async () => {
    const wrong = 'not-the-key-0123456789-SECRET';
    for (const key of [null, wrong]) {
      const r = await post(ports[0]!, 'publish', { room: 'x', id: '1', body: 1 }, key);
      expect(r.status).to.equal(401);
      expect(r.body.error.code).to.equal('SANDBAR_ERR_API_UNAUTHORIZED');
      expect(JSON.stringify(r.body)).to.not.include(wrong);
    }
    const line = await hosts[0]!.waitFor((l) => l.msg === 'server API request refused: no valid API key');
    expect(JSON.stringify(hosts[0]!.lines)).to.not.include(wrong);
    expect(line.refusedTotal ?? line.refused).to.be.a('number');
    const forbidden = await post(ports[0]!, 'publish', { room: 'x', id: '1', body: 1 }, READER_KEY);
    expect([forbidden.status, forbidden.body.error.code]).to.deep.equal([403, 'SANDBAR_ERR_API_FORBIDDEN']);
    const unknown = await post(ports[0]!, 'teleport', {});
    expect([unknown.status, unknown.body.error.code]).to.deep.equal([404, 'SANDBAR_ERR_API_UNKNOWN_OPERATION']);
    const cases: [string, unknown, number, string, string][] = [
      ['publish', { id: '1', body: 1 }, 400, 'SANDBAR_ERR_BAD_PAYLOAD', 'room'],
      ['publish', { room: 'bad room!', id: '1', body: 1 }, 400, 'SANDBAR_ERR_INVALID_ID', 'room'],
      ['dm', { to: 'bob', id: '1', body: 1, from: 'a/b' }, 400, 'SANDBAR_ERR_INVALID_ID', 'from'],
      ['publish', { room: 'r', id: '1', body: 1, colour: 'red' }, 400, 'SANDBAR_ERR_BAD_PAYLOAD', 'colour'],
      ['history', { room: 'r', limit: 0 }, 400, 'SANDBAR_ERR_BAD_PAYLOAD', 'limit'],
      ['broadcast', { rooms: [], id: '1', body: 1 }, 400, 'SANDBAR_ERR_BAD_PAYLOAD', 'rooms'],
      ['disconnect', { user: 'u', code: 1000 }, 400, 'SANDBAR_ERR_BAD_PAYLOAD', 'code'],
      ['presence', {}, 400, 'SANDBAR_ERR_BAD_PAYLOAD', 'room'],
      ['publish', { room: 'r', id: '1', body: 'x'.repeat(1100) }, 413, 'SANDBAR_ERR_TOO_LARGE', 'body'],
    ];
    for (const [op, body, status, code, field] of cases) {
      const r = await post(ports[1]!, op, body);
      expect([r.status, r.body.error.code, r.body.error.field], `${op} ${JSON.stringify(body)}`).to.deep.equal([status, code, field]);
      expect(r.body.error.message).to.include(field);
    }
    const tooBig = await post(ports[0]!, 'publish', null, KEY, JSON.stringify({ room: 'r', id: '1', body: 'y'.repeat(5000) }));
    expect([tooBig.status, tooBig.body.error.code]).to.deep.equal([413, 'SANDBAR_ERR_API_BODY_TOO_LARGE']);
    const notJson = await post(ports[0]!, 'publish', null, KEY, '{"room": ');
    expect([notJson.status, notJson.body.error.code]).to.deep.equal([400, 'SANDBAR_ERR_BAD_PAYLOAD']);
    const m = await nreq(nc, 'publish', { room: 'r', id: '1' });
    expect(m.headers?.get('Nats-Service-Error-Code')).to.equal('400');
    expect(m.json<{ error: { code: string; field: string } }>().error).to.deep.include({ code: 'SANDBAR_ERR_BAD_PAYLOAD', field: 'body' });
    const notJsonNats = await nc.request('sandbar.local.api.publish', '{nope', { timeout: 5000 });
    expect(notJsonNats.headers?.get('Nats-Service-Error-Code')).to.equal('400');
  });

  it('nats micro info lists the api endpoints; GET /api/openapi.json documents every operation without a key', async () => {
    const info = (await nc.request('$SRV.INFO.sandbar', Empty)).json<{ endpoints: { name: string; subject: string }[] }>();
    for (const op of ['publish', 'broadcast', 'dm', 'presence', 'history', 'disconnect', 'unsubscribe']) {
      expect(info.endpoints.map((e) => e.subject)).to.include(`sandbar.local.api.${op}`);
    }
    const res = await fetch(`http://127.0.0.1:${ports[0]}/api/openapi.json`);
    const doc = await res.json() as { openapi: string; paths: Record<string, { post: { requestBody: unknown } }> };
    expect(doc.openapi).to.match(/^3\./);
    expect(Object.keys(doc.paths).sort()).to.deep.equal(['/api/broadcast', '/api/disconnect', '/api/dm', '/api/history', '/api/presence', '/api/publish', '/api/unsubscribe']);
    expect(doc.paths['/api/publish']!.post.requestBody).to.be.an('object');
  });

  it('client events: an allowed ephemeral event reaches the room\'s members and is not stored; another is refused; presence meta updates arrive as presence_diff in the phoenix Presence class', async () => {
    const watcher = phoenix('wanda', 1);
    const ch = watcher.channel('room:game.7', { device: 'tv' });
    const presence = new Presence(ch);
    const typing: unknown[] = [];
    const moves: unknown[] = [];
    ch.on('typing', (p: unknown) => typing.push(p));
    ch.on('move', (p: unknown) => moves.push(p));
    await joined(ch);
    const player = await raw('gus', 0);
    await player.join('room:game.7', { device: 'pad' }, 'r');
    expect(okReply(await player.request('r', 'room:game.7', 'typing', { on: true })).status).to.equal('ok');
    expect(okReply(await player.request('r', 'room:game.7', 'move', { to: 'e4' })).status).to.equal('ok');
    const refused = okReply(await player.request('r', 'room:game.7', 'shout', { loud: true }));
    expect([refused.status, refused.response.code]).to.deep.equal(['error', 'SANDBAR_ERR_UNKNOWN_EVENT']);
    const deadline = Date.now() + 5000;
    while ((typing.length < 1 || moves.length < 1) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(typing).to.deep.equal([{ from: 'gus', body: { on: true } }]);
    expect(moves).to.deep.equal([{ from: 'gus', body: { to: 'e4' } }]);
    // "move" is allowed only in namespace "game": not in another room.
    const elsewhere = await raw('gus', 0);
    await elsewhere.join('room:lobby2', {}, 'r');
    expect(okReply(await elsewhere.request('r', 'room:lobby2', 'move', {})).response.code).to.equal('SANDBAR_ERR_UNKNOWN_EVENT');
    const hist = await post(ports[0]!, 'history', { room: 'game.7' });
    expect(hist.body).to.deep.include({ seq: 0, messages: [] });
    // Presence.update: the phoenix Presence class sees gus's meta with the new field, once.
    const upd = okReply(await player.request('r', 'room:game.7', 'presence', { status: 'away', phx_ref: 'forged' }));
    expect(upd.status).to.equal('ok');
    const metas = () => (presence.list((id: string, p: { metas: { status?: string; device?: string; phx_ref: string }[] }) => ({ id, metas: p.metas })) as { id: string; metas: { status?: string; device?: string; phx_ref: string }[] }[]).find((e) => e.id === 'gus')?.metas ?? [];
    const until = Date.now() + 5000;
    while (!(metas().length === 1 && metas()[0]!.status === 'away') && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    expect(metas().map((m) => [m.status, m.device])).to.deep.equal([['away', 'pad']]);
    expect(metas()[0]!.phx_ref).to.equal(upd.response.phx_ref).and.not.equal('forged');
    const diff = player.frames.find((f) => f[3] === 'presence_diff' && JSON.stringify(f[4]).includes('away'));
    expect(diff, 'presence_diff with the new meta').to.not.equal(undefined);
    const tooBig = okReply(await player.request('r', 'room:game.7', 'presence', { blob: 'z'.repeat(2000) }));
    expect(tooBig.response.code).to.equal('SANDBAR_ERR_TOO_LARGE');
  });

  it('a dm sent through the API survives a kill -9 of the host that masters its recipient (last: it kills a host)', async () => {
    // Find a user whose shard h1 masters; send through h2's API; kill h1; read through h2.
    let user = '';
    for (let i = 0; i < 200 && !user; i++) {
      const r = (await nc.request(`sandbar.local.admin.user.k${i}`, Empty, { timeout: 3000 })).json<{ master: string }>();
      if (r.master.startsWith('h1.')) user = `k${i}`;
    }
    expect(user).to.not.equal('');
    const acked: { id: string; seq: number }[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await post(ports[1]!, 'dm', { to: user, id: `kill-${i}`, from: 'bot', body: i });
      expect(r.status).to.equal(200);
      acked.push({ id: `kill-${i}`, seq: r.body.seq });
    }
    hosts[0]!.killHost();
    await hosts[0]!.exit;
    // Until h2 has promoted the shard, the read waits (readInbox's join is resent until it is served).
    const deadline = Date.now() + 20000;
    let inbox: Map<string, number> | null = null;
    while (!inbox && Date.now() < deadline) inbox = await readInbox(hosts[1]!.url, user).catch(() => null);
    expect(inbox, 'inbox readable after the promotion').to.not.equal(null);
    for (const a of acked) expect(inbox!.get(a.id), a.id).to.equal(a.seq);
    // A retry through the API after the failover is still recognised.
    const again = await post(ports[1]!, 'dm', { to: user, id: 'kill-0', from: 'bot', body: 0 });
    expect(again.body).to.deep.include({ seq: acked[0]!.seq, duplicate: true });
  });
});

describe('server API: off by default, refused on a public address without a key', function () {
  this.timeout(60000);
  const lab = useLab();
  const nats = withNats();
  const run = (args: string[]) => runSandbar(args);

  it('a host without api.port opens no API listener (api.port unset is the default)', async () => {
    const h = await lab.startHost({ nats: nats.url, workers: 1, flags: { shards: 8 } });
    try {
      expect(h.lines.some((l) => l.msg === 'api listening')).to.equal(false);
    } finally {
      await h.stop();
    }
  });

  it('api.port on a non-loopback api.host without api.keys stops start-up with exit 78 naming the key; with a key or on loopback it is valid', async () => {
    const bad = await run(['check-config', '--api.port=4100', '--api.host=0.0.0.0', `--auth.secret=${SECRET}`]);
    expect(bad.code).to.equal(78);
    expect(bad.stderr).to.include('api.host').and.include('api.keys');
    const start = await run(['start', '--api.port=4100', '--api.host=0.0.0.0', `--nats.servers=${nats.url}`, '--nats.embedded=false']);
    expect(start.code).to.equal(78);
    const withKey = await run(['check-config', '--api.port=4100', '--api.host=0.0.0.0', `--api.keys=svc:*:${KEY}`]);
    expect(withKey.code).to.equal(0);
    const loop = await run(['check-config', '--api.port=4100']);
    expect(loop.code).to.equal(0);
    const badKey = await run(['check-config', '--api.keys=svc:fly:short']);
    expect(badKey.code).to.equal(78);
    expect(badKey.stderr).to.include('api.keys[0]').and.not.include('short');
  });
});
