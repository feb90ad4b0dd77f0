import { expect } from 'chai';
import { Socket } from 'phoenix';
import WebSocket from 'ws';
import { RawClient, token, withHost } from '../support/index.js';
import { mintToken } from '../../src/auth/token.js';

describe('host: phoenix client end to end', function () {
  this.timeout(30000);
  const { host } = withHost({ workers: 2 });

  function phoenixSocket(opts: Record<string, unknown>): Socket {
    return new Socket(`${host.url}/socket`, { transport: WebSocket as any, reconnectAfterMs: () => 60000, ...opts });
  }

  it('the official phoenix client joins echo:x with a token, gets replies, and its heartbeats are answered', async () => {
    const socket = phoenixSocket({ params: { token: token('alice') }, heartbeatIntervalMs: 100 });
    const heartbeatReplies: unknown[] = [];
    socket.onMessage((m: { topic: string; event: string; payload: { status: string } }) => {
      if (m.topic === 'phoenix' && m.event === 'phx_reply') heartbeatReplies.push(m.payload.status);
    });
    socket.connect();
    const ch = socket.channel('echo:x', {});
    const joined = await new Promise<{ session: string }>((resolve, reject) => {
      ch.join().receive('ok', resolve).receive('error', reject).receive('timeout', () => reject(new Error('join timeout')));
    });
    expect(joined.session).to.match(/^h1\.[01]\./);
    const reply = await new Promise((resolve, reject) => {
      ch.push('hello', { n: 42, text: 'hé' }).receive('ok', resolve).receive('error', reject).receive('timeout', () => reject(new Error('push timeout')));
    });
    expect(reply).to.deep.equal({ n: 42, text: 'hé' });
    const deadline = Date.now() + 5000;
    while (heartbeatReplies.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(heartbeatReplies.slice(0, 3)).to.deep.equal(['ok', 'ok', 'ok']);
    socket.disconnect();
  });

  it('accepts the token as the phoenix 1.8 authToken (bearer sub-protocol)', async () => {
    const socket = phoenixSocket({ authToken: token('bob') });
    socket.connect();
    const ch = socket.channel('echo:y', {});
    const ok = await new Promise((resolve, reject) => { ch.join().receive('ok', resolve).receive('error', reject).receive('timeout', () => reject(new Error('timeout'))); });
    expect(ok).to.have.property('session');
    socket.disconnect();
  });

  it('binary pushes are echoed as binary replies', async () => {
    const c = await RawClient.open(host.url, token('carol'));
    await c.join('echo:b', {}, '7');
    const topic = Buffer.from('echo:b'); const event = Buffer.from('bin'); const jr = Buffer.from('7'); const ref = Buffer.from('8');
    const payload = Buffer.from([0, 1, 2, 250, 255]);
    c.sendRaw(Buffer.concat([Buffer.from([0, jr.length, ref.length, topic.length, event.length]), jr, ref, topic, event, payload]));
    const deadline = Date.now() + 5000;
    while (c.binary.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const b = c.binary[0]!;
    expect(b[0]).to.equal(1); // reply kind
    const [jrs, refs, ts, ss] = [b[1]!, b[2]!, b[3]!, b[4]!];
    let o = 5;
    expect(b.subarray(o, (o += jrs)).toString()).to.equal('7');
    expect(b.subarray(o, (o += refs)).toString()).to.equal('8');
    expect(b.subarray(o, (o += ts)).toString()).to.equal('echo:b');
    expect(b.subarray(o, (o += ss)).toString()).to.equal('ok');
    expect([...b.subarray(o)]).to.deep.equal([...payload]);
    c.close();
  });

  for (const [name, tok, code] of [
    ['no token', null, 'SANDBAR_ERR_AUTH_MISSING'],
    ['a token signed with another secret', mintToken('other-secret', 'mallory', 60), 'SANDBAR_ERR_AUTH_INVALID'],
    ['an expired token', mintToken('test-secret', 'alice', 1, Date.now() - 60000), 'SANDBAR_ERR_AUTH_EXPIRED'],
    ['a tampered token', token('alice').replace(/^./, (ch) => (ch === 'e' ? 'f' : 'e')), 'SANDBAR_ERR_AUTH_INVALID'],
  ] as const) {
    it(`refuses the upgrade with 403 for ${name}`, async () => {
      const res = await fetch(`http://127.0.0.1:${host.port}/socket/websocket?vsn=2.0.0${tok ? `&token=${tok}` : ''}`, {
        headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' },
      }).catch((e) => e);
      // fetch refuses upgrades itself on some Node versions; fall back to ws.
      if (res instanceof Response) {
        expect(res.status).to.equal(403);
        const body = await res.json() as { error: { code: string } };
        expect(body.error.code).to.equal(code);
      } else {
        const err = await RawClient.open(host.url, tok).then(() => null, (e: { statusCode?: number }) => e);
        expect(err?.statusCode).to.equal(403);
      }
      const rejected = await RawClient.open(host.url, tok).then(() => null, (e: { statusCode?: number }) => e);
      expect(rejected?.statusCode).to.equal(403);
    });
  }

  it('/metrics: sessions per worker sum to the real number of open sessions, under load', async () => {
    const sum = async () => {
      const text = await (await fetch(`http://127.0.0.1:${host.adminPort}/metrics`)).text();
      return [...text.matchAll(/^sandbar_sessions\{[^}]*\} (\d+)$/gm)].map((m) => Number(m[1]));
    };
    const settle = async (want: (n: number) => boolean) => {
      const deadline = Date.now() + 8000;
      let per: number[] = [];
      while (Date.now() < deadline) {
        per = await sum();
        if (want(per.reduce((a, b) => a + b, 0))) return per;
        await new Promise((r) => setTimeout(r, 200));
      }
      return per;
    };
    const { openMany } = await import('../support/clients.js');
    // Baseline: two readings a ping interval apart that agree.
    let base = -1;
    for (let prev = -2; base !== prev;) {
      prev = base;
      await new Promise((r) => setTimeout(r, 1100));
      base = (await sum()).reduce((a, b) => a + b, 0);
    }
    const clients = await openMany(300, host.url, (i) => token(`load${i}`));
    // Load: every client pushes while the count is read.
    await Promise.all(clients.map((c) => c.join('echo:load')));
    const busy = clients.map((c) => c.request('1', 'echo:load', 'x', {}).catch(() => null));
    const per = await settle((n) => n === base + 300);
    await Promise.all(busy);
    expect(per).to.have.length(2);
    expect(per.reduce((a, b) => a + b, 0)).to.equal(base + 300);
    // rr spreads them; node's round-robin hands a connection to a worker that is free, so a busy one gets fewer (92 of 300 seen on a loaded machine)
    expect(Math.min(...per)).to.be.greaterThan(60);
    for (const c of clients) c.close();
  });

  it('refuses a protocol version other than 2.0.0 with 400', async () => {
    const err = await RawClient.open(host.url, null, { query: `vsn=1.0.0&token=${token('alice')}` }).then(() => null, (e: { statusCode?: number }) => e);
    expect(err?.statusCode).to.equal(400);
  });

  it('serves /health/live, /health/ready and /metrics with a line per worker', async () => {
    const live = await fetch(`http://127.0.0.1:${host.port}/health/live`);
    expect(live.status).to.equal(200);
    const ready = await fetch(`http://127.0.0.1:${host.port}/health/ready`);
    expect(ready.status).to.equal(200);
    const c = await RawClient.open(host.url, token('dave'));
    await c.join('echo:m');
    let text = '';
    const deadline = Date.now() + 5000;
    // Stats arrive with the primary's pings (cluster.workerPingMs).
    while (Date.now() < deadline) {
      text = await (await fetch(`http://127.0.0.1:${host.adminPort}/metrics`)).text();
      const sum = [...text.matchAll(/^sandbar_sessions\{[^}]*\} (\d+)$/gm)].reduce((a, m) => a + Number(m[1]), 0);
      if (sum >= 1) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(text).to.match(/^sandbar_sessions\{host="h1",worker="0"\} \d+$/m);
    expect(text).to.match(/^sandbar_sessions\{host="h1",worker="1"\} \d+$/m);
    const sum = [...text.matchAll(/^sandbar_sessions\{[^}]*\} (\d+)$/gm)].reduce((a, m) => a + Number(m[1]), 0);
    expect(sum).to.be.at.least(1);
    c.close();
  });
});
