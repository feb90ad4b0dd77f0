/**
 * Issue 16, who may do what, with real hosts, a real nats-server, the
 * official phoenix client and the test's own loopback HTTP server (the JWKS
 * URL and the authorization proxy):
 *
 * - tokens of every algorithm are accepted; each bad token is refused before
 *   the upgrade with 403 and its reason (in the body and the log, never the token);
 * - keys from a JWKS URL are fetched and refreshed;
 * - room authorization: claims, history and publish; the proxy allows, denies,
 *   and a dead, slow or garbage proxy refuses (fail-closed) or allows (fail-open);
 * - a short-lived token gets token_expiring, refreshes and keeps working; one that
 *   does not is closed at exp with 4401; revocation closes with 4403;
 * - key rotation: a host restarted without the old kid refuses it and accepts
 *   the new one, while sessions elsewhere with the old kid go on until exp.
 */
import { expect } from 'chai';
import { createServer, type Server } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Socket } from 'phoenix';
import WebSocket from 'ws';
import { connect } from '@nats-io/transport-node';
import { RawClient, SECRET, useLab, withNats, withTempDir, type Frame, type SandbarHost } from '../support/index.js';
import { jwt, keyToml, makeKey, unsigned, type TestKey } from '../support/auth-keys.js';
import { revokeUser } from '../../src/auth/revocation.js';
import { Subjects } from '../../src/bus/subjects.js';

type Reply = { status: string; response: { code?: string; reason?: string; seq?: number; exp?: number } };
const reply = (f: Frame) => f[4] as Reply;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const AUD = 'sandbar-test';

/** The test's application: JWKS at /jwks, the authorization proxy at /authorize. */
class App {
  server!: Server;
  url = '';
  jwks: object[] = [];
  jwksFetches = 0;
  asked: { user: string; room: string; action: string; params: unknown }[] = [];
  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      if (req.url === '/jwks') {
        this.jwksFetches++;
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: this.jwks }));
        return;
      }
      let body = '';
      req.on('data', (d: Buffer) => { body += d.toString(); });
      req.on('end', () => {
        const q = JSON.parse(body) as { user: string; room: string; action: string; params: unknown };
        this.asked.push(q);
        if (req.headers.authorization !== 'Bearer proxy-secret') return res.writeHead(401).end();
        if (q.room.startsWith('proxy-slow')) return; // never answers
        if (q.room.startsWith('proxy-garbage')) return res.writeHead(200).end('<html>not json</html>');
        if (q.room.startsWith('proxy-500')) return res.writeHead(500).end('{}');
        const allow = q.user.startsWith('ok-');
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(allow ? { allow } : { allow, reason: `${q.user} is not a member` }));
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }
  stop(): Promise<void> { this.server.closeAllConnections(); return new Promise((r) => this.server.close(() => r())); }
}

/**
 * A phoenix client socket for a token; resolves once open. Heartbeats every
 * 3 s (hosts here close a session idle for 10 s): the phoenix client drops its
 * own connection when a heartbeat is not answered before the next one, and a
 * host taking over every shard of the other one (key rotation restarts h1)
 * can keep its worker busy for more than the 500 ms this used to allow.
 */
function phoenix(url: string, tok: string | (() => string)): Promise<Socket> {
  const s = new Socket(`${url}/socket`, { transport: WebSocket as any, params: typeof tok === 'string' ? { token: tok } : () => ({ token: tok() }), heartbeatIntervalMs: 3000, reconnectAfterMs: () => 60000 });
  return new Promise((resolve, reject) => {
    s.onOpen(() => resolve(s));
    s.onError(() => { s.disconnect(); reject(new Error('phoenix socket failed to open')); });
    s.connect();
  });
}

function joinCh(s: Socket, topic: string, params: object = {}): Promise<{ ch: any; res: any }> {
  const ch = s.channel(topic, params);
  return new Promise((resolve, reject) => {
    ch.join().receive('ok', (res: unknown) => resolve({ ch, res })).receive('error', (res: unknown) => reject(Object.assign(new Error('join refused'), { res }))).receive('timeout', () => reject(new Error('join timed out')));
  });
}

function push(ch: any, event: string, payload: object): Promise<{ status: string; res: any }> {
  return new Promise((resolve) => {
    ch.push(event, payload).receive('ok', (res: unknown) => resolve({ status: 'ok', res })).receive('error', (res: unknown) => resolve({ status: 'error', res })).receive('timeout', () => resolve({ status: 'timeout', res: null }));
  });
}

async function refusedUpgrade(url: string, tok: string): Promise<{ statusCode: number; code: string; reason: string }> {
  try {
    const c = await RawClient.open(url, tok);
    c.close();
  } catch (err) {
    return err as { statusCode: number; code: string; reason: string };
  }
  throw new Error('the upgrade was accepted');
}

describe('auth: JWT, room authorization, expiry and refresh, revocation (issue 16)', function () {
  this.timeout(60000);
  const lab = useLab();
  const nats = withNats();
  const tmp = withTempDir('sandbar-auth-');
  let app: App;
  let dir: string;
  let rs1: TestKey, rs2: TestKey, es: TestKey, ed: TestKey, url1: TestKey;
  let h1: SandbarHost;
  let h2: SandbarHost;

  /** h1's config: RS256 keys k1 and k2 (or k2 only), ES256 by PEM file, EdDSA by JWKS file, the JWKS URL, rooms. */
  function config(name: string, opts: { withK1: boolean; proxyUrl: string; failOpen: boolean }): string {
    writeFileSync(join(dir, 'es.pem'), es.pem);
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [ed.jwk] }));
    const k1 = opts.withK1 ? keyToml('k1', 'RS256', { publicKey: rs1.pem }) : '';
    const file = join(dir, `${name}.toml`);
    writeFileSync(file, `
[auth]
audience = ["${AUD}"]
jwksFile = "${join(dir, 'jwks.json')}"
jwksUrl = "${app.url}/jwks"
jwksRefreshMs = 1000
expiryWarningMs = 2000
${k1}
${keyToml('k2', 'RS256', { publicKey: rs2.pem })}
${keyToml('es', 'ES256', { file: join(dir, 'es.pem') })}
[authz]
proxyUrl = "${opts.proxyUrl}"
proxyToken = "proxy-secret"
proxyTimeoutMs = 300
proxyFailOpen = ${opts.failOpen}
rooms = [
  { match = "open-*", join = "public" },
  { match = "team-*", join = "claims" },
  { match = "news-*", join = "public", history = "claims", publish = "claims" },
  { match = "proxy-*", join = "proxy" },
  { match = "shadow", join = "public", presence = "claims" },
]
`);
    return file;
  }

  const flags = (hostId: string, file: string) => ({ config: file, hostId, 'authz.default': 'deny', 'session.idleTimeoutMs': 10000 });

  before(async () => {
    dir = tmp.path;
    app = new App();
    await app.start();
    [rs1, rs2, es, ed, url1] = await Promise.all([makeKey('RS256', 'k1'), makeKey('RS256', 'k2'), makeKey('ES256', 'es'), makeKey('EdDSA', 'ed'), makeKey('ES256', 'url-1')]);
    app.jwks = [url1.jwk];
    [h1, h2] = await Promise.all([
      lab.startHost({ nats: nats.url, workers: 1, flags: flags('h1', config('h1', { withK1: true, proxyUrl: `${app.url}/authorize`, failOpen: false })) }),
      // h2: its proxy is dead (nothing listens on port 9 of loopback) and it fails open.
      lab.startHost({ nats: nats.url, workers: 1, flags: flags('h2', config('h2', { withK1: true, proxyUrl: 'http://127.0.0.1:9/authorize', failOpen: true })) }),
    ]);
  });
  after(async () => { await app?.stop(); });

  const std = { aud: AUD };

  it('accepts tokens of every algorithm: HS256/384/512 (auth.secret), RS256 and ES256 (auth.keys), EdDSA (JWKS file), ES256 (JWKS URL)', async () => {
    const tokens: [string, string][] = [
      ['HS256', await jwt({ alg: 'HS256', secret: SECRET }, 'u-hs256', 60, std)],
      ['HS384', await jwt({ alg: 'HS384', secret: SECRET }, 'u-hs384', 60, std)],
      ['HS512', await jwt({ alg: 'HS512', secret: SECRET }, 'u-hs512', 60, std)],
      ['RS256', await jwt(rs2, 'u-rs256', 60, std)],
      ['ES256', await jwt(es, 'u-es256', 60, std)],
      ['EdDSA', await jwt(ed, 'u-eddsa', 60, std)],
      ['ES256 (url)', await jwt(url1, 'u-url', 60, std)],
    ];
    for (const [alg, tok] of tokens) {
      const s = await phoenix(h1.url, tok);
      const { res } = await joinCh(s, 'sandbar:session');
      expect(res.user, alg).to.match(/^u-/);
      s.disconnect();
    }
  });

  it('refuses each bad token before the upgrade with 403 and its reason; the log says why, never the token', async () => {
    const cases: [string, string, string, RegExp][] = [
      ['malformed', 'not.a.jwt!', 'SANDBAR_ERR_AUTH_INVALID', /not a JWT/],
      ['expired', await jwt(rs2, 'ann', -60, std), 'SANDBAR_ERR_AUTH_EXPIRED', /expired at/],
      ['wrong audience', await jwt(rs2, 'ann', 60, { aud: 'someone-else' }), 'SANDBAR_ERR_AUTH_INVALID', /aud/],
      ['unknown kid', await jwt({ ...rs2, kid: 'nobody' }, 'ann', 60, std), 'SANDBAR_ERR_AUTH_INVALID', /no configured key has kid "nobody"/],
      ['bad signature', await jwt({ ...rs1, kid: 'k2' }, 'ann', 60, std), 'SANDBAR_ERR_AUTH_INVALID', /signature does not match/],
      ['alg none', unsigned('ann', 60), 'SANDBAR_ERR_AUTH_INVALID', /"none"/],
      ['HS256 signed with the RSA public key', await jwt({ alg: 'HS256', secret: rs2.pem, kid: 'k2' }, 'admin', 60, std), 'SANDBAR_ERR_AUTH_INVALID', /is for RS256/],
    ];
    const from = h1.lines.length;
    for (const [name, tok, code, reason] of cases) {
      const e = await refusedUpgrade(h1.url, tok);
      expect(e.statusCode, name).to.equal(403);
      expect(e.code, name).to.equal(code);
      expect(e.reason, name).to.match(reason);
    }
    // At most 5 lines a second one by one (the rest summed up): the first case's is one of them.
    const line = await h1.waitFor((l) => l.msg === 'token refused before the upgrade', 5000, from);
    expect(line).to.deep.include({ code: 'SANDBAR_ERR_AUTH_INVALID', transport: 'websocket' });
    expect(String(line.reason)).to.match(/not a JWT/);
    const logged = JSON.stringify(h1.lines.slice(from));
    for (const [, tok] of cases) expect(logged).to.not.include(tok.split('.')[2] || tok);
    // LongPoll refuses the same way (its answer is HTTP 200 with status 403 in the body, as Phoenix does).
    const lp = await fetch(`${h1.url.replace('ws:', 'http:')}/socket/longpoll?vsn=2.0.0&token=${encodeURIComponent(cases[1]![1])}`);
    expect(await lp.json()).to.deep.include({ status: 403 }).and.have.nested.property('error.code', 'SANDBAR_ERR_AUTH_EXPIRED');
  });

  it('fetches the JWKS URL and refreshes it: a key added there is accepted, a key removed is refused', async () => {
    const url2 = await makeKey('EdDSA', 'url-2');
    const before = app.jwksFetches;
    app.jwks = [url2.jwk];
    // auth.jwksRefreshMs = 1000: the next refresh picks it up.
    await h1.waitFor((l) => l.msg === 'auth.jwksUrl: key set changed' && (l.added as string[]).includes('url-2'), 5000);
    expect(app.jwksFetches).to.be.greaterThan(before);
    const s = await phoenix(h1.url, await jwt(url2, 'u-url2', 60, std));
    s.disconnect();
    expect((await refusedUpgrade(h1.url, await jwt(url1, 'u-url1', 60, std))).reason).to.match(/no configured key has kid "url-1"/);
  });

  it('a user without the right claim cannot join a private room, read its history or publish into it; with it, can', async () => {
    const member = await phoenix(h1.url, await jwt(rs2, 'member', 60, { ...std, rooms: ['team-*', 'news-*'] }));
    const stranger = await phoenix(h1.url, await jwt(rs2, 'stranger', 60, std));
    // A private room (join = claims).
    const { ch: mch } = await joinCh(member, 'room:team-red', {});
    expect((await push(mch, 'msg', { body: 'secret plan' })).status).to.equal('ok');
    const refused = await joinCh(stranger, 'room:team-red', { last_seq: 0 }).catch((e: { res: { code: string; reason: string } }) => e.res);
    expect(refused).to.deep.include({ code: 'SANDBAR_ERR_FORBIDDEN' });
    expect((refused as { reason: string }).reason).to.match(/stranger may not join room:team-red.*rooms claim/);
    // A public room whose history and publishing need the claim.
    const { ch: news } = await joinCh(stranger, 'room:news-1', {});
    const denied = await push(news, 'msg', { body: 'spam' });
    expect(denied.status).to.equal('error');
    expect(denied.res.code).to.equal('SANDBAR_ERR_FORBIDDEN');
    const { ch: mnews } = await joinCh(member, 'room:news-1', {});
    expect((await push(mnews, 'msg', { body: 'headline' })).status).to.equal('ok');
    const hist = await joinCh(stranger, 'room:news-1', { last_seq: 0 }).catch((e: { res: { code: string; reason: string } }) => e.res);
    expect(hist).to.deep.include({ code: 'SANDBAR_ERR_FORBIDDEN' });
    expect((hist as { reason: string }).reason).to.match(/may not read the history of room:news-1/);
    const replayed: string[] = [];
    const again = member.channel('room:news-1', { last_seq: 0 });
    again.on('msg', (m: { body: string }) => replayed.push(m.body));
    await new Promise((r) => again.join().receive('ok', r));
    await sleep(200);
    expect(replayed).to.include('headline');
    // No rule matches: authz.default = deny. user: topics stay own-user only.
    expect(await joinCh(member, 'room:elsewhere').catch((e: { res: { code: string } }) => e.res.code)).to.equal('SANDBAR_ERR_FORBIDDEN');
    expect(await joinCh(member, 'user:stranger').catch((e: { res: { code: string } }) => e.res.code)).to.equal('SANDBAR_ERR_FORBIDDEN');
    member.disconnect();
    stranger.disconnect();
  });

  it('a subscription token (join param token) for one room opens it; a user the presence policy refuses joins hidden', async () => {
    const s = await phoenix(h1.url, await jwt(rs2, 'guest', 60, std));
    const sub = await jwt(rs2, 'guest', 60, { ...std, room: 'team-blue' });
    const { ch } = await joinCh(s, 'room:team-blue', { token: sub });
    expect((await push(ch, 'msg', { body: 'hi' })).status).to.equal('ok');
    const wrong = await jwt(rs2, 'guest', 60, { ...std, room: 'team-green' });
    expect(await joinCh(s, 'room:team-blue-2', { token: wrong }).catch((e: { res: { reason: string } }) => e.res.reason)).to.match(/another room/);
    // shadow: presence needs the claim. The watcher has it and sees only itself; the guest joins hidden
    // and sees the watcher, never itself.
    const watcher = await phoenix(h1.url, await jwt(rs2, 'watcher', 60, { ...std, rooms: { presence: ['shadow'] } }));
    const wch = watcher.channel('room:shadow', {});
    const states: object[] = [];
    wch.on('presence_state', (p: object) => states.push(p));
    const diffs: object[] = [];
    wch.on('presence_diff', (d: object) => diffs.push(d));
    await new Promise((r) => wch.join().receive('ok', r));
    const gch = s.channel('room:shadow', {});
    const gStates: object[] = [];
    gch.on('presence_state', (p: object) => gStates.push(p));
    await new Promise((r) => gch.join().receive('ok', r));
    await sleep(300);
    expect(Object.keys(states[0]!)).to.deep.equal(['watcher']);
    expect(JSON.stringify(diffs)).to.not.include('guest');
    expect(JSON.stringify(gStates)).to.not.include('guest');
    expect(JSON.stringify(gStates)).to.include('watcher');
    s.disconnect();
    watcher.disconnect();
  });

  it('the proxy allows and denies as the application says; a slow, garbage or failing proxy refuses (fail-closed), a dead one allows where fail-open', async () => {
    const ok = await phoenix(h1.url, await jwt(rs2, 'ok-alice', 60, std));
    const no = await phoenix(h1.url, await jwt(rs2, 'mallory', 60, std));
    const t0 = app.asked.length;
    await joinCh(ok, 'room:proxy-1', { device: 'phone' });
    const denied = await joinCh(no, 'room:proxy-1').catch((e: { res: { code: string; reason: string } }) => e.res);
    expect(denied).to.deep.include({ code: 'SANDBAR_ERR_FORBIDDEN' });
    expect((denied as { reason: string }).reason).to.match(/mallory is not a member/);
    expect(app.asked.slice(t0)).to.deep.include({ user: 'ok-alice', room: 'proxy-1', action: 'join', params: { device: 'phone' } });
    // Cached: a second join within authz.proxyCacheMs asks nobody.
    const n = app.asked.length;
    await joinCh(ok, 'room:proxy-1', { device: 'laptop' });
    expect(app.asked.length).to.equal(n);
    for (const room of ['proxy-slow', 'proxy-garbage', 'proxy-500']) {
      const r = await joinCh(ok, `room:${room}`).catch((e: { res: { code: string; reason: string } }) => e.res);
      expect(r, room).to.deep.include({ code: 'SANDBAR_ERR_FORBIDDEN' });
      expect((r as { reason: string }).reason, room).to.match(/authorization proxy failed/);
    }
    await h1.waitFor((l) => l.msg === 'authorization proxy failed: refusing (fail-closed)');
    // h2's proxy is dead and it fails open.
    const open = await phoenix(h2.url, await jwt(rs2, 'mallory', 60, std));
    await joinCh(open, 'room:proxy-1');
    await h2.waitFor((l) => l.msg === 'authorization proxy failed: allowing (authz.proxyFailOpen)');
    for (const s of [ok, no, open]) s.disconnect();
  });

  it('a short-lived token gets token_expiring, refreshes on sandbar:session and keeps working; one that does not is closed at exp with 4401', async () => {
    const ttl = 4;
    const refresher = await phoenix(h1.url, await jwt(rs2, 'fresh', ttl, std));
    const lazy = await RawClient.open(h1.url, await jwt(rs2, 'lazy', ttl, std));
    const start = Date.now();
    const { ch: sess } = await joinCh(refresher, 'sandbar:session');
    const { ch: echo } = await joinCh(refresher, 'echo:x');
    const warned = new Promise<{ exp: number; in_ms: number }>((r) => sess.on('token_expiring', r));
    const w = await warned;
    // auth.expiryWarningMs = 2000 before exp (the wheel ticks at 1 s).
    expect(w.in_ms).to.be.within(0, 2100);
    const r = await push(sess, 'refresh', { token: await jwt(rs2, 'fresh', 60, std) });
    expect(r.status).to.equal('ok');
    expect(r.res.exp).to.be.greaterThan(w.exp);
    // Another user's token is refused and changes nothing.
    const other = await push(sess, 'refresh', { token: await jwt(rs2, 'someone', 60, std) });
    expect(other.res.code).to.equal('SANDBAR_ERR_AUTH_INVALID');
    // The lazy one got its warning on the phoenix topic and is closed at exp.
    await lazy.waitFor((f) => f[2] === 'phoenix' && f[3] === 'token_expiring', 5000);
    const code = await lazy.closed;
    expect(code).to.equal(4401);
    expect(lazy.closeReason).to.match(/SANDBAR_ERR_AUTH_EXPIRED/);
    expect(Date.now() - start).to.be.at.least(ttl * 1000 - 1500);
    await sleep(1500);
    expect((await push(echo, 'ping', { n: 1 })).status).to.equal('ok');
    refresher.disconnect();
  });

  it('revocation closes every session of the user with 4403 on every host, and refuses the tokens issued before it', async () => {
    const tok = await jwt(rs2, 'victim', 600, std);
    const [a, b, bystander] = await Promise.all([RawClient.open(h1.url, tok), RawClient.open(h2.url, tok), RawClient.open(h1.url, await jwt(rs2, 'bystander', 600, std))]);
    const nc = await connect({ servers: nats.url });
    revokeUser(nc, new Subjects('local'), 'victim', 'account closed');
    await nc.flush();
    await nc.close();
    expect(await a.closed).to.equal(4403);
    expect(await b.closed).to.equal(4403);
    expect(a.closeReason).to.match(/revoked: account closed/);
    expect((await refusedUpgrade(h1.url, tok)).code).to.equal('SANDBAR_ERR_AUTH_REVOKED');
    await sleep(1100);
    const fresh = await RawClient.open(h1.url, await jwt(rs2, 'victim', 600, std));
    expect(reply(await bystander.request(null, 'phoenix', 'heartbeat', {})).status).to.equal('ok');
    fresh.close();
    bystander.close();
  });

  it('key rotation: a host restarted without kid k1 refuses k1 and accepts k2, while a k1 session on the other host goes on until its exp', async () => {
    const t0 = Date.now();
    const old = await phoenix(h2.url, await jwt(rs1, 'old-key', 30, std));
    const { ch } = await joinCh(old, 'echo:rot');
    const closed = new Promise<number>((r) => old.onClose((e: { code: number }) => r(e.code)));
    await h1.restart({ flags: flags('h1', config('h1b', { withK1: false, proxyUrl: `${app.url}/authorize`, failOpen: false })) });
    expect((await refusedUpgrade(h1.url, await jwt(rs1, 'new', 60, std))).reason).to.match(/no configured key has kid "k1"/);
    const fresh = await phoenix(h1.url, await jwt(rs2, 'new', 60, std));
    // The restart takes a few seconds; the old session has 30 s.
    expect((await push(ch, 'ping', {})).status).to.equal('ok');
    expect(await closed).to.equal(4401);
    expect(Date.now() - t0).to.be.at.least(29_000);
    fresh.disconnect();
    old.disconnect();
  });
});
