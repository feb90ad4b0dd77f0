/**
 * Limits: each one is flooded past its bound by one client (or one address)
 * while others go on being served. Client addresses are loopback 127.0.0.x,
 * each test its own, so the per-IP limits tell the flooder from the rest.
 */
import { get as httpGet } from 'node:http';
import { expect } from 'chai';
import { RawClient, token, withHost, type Frame } from '../support/index.js';
import { useBystander } from '../support/bystander.js';

type Reply = { status: string; response: { reason?: string; code?: string; seq?: number } };
const reply = (f: Frame) => f[4] as Reply;

/** An upgrade attempt: the open client, or the HTTP refusal with its error code, message and Retry-After. */
type Refused = { status: number; code: string; message: string; retryAfter: number };
type Attempt = { client: RawClient } | Refused;

async function attempt(url: string, user: string, localAddress: string): Promise<Attempt> {
  try {
    return { client: await RawClient.open(url, token(user), { localAddress }) };
  } catch (err) {
    const e = err as { statusCode?: number; code?: string; reason?: string; retryAfter?: number };
    if (e.statusCode === undefined) throw err;
    return { status: e.statusCode, code: e.code ?? '', message: e.reason ?? '', retryAfter: e.retryAfter ?? -1 };
  }
}

/** An attempt whose session, if admitted, is closed at once (and waited for). */
async function attemptAndClose(url: string, user: string, localAddress: string): Promise<Attempt> {
  const a = await attempt(url, user, localAddress);
  if ('client' in a) {
    a.client.close();
    await a.client.closed;
  }
  return a;
}

describe('limits: a flood past each bound is refused, others are served', function () {
  this.timeout(60000);
  const LIMITS = {
    'session.ratePerSecond': 50, 'session.rateBurst': 30, 'session.rateMaxRefused': 30,
    'http.ipConnectRate': 4, 'http.ipConnectBurst': 8, 'http.ipMaxSessions': 6,
    'session.maxChannels': 5, 'room.maxMembers': 10, 'message.maxBytes': 256,
  };

  const { host } = withHost({ workers: 2, flags: LIMITS });
  useBystander(() => host.url, { localAddress: '127.0.0.2', heartbeatMs: 500 });

  it('session.ratePerSecond: a flooding session gets SANDBAR_ERR_RATE_LIMITED replies, then close 4429; a session under the rate gets every reply ok', async () => {
    const flooder = await RawClient.open(host.url, token('flooder'), { localAddress: '127.0.0.3' });
    const steady = await RawClient.open(host.url, token('steady'), { localAddress: '127.0.0.4' });
    await flooder.join('echo:f', {}, 'f');
    await steady.join('echo:s', {}, 's');
    // The steady client pushes 25 a second (half the limit) while the flood runs.
    const steadyReplies: Promise<Frame>[] = [];
    const pacer = setInterval(() => { if (steadyReplies.length < 30) steadyReplies.push(steady.request('s', 'echo:s', 'n', { i: steadyReplies.length })); }, 40);
    const t0 = Date.now();
    for (let i = 0; i < 300; i++) flooder.send(['f', String(1000 + i), 'echo:f', 'flood', { i }]);
    expect(await flooder.closed).to.equal(4429);
    const seconds = (Date.now() - t0) / 1000;
    expect(flooder.closeReason).to.match(/^SANDBAR_ERR_RATE_ABUSE/);
    const replies = flooder.frames.filter((f) => f[3] === 'phx_reply' && Number(f[1]) >= 1000);
    const ok = replies.filter((f) => reply(f).status === 'ok').length;
    const limited = replies.filter((f) => reply(f).response.code === 'SANDBAR_ERR_RATE_LIMITED').length;
    // The burst (less the join's token) plus what refilled while the flood was read, then refusals up to rateMaxRefused.
    expect(ok).to.be.within(29, 30 + Math.ceil(50 * seconds));
    expect(limited).to.equal(30);
    await new Promise((r) => setTimeout(r, 30 * 40 + 100));
    clearInterval(pacer);
    const got = await Promise.all(steadyReplies);
    expect(got.map((f) => reply(f).status)).to.deep.equal(Array(got.length).fill('ok'));
    expect(got.length).to.be.greaterThan(20);
    await host.waitFor((l) => l.code === 'SANDBAR_ERR_RATE_ABUSE' && l.user === 'flooder');
    steady.close();
  });

  it('http.ipConnectRate: an address opening connections too fast gets 429 with Retry-After; another address is admitted meanwhile; the first is admitted again after Retry-After', async () => {
    const results: Attempt[] = [];
    // One at a time, each closed at once: only the rate is in play, not http.ipMaxSessions.
    const t0 = Date.now();
    for (let i = 0; i < 24; i++) results.push(await attemptAndClose(host.url, `r${i}`, '127.0.0.5'));
    const seconds = (Date.now() - t0) / 1000;
    const refused = results.filter((r): r is Refused => 'status' in r);
    // The burst (8) plus what the rate (4/s) refilled while we tried, within one per worker.
    expect(results.length - refused.length).to.be.within(8, 8 + Math.ceil(4 * seconds) + 2);
    expect(refused.length).to.be.greaterThan(0);
    for (const r of refused) {
      expect(r.status).to.equal(429);
      expect(r.code).to.equal('SANDBAR_ERR_TOO_MANY_CONNECTIONS');
      expect(r.message).to.include('http.ipConnectRate');
      expect(r.retryAfter).to.be.within(1, 2);
    }
    const other = await attempt(host.url, 'other', '127.0.0.6');
    expect('client' in other).to.equal(true);
    (other as { client: RawClient }).client.close();
    await new Promise((r) => setTimeout(r, refused[refused.length - 1]!.retryAfter * 1000));
    expect('client' in await attemptAndClose(host.url, 'again', '127.0.0.5')).to.equal(true);
    await host.waitFor((l) => l.msg === 'connections refused before the upgrade (connection limits)' && l.ip === '127.0.0.5');
  });

  it('http.ipConnectRate applies to LongPoll handshakes too: an address starting LongPoll sessions too fast gets 429 with Retry-After; another address is admitted', async () => {
    const http = host.url.replace('ws://', 'http://');
    // HTTP 200 with {status: 410, token} starts a session (the LongPoll handshake, as Phoenix answers it); HTTP 429 is the refusal.
    const handshake = (addr: string) => new Promise<{ status: number; retryAfter: string | undefined }>((resolve, reject) => {
      const req = httpGet(`${http}/socket/longpoll?vsn=2.0.0&token=${encodeURIComponent(token(`lp-${addr}`))}`, { localAddress: addr, agent: false }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => { body += d.toString(); });
        res.on('end', () => {
          const inner = res.statusCode === 200 ? (JSON.parse(body) as { status: number }).status : res.statusCode ?? 0;
          resolve({ status: inner, retryAfter: res.headers['retry-after'] as string | undefined });
        });
      });
      req.on('error', reject);
    });
    const results: { status: number; retryAfter: string | undefined }[] = [];
    for (let i = 0; i < 24; i++) results.push(await handshake('127.0.0.31'));
    expect(results.filter((r) => r.status === 410).length, 'handshakes admitted').to.be.within(8, 20);
    const refused = results.filter((r) => r.status === 429);
    expect(refused.length, 'handshakes refused').to.be.greaterThan(0);
    for (const r of refused) expect(Number(r.retryAfter)).to.be.within(1, 2);
    expect((await handshake('127.0.0.32')).status, 'another address').to.equal(410);
  });

  it('http.ipMaxSessions: an address holding its share of sessions gets 429 for more; another address is admitted; a closed session frees a place', async () => {
    const held: RawClient[] = [];
    const refused: Refused[] = [];
    for (let i = 0; i < 8; i++) {
      const a = await attempt(host.url, `held${i}`, '127.0.0.7');
      if ('client' in a) held.push(a.client);
      else refused.push(a);
    }
    // 6 per host = 3 per worker; round-robin alternates the two workers.
    expect(held.length).to.equal(6);
    expect(refused.map((r) => [r.status, r.code, r.retryAfter])).to.deep.equal([[429, 'SANDBAR_ERR_TOO_MANY_CONNECTIONS', 5], [429, 'SANDBAR_ERR_TOO_MANY_CONNECTIONS', 5]]);
    expect(refused[0]!.message).to.include('http.ipMaxSessions');
    const other = await attempt(host.url, 'other2', '127.0.0.8');
    expect('client' in other).to.equal(true);
    // Every held session still works.
    for (const c of held) expect(reply(await c.join('echo:h', {}, 'h')).status).to.equal('ok');
    // Free one place on each worker; the next two connections are admitted.
    held.shift()!.close();
    held.shift()!.close();
    await new Promise((r) => setTimeout(r, 300));
    for (let i = 0; i < 2; i++) {
      const a = await attempt(host.url, `again${i}`, '127.0.0.7');
      expect('client' in a, `attempt ${i}`).to.equal(true);
      held.push((a as { client: RawClient }).client);
    }
    for (const c of held) c.close();
    if ('client' in other) other.client.close();
  });

  it('session.maxChannels: joins past the bound get SANDBAR_ERR_TOO_MANY_CHANNELS; the joined channels keep working; a leave frees a place', async () => {
    const c = await RawClient.open(host.url, token('joiner'), { localAddress: '127.0.0.9' });
    const answers: string[] = [];
    for (let i = 0; i < 12; i++) answers.push(reply(await c.join(`echo:t${i}`, {}, `j${i}`)).response.code ?? 'ok');
    expect(answers).to.deep.equal([...Array(5).fill('ok'), ...Array(7).fill('SANDBAR_ERR_TOO_MANY_CHANNELS')]);
    expect(reply(await c.request('j4', 'echo:t4', 'ping', { x: 1 })).status).to.equal('ok');
    expect(reply(await c.request('j0', 'echo:t0', 'phx_leave', {})).status).to.equal('ok');
    expect(reply(await c.join('echo:t11', {}, 'k')).status).to.equal('ok');
    expect(c.closeCode).to.equal(null);
    c.close();
  });

  it('message.maxBytes: a flood of oversized room messages is refused one by one with SANDBAR_ERR_TOO_LARGE; the sender and the room go on', async () => {
    const a = await RawClient.open(host.url, token('big-a'), { localAddress: '127.0.0.10' });
    const b = await RawClient.open(host.url, token('big-b'), { localAddress: '127.0.0.11' });
    expect(reply(await a.join('room:sizes', {}, 'r')).status).to.equal('ok');
    expect(reply(await b.join('room:sizes', {}, 'r')).status).to.equal('ok');
    const big = 'x'.repeat(1000);
    const refused = await Promise.all(Array.from({ length: 20 }, () => a.request('r', 'room:sizes', 'msg', { body: big })));
    expect(refused.map((f) => reply(f).response.code)).to.deep.equal(Array(20).fill('SANDBAR_ERR_TOO_LARGE'));
    const ok = reply(await a.request('r', 'room:sizes', 'msg', { body: 'small' }));
    expect(ok.status).to.equal('ok');
    const got = await b.waitFor((f) => f[3] === 'msg' && (f[4] as { body: string }).body === 'small');
    expect((got[4] as { seq: number }).seq).to.equal(ok.response.seq);
    // Nothing oversized reached the other member.
    expect(b.frames.filter((f) => f[3] === 'msg')).to.have.length(1);
    a.close();
    b.close();
  });

  it('room.maxMembers: joins past the bound get SANDBAR_ERR_ROOM_FULL; the members get every broadcast; a leave frees a place', async () => {
    const clients = await Promise.all(Array.from({ length: 14 }, (_, i) => RawClient.open(host.url, token(`fan${i}`), { localAddress: `127.0.1.${i + 1}` })));
    const answers: Reply[] = [];
    // One at a time, so which ones are refused is known.
    for (const c of clients) answers.push(reply(await c.join('room:full', {}, 'r')));
    expect(answers.map((r) => r.response.code ?? r.status)).to.deep.equal([...Array(10).fill('ok'), ...Array(4).fill('SANDBAR_ERR_ROOM_FULL')]);
    const members = clients.slice(0, 10);
    const sent = reply(await members[0]!.request('r', 'room:full', 'msg', { body: 'to all' }));
    await Promise.all(members.map((c) => c.waitFor((f) => f[3] === 'msg' && (f[4] as { seq: number }).seq === sent.response.seq)));
    expect(reply(await members[9]!.request('r', 'room:full', 'phx_leave', {})).status).to.equal('ok');
    // The room hears of the leave through its actor; the next join may race it, so retry briefly.
    let again: Reply | null = null;
    for (let i = 0; i < 20 && again?.status !== 'ok'; i++) {
      again = reply(await clients[10]!.join('room:full', {}, `r${i}`));
      if (again.status !== 'ok') await new Promise((r) => setTimeout(r, 50));
    }
    expect(again!.status).to.equal('ok');
    for (const c of clients) c.close();
  });
});
