import { expect } from 'chai';
import { Socket, LongPoll, Presence, type Channel } from 'phoenix';
import WebSocket from 'ws';
import { request as httpRequest } from 'node:http';
import { token, withHost } from '../support/index.js';

type Answer = { status: number; token?: string | null; messages?: string[]; error?: { code: string } };

/**
 * One LongPoll HTTP request on a fresh connection (`Connection: close`), so
 * node:cluster's round-robin spreads successive requests over the workers,
 * the way a browser's parallel poll and post connections land.
 */
function lp(url: string, method: 'GET' | 'POST', query: string, body?: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${url.replace(/^ws/, 'http')}/socket/longpoll?vsn=2.0.0${query}`, {
      method, agent: false,
      headers: { connection: 'close', accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/x-ndjson' } : {}), ...headers },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { text += d; });
      res.on('end', () => {
        try {
          expect(res.statusCode, text).to.equal(200);
          resolve(JSON.parse(text) as Answer);
        } catch (e) { reject(e as Error); }
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

function joined(ch: Channel, payload: object = {}): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    ch.join().receive('ok', resolve).receive('error', (e: unknown) => reject(new Error(JSON.stringify(e)))).receive('timeout', () => reject(new Error('join timeout')));
    void payload;
  });
}

function pushed(ch: Channel, event: string, payload: object): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    ch.push(event, payload).receive('ok', resolve).receive('error', (e: unknown) => reject(new Error(JSON.stringify(e)))).receive('timeout', () => reject(new Error(`${event} timeout`)));
  });
}

function next<T>(ch: Channel, event: string, pred: (p: T) => boolean = () => true): Promise<T> {
  return new Promise((resolve) => {
    const ref = ch.on(event, (p: T) => { if (pred(p)) { ch.off(event, ref); resolve(p); } });
  });
}

/** A WebSocket class whose endpoint is refused (HTTP 404), as behind a proxy that blocks WebSocket. */
class BlockedWebSocket extends WebSocket {
  constructor(url: string, protocols?: string | string[]) {
    super(url.replace('/socket/websocket', '/socket/blocked'), protocols);
  }
}

describe('LongPoll: /socket/longpoll with the phoenix client, on a host with 2 workers', function () {
  this.timeout(30000);
  const { host } = withHost({ workers: 2, flags: { 'longpoll.windowMs': 1000, 'session.idleTimeoutMs': 4000 } });
  const sockets: Socket[] = [];
  afterEach(() => { for (const s of sockets.splice(0)) s.disconnect(); });

  it('handshake: first GET answers 410 with a session token naming host and worker; polls and posts landing on either worker reach the session', async () => {
    const open = await lp(host.url, 'GET', `&token=${token('raw')}`);
    expect(open.status).to.equal(410);
    expect(open.token).to.match(/^lp\.[A-Za-z0-9_-]+\.[01]\.[A-Za-z0-9_-]{24}$/);
    const t = `&token=${open.token}`;
    // Six joins of echo topics, each posted on a new connection: round-robin
    // sends half of them to the worker that does not hold the session.
    for (let i = 0; i < 6; i++) expect((await lp(host.url, 'POST', t, JSON.stringify([`${i}`, `${i}`, `echo:e${i}`, 'phx_join', {}]))).status).to.equal(200);
    const got: unknown[][] = [];
    for (let i = 0; i < 12 && got.length < 6; i++) {
      const a = await lp(host.url, 'GET', t);
      expect(a.status, JSON.stringify(a)).to.be.oneOf([200, 204]);
      expect(a.token).to.equal(open.token);
      for (const m of a.messages ?? []) got.push(JSON.parse(m) as unknown[]);
    }
    expect(got.map((f) => f[2]).sort()).to.deep.equal(['echo:e0', 'echo:e1', 'echo:e2', 'echo:e3', 'echo:e4', 'echo:e5']);
    for (const f of got) expect((f[4] as { status: string }).status).to.equal('ok');
    // A quiet poll is held for the window (1 s here), then answered 204.
    const t0 = Date.now();
    const quiet = await lp(host.url, 'GET', t);
    expect(quiet.status).to.equal(204);
    expect(Date.now() - t0).to.be.within(900, 5000);
  });

  it('refusals: a bad auth token gets status 403, an unknown session 410, a POST without a session 400, a wrong vsn 400', async () => {
    const bad = await lp(host.url, 'GET', '&token=not.valid');
    expect(bad).to.deep.include({ status: 403 });
    expect(bad.error!.code).to.equal('SANDBAR_ERR_AUTH_INVALID');
    expect((await lp(host.url, 'GET', '')).error!.code).to.equal('SANDBAR_ERR_AUTH_MISSING');
    const forged = `lp.${Buffer.from('h1').toString('base64url')}.1.${'A'.repeat(24)}`;
    expect((await lp(host.url, 'GET', `&token=${forged}`)).status).to.equal(410);
    expect((await lp(host.url, 'POST', `&token=${forged}`, '[null,"1","phoenix","heartbeat",{}]')).status).to.equal(410);
    expect((await lp(host.url, 'POST', '', '[null,"1","phoenix","heartbeat",{}]')).status).to.equal(400);
    const other = await new Promise<number>((resolve, reject) => {
      httpRequest(`${host.url.replace(/^ws/, 'http')}/socket/longpoll?vsn=1.0.0`, { agent: false }, (res) => { res.resume(); let t = ''; res.on('data', (d) => { t += String(d); }); res.on('end', () => resolve((JSON.parse(t) as Answer).status)); }).on('error', reject).end();
    });
    expect(other).to.equal(400);
  });

  it('the phoenix LongPoll transport (params.token and authToken) chats with a WebSocket client: room presence and messages, dms', async () => {
    const alice = new Socket(`${host.url}/socket`, { transport: LongPoll, params: { token: token('alice') } });
    const bob = new Socket(`${host.url}/socket`, { transport: LongPoll, authToken: token('bob') });
    const carol = new Socket(`${host.url}/socket`, { transport: WebSocket, params: { token: token('carol') } });
    sockets.push(alice, bob, carol);
    for (const s of sockets) s.connect();
    const ra = alice.channel('room:lp', {});
    const rc = carol.channel('room:lp', {});
    const presence = new Presence(rc);
    const everyone = new Promise<void>((resolve) => presence.onSync(() => { if (presence.list().length === 2) resolve(); }));
    await joined(ra);
    await joined(rc);
    await everyone;
    const fromAlice = next<{ from: string; body: string }>(rc, 'msg', (m) => m.from === 'alice');
    await pushed(ra, 'msg', { id: 'a1', body: 'hello over longpoll' });
    expect((await fromAlice).body).to.equal('hello over longpoll');
    const fromCarol = next<{ from: string; body: string }>(ra, 'msg', (m) => m.from === 'carol');
    await pushed(rc, 'msg', { id: 'c1', body: 'hello over websocket' });
    expect((await fromCarol).body).to.equal('hello over websocket');

    const ub = bob.channel('user:bob', {});
    await joined(ub);
    const ua = alice.channel('user:alice', {});
    await joined(ua);
    const dm = next<{ from: string; body: string; seq: number }>(ub, 'dm');
    const ok = await pushed(ua, 'dm', { to: 'bob', id: 'd1', body: 'psst' });
    expect(ok.seq).to.be.a('number');
    expect(await dm).to.include({ from: 'alice', body: 'psst', seq: ok.seq });
    // Many frames in one turn go out in batches; all are answered.
    const oks = await Promise.all(Array.from({ length: 30 }, (_, i) => pushed(ua, 'dm', { to: 'bob', id: `b${i}`, body: i })));
    expect(oks.map((o) => o.seq)).to.deep.equal(Array.from({ length: 30 }, (_, i) => (ok.seq as number) + 1 + i));
  });

  it('falls back from a refused WebSocket to LongPoll (longPollFallbackMs) and works', async () => {
    const s = new Socket(`${host.url}/socket`, { transport: BlockedWebSocket, longPollFallbackMs: 300, params: { token: token('dave') } });
    sockets.push(s);
    s.connect();
    const ch = s.channel('echo:fallback', {});
    const res = await joined(ch);
    expect(s.transport).to.equal(LongPoll);
    expect(String(res.session)).to.match(/^h1\.[01]\./);
    expect(await pushed(ch, 'ping', { n: 7 })).to.deep.equal({ n: 7 });
  });

  it('a LongPoll session nobody polls is closed after session.idleTimeoutMs; its token then answers 410', async () => {
    const open = await lp(host.url, 'GET', `&token=${token('idler')}`);
    expect(open.status).to.equal(410);
    await host.waitFor((l) => l.code === 'SANDBAR_ERR_IDLE_TIMEOUT' && l.user === 'idler', 10000);
    expect((await lp(host.url, 'GET', `&token=${open.token}`)).status).to.equal(410);
  });
});
