/**
 * Authentication and authorization (issue 7, item 2), beyond the 403 cases of
 * host.test.ts: a token names one user and nothing a client sends changes
 * that; NATS with users and permissions as docs/security.md gives them, wrong
 * credentials stop start-up with exit 69; TLS on the client listener and on
 * the NATS link.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { connect } from '@nats-io/transport-node';
import { RawClient, token, useLab, withHost, withNats, withTempDir, type Frame } from '../support/index.js';

type Reply = { status: string; response: { code?: string; seq?: number } };
const reply = (f: Frame) => f[4] as Reply;

const CLUSTER = 'sec';
const PASS = { sandbar: 'cluster-pw-1', admin: 'admin-pw-2', guest: 'guest-pw-3' };

/**
 * The nats-server authorization block of docs/security.md, for cluster.name = "sec"
 * (kept identical: the doc's block is this one with the names filled in).
 */
function natsAuthConf(): string {
  return `
authorization {
  users = [
    { user: sandbar, password: "${PASS.sandbar}", permissions: {
        publish:   { allow: ["sandbar.${CLUSTER}.>", "$JS.API.>", "$KV.sandbar_${CLUSTER}_shards.>", "$SRV.>", "_INBOX.>"] }
        subscribe: { allow: ["sandbar.${CLUSTER}.>", "$SRV.>", "_INBOX.>"] } } }
    { user: admin, password: "${PASS.admin}", permissions: {
        publish:   { allow: ["sandbar.${CLUSTER}.admin.>", "$SRV.>"] }
        subscribe: { allow: ["_INBOX.>"] } } }
    { user: guest, password: "${PASS.guest}", permissions: {
        publish:   { allow: ["guest.>"] }
        subscribe: { allow: ["guest.>", "_INBOX.>"] } } }
  ]
}
`;
}

describe('security: tokens name one user; nothing a client sends changes that', function () {
  this.timeout(30000);
  const { host } = withHost({ workers: 2 });

  it("Bob's token cannot join user:alice, under any spelling of the topic, nor act for her", async () => {
    const bob = await RawClient.open(host.url, token('bob'));
    for (const topic of ['user:alice', 'user:alice ', 'user:Alice', 'user:alice\u0000', 'user:bob:alice', 'user:../alice']) {
      const code = reply(await bob.join(topic, {})).response.code;
      expect(['SANDBAR_ERR_FORBIDDEN', 'SANDBAR_ERR_INVALID_ID'], topic).to.include(code);
    }
    // A join with a forged user in its payload is still Bob's.
    expect(reply(await bob.join('user:bob', { user: 'alice', u: 'alice' }, 'b')).status).to.equal('ok');
    const alice = await RawClient.open(host.url, token('alice'));
    await alice.join('user:alice', {}, 'a');
    // A dm that claims to come from carol arrives from bob.
    expect(reply(await bob.request('b', 'user:bob', 'dm', { to: 'alice', from: 'carol', body: 'hi' })).status).to.equal('ok');
    const dm = await alice.waitFor((f) => f[3] === 'dm');
    expect((dm[4] as { from: string }).from).to.equal('bob');
    // Pushes on alice's topic with bob's join_ref (or none) are unmatched for bob's session.
    expect(reply(await bob.request('a', 'user:alice', 'ack', { seq: 1 })).response.code).to.equal('SANDBAR_ERR_UNMATCHED_TOPIC');
    expect(reply(await bob.request(null, 'user:alice', 'dm', { to: 'bob', body: 'x' })).response.code).to.equal('SANDBAR_ERR_UNMATCHED_TOPIC');
    // Alice's inbox is hers: her join sees only the one dm.
    expect(alice.frames.filter((f) => f[3] === 'dm')).to.have.length(1);
    bob.close();
    alice.close();
  });

  it('a token whose payload is re-signed by nobody (alg-none style, empty or truncated signature, swapped payload) is refused with 403', async () => {
    const good = token('alice');
    const [, sig] = good.split('.');
    const other = token('mallory').split('.')[0];
    const forged = [`${other}.${sig}`, `${good.split('.')[0]}.`, `${good.split('.')[0]}`, good.slice(0, -2), `${Buffer.from('{"u":"alice","exp":9999999999}').toString('base64url')}.${sig}`];
    for (const t of forged) {
      const err = await RawClient.open(host.url, t).then(() => null, (e: { statusCode?: number; code?: string }) => e);
      expect(err?.statusCode, t).to.equal(403);
      expect(err?.code, t).to.equal('SANDBAR_ERR_AUTH_INVALID');
    }
  });
});

describe('security: NATS with users and permissions (docs/security.md)', function () {
  this.timeout(60000);
  const tmp = withTempDir('sandbar-sec-');
  before(() => writeFileSync(join(tmp.path, 'auth.conf'), natsAuthConf()));
  const lab = useLab();
  const nats = withNats({ args: () => ['-c', join(tmp.path, 'auth.conf')] });

  const hostFlags = (user: string | null, pass: string | null) => ({
    'cluster.name': CLUSTER,
    ...(user !== null ? { 'nats.user': user } : {}),
    ...(pass !== null ? { 'nats.pass': pass } : {}),
  });

  it('a host with the cluster user serves sessions (dm acknowledged and delivered), and the admin user can query it while a guest cannot', async () => {
    const host = await lab.startHost({ nats: nats.url, workers: 2, flags: hostFlags('sandbar', PASS.sandbar) });
    try {
      const a = await RawClient.open(host.url, token('ann'));
      const b = await RawClient.open(host.url, token('ben'));
      expect(reply(await a.join('user:ann', {}, 'a')).status).to.equal('ok');
      expect(reply(await b.join('user:ben', {}, 'b')).status).to.equal('ok');
      expect(reply(await a.request('a', 'user:ann', 'dm', { to: 'ben', body: 'over NATS with permissions' })).status).to.equal('ok');
      await b.waitFor((f) => f[3] === 'dm');
      a.close();
      b.close();

      const admin = await connect({ servers: nats.url, user: 'admin', pass: PASS.admin });
      const status = await admin.request(`sandbar.${CLUSTER}.admin.status`, '', { timeout: 3000 });
      expect((status.json() as { hosts: unknown[] }).hosts).to.have.length(1);
      await admin.close();

      const guest = await connect({ servers: nats.url, user: 'guest', pass: PASS.guest });
      const denied = await guest.request(`sandbar.${CLUSTER}.admin.status`, '', { timeout: 2000 }).then(() => null, (e: Error) => e);
      expect(denied, 'guest may not reach the admin subjects').to.be.instanceOf(Error);
      // Nor listen in on the cluster's traffic.
      const errs: Error[] = [];
      void (async () => { for await (const s of guest.status()) if (s.type === 'error') errs.push(s.error as Error); })();
      guest.subscribe(`sandbar.${CLUSTER}.>`);
      await guest.flush();
      await new Promise((r) => setTimeout(r, 200));
      expect(errs.map((e) => e.message).join(' ')).to.match(/permission/i);
      await guest.close();
    } finally {
      await host.stop();
    }
  });

  for (const [name, user, pass] of [['a wrong password', 'sandbar', 'wrong'], ['no credentials', null, null], ['an unknown user', 'nobody', 'x']] as const) {
    it(`start-up with ${name} fails at once with exit 69 and SANDBAR_ERR_NATS_AUTH`, async () => {
      const host = await lab.startHost({ nats: nats.url, workers: 1, flags: hostFlags(user, pass), noWait: true });
      try {
        const { code } = await host.exit;
        expect(code).to.equal(69);
        expect(host.stderr()).to.match(/SANDBAR_ERR_NATS_AUTH: NATS at nats:\/\/127\.0\.0\.1:\d+ refused the credentials/);
        // The password is never printed.
        if (pass) expect(host.stderr() + JSON.stringify(host.lines)).to.not.include(pass === 'x' ? 'pass=x' : pass);
      } finally {
        await host.stop();
      }
    });
  }
});

describe('security: TLS on the client listener and on the NATS link', function () {
  this.timeout(60000);
  const tmp = withTempDir('sandbar-tls-');
  const lab = useLab();
  let dir: string;
  before(async () => {
    dir = tmp.path;
    // A CA, and a certificate for 127.0.0.1 signed by it (used by both servers).
    const ssl = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    ssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=sandbar-test-ca', '-keyout', 'ca.key', '-out', 'ca.pem']);
    ssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', 'key.pem', '-out', 'req.csr']);
    writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName = IP:127.0.0.1, DNS:localhost\n');
    ssl(['x509', '-req', '-in', 'req.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', 'ext.cnf', '-out', 'cert.pem']);
    writeFileSync(join(dir, 'tls.conf'), `tls { cert_file: "${join(dir, 'cert.pem')}", key_file: "${join(dir, 'key.pem')}" }\n`);
  });
  const nats = withNats({ args: () => ['-c', join(dir, 'tls.conf')] });

  it('with nats.tlsCaFile the host reaches a TLS-only NATS; with http.tlsCertFile/KeyFile clients connect over wss:// and plain ws:// is refused', async () => {
    const host = await lab.startHost({
      nats: nats.url, workers: 1,
      flags: { 'nats.tlsCaFile': join(dir, 'ca.pem'), 'http.tlsCertFile': join(dir, 'cert.pem'), 'http.tlsKeyFile': join(dir, 'key.pem') },
    });
    try {
      const ws = new WebSocket(`wss://127.0.0.1:${host.port}/socket/websocket?vsn=2.0.0&token=${token('tls')}`, { ca: readFileSync(join(dir, 'ca.pem')) });
      await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
      const got = new Promise<Frame>((resolve) => ws.on('message', (d: Buffer) => {
        const f = JSON.parse(d.toString()) as Frame;
        if (f[3] === 'phx_reply') resolve(f);
      }));
      ws.send(JSON.stringify(['1', '1', 'user:tls', 'phx_join', {}]));
      expect(reply(await got), 'join over wss').to.deep.include({ status: 'ok' });
      ws.close();
      const plain = await RawClient.open(`ws://127.0.0.1:${host.port}`, token('tls')).then(() => 'open', () => 'refused');
      expect(plain).to.equal('refused');
    } finally {
      await host.stop();
    }
  });

  it('without the CA the host does not trust the NATS certificate: exit 69 and SANDBAR_ERR_NATS_AUTH naming TLS', async () => {
    const host = await lab.startHost({ nats: nats.url, workers: 1, noWait: true });
    try {
      expect((await host.exit).code).to.equal(69);
      expect(host.stderr()).to.match(/SANDBAR_ERR_NATS_AUTH: .* failed the TLS handshake/);
    } finally {
      await host.stop();
    }
  });
});
