import { expect } from 'chai';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { exportPKCS8 } from 'jose';
import { TokenVerifier } from '../../src/auth/verifier.js';
import { loadConfig } from '../../src/config/index.js';
import { keyToml, makeKey } from '../support/auth-keys.js';
import { RawClient, SECRET, freePort, runSandbar, token, useLab, withTempDir } from '../support/index.js';

const run = (args: string[], env: Record<string, string> = {}) => runSandbar(args, { env });

describe('cli: sandbar check-config | token | start failures', function () {
  this.timeout(30000);
  const lab = useLab();
  const tmp = withTempDir('sandbar-cli-');
  let dir: string;
  before(() => { dir = tmp.path; });

  it('check-config accepts the shipped config/sandbar.toml', async () => {
    const r = await run(['check-config', '--config', 'config/sandbar.toml']);
    expect(r.code).to.equal(0);
    expect(JSON.parse(r.stdout).session.idleTimeoutMs).to.equal(60000);
    expect(r.stdout).to.not.include('dev-secret');
  });

  for (const [name, file, env, flags, expected] of [
    ['an unknown key in the file', '[session]\nidleTimeoutMz = 5\n', {}, [], /session\.idleTimeoutMz/],
    ['a wrong type in the file', '[http]\nport = "eighty"\n', {}, [], /http\.port = "eighty".*expected an integer/],
    ['an out-of-range value', '[session]\nidleTimeoutMs = 5\n', {}, [], /session\.idleTimeoutMs = 5.*from 100 to 3600000/],
    ['a bad value in the environment', '', { SANDBAR_CLUSTER_WORKERS: 'many' }, [], /cluster\.workers = "many" \(from SANDBAR_CLUSTER_WORKERS\)/],
    ['an unknown SANDBAR_ variable', '', { SANDBAR_HTTP_PROT: '1' }, [], /SANDBAR_HTTP_PROT/],
    ['a bad flag value', '', {}, ['--cluster.schedulingPolicy=fair'], /cluster\.schedulingPolicy = "fair".*"none".*"rr"/],
    ['an unknown flag', '', {}, ['--no.such=1'], /--no\.such/],
    ['invalid TOML', '[session\n', {}, [], /SANDBAR_ERR_CONFIG_FILE.*line 1/],
  ] as const) {
    it(`${name} stops start-up with exit 78 and one line naming it`, async () => {
      const path = join(dir, 'c.toml');
      writeFileSync(path, file);
      for (const cmd of ['check-config', 'start']) {
        const r = await run([cmd, '--config', path, ...flags], env as Record<string, string>);
        expect(r.code, r.stderr).to.equal(78);
        const lines = r.stderr.trim().split('\n');
        expect(lines, r.stderr).to.have.length(1);
        expect(lines[0]).to.match(expected);
      }
    });
  }

  it('--version prints the version of package.json and exits 0, with no configuration needed', async () => {
    const { version } = JSON.parse(readFileSync(join(import.meta.dirname, '../../package.json'), 'utf8')) as { version: string };
    for (const args of [['--version'], ['start', '--version'], ['version']]) {
      const r = await run(args, { SANDBAR_HTTP_PROT: 'would be an error' });
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).to.equal(0);
      expect(r.stdout).to.equal(`sandbar ${version}\n`);
    }
  });

  it('token mints a JWT that verifies for the user, with --ttl and --claims; token --check explains a refusal', async () => {
    const verifier = new TokenVerifier(loadConfig({ argv: [`--auth.secret=${SECRET}`], env: {} }).config.auth, pino({ level: 'silent' }));
    const r = await run(['token', 'alice', `--auth.secret=${SECRET}`, '--ttl', '120', '--claims={"rooms":["team-*"]}']);
    expect(r.code, r.stderr).to.equal(0);
    const id = await verifier.verify(r.stdout.trim());
    expect(id.userId).to.equal('alice');
    expect(id.exp - id.iat!).to.equal(120);
    expect(id.claims.rooms).to.deep.equal(['team-*']);
    const ok = await run(['token', '--check', r.stdout.trim(), `--auth.secret=${SECRET}`]);
    expect(ok.code, ok.stderr).to.equal(0);
    expect(JSON.parse(ok.stdout)).to.deep.include({ valid: true, user: 'alice' });
    const bad = await run(['token', '--check', r.stdout.trim(), '--auth.secret=another-secret']);
    expect(bad.code).to.equal(1);
    expect(bad.stderr).to.match(/refused: SANDBAR_ERR_AUTH_INVALID: token signature does not match/).and.match(/claims \(unverified\): .*"sub":"alice"/);
    expect((await run(['token', 'alice', '--claims', '[1]'])).code).to.equal(64);
    expect((await run(['token', 'alice', '--claims={"sub":"admin"}'])).stderr).to.match(/claim sub is set from the user/);
  });

  it('token --key signs with a private key file (RS256 with a kid) that a host with the public key accepts', async () => {
    const k = await makeKey('RS256', 'cli-1');
    const keyFile = join(dir, 'cli.key.pem');
    writeFileSync(keyFile, await exportPKCS8(k.privateKey));
    const conf = join(dir, 'keys.toml');
    writeFileSync(conf, keyToml('cli-1', 'RS256', { publicKey: k.pem }));
    const r = await run(['token', 'bob', '--key', keyFile, '--alg', 'RS256', '--kid', 'cli-1', '--config', conf]);
    expect(r.code, r.stderr).to.equal(0);
    const ok = await run(['token', '--check', r.stdout.trim(), '--config', conf]);
    expect(ok.code, ok.stderr).to.equal(0);
    expect(JSON.parse(ok.stdout)).to.deep.include({ user: 'bob', kid: 'cli-1' });
  });

  it('--help answers for each command', async () => {
    for (const cmd of [[], ['start'], ['check-config'], ['token']]) {
      const r = await run([...cmd, '--help']);
      expect(r.code).to.equal(0);
      expect(r.stdout).to.match(/usage: sandbar/);
    }
    const bad = await run(['fly']);
    expect(bad.code).to.equal(64);
  });

  it('with no NATS reachable and nats.embedded = false, start-up fails with one line saying what is missing (exit 69)', async () => {
    const port = await freePort();
    const r = await run(['start', `--nats.servers=nats://127.0.0.1:${port}`, '--nats.embedded=false', '--nats.connectTimeoutMs=300', `--dataDir=${dir}`]);
    expect(r.code).to.equal(69);
    expect(r.stderr).to.match(/SANDBAR_ERR_NATS_UNAVAILABLE: no NATS server answers at nats:\/\/127\.0\.0\.1:\d+/);
  });

  it('a NATS server without JetStream stops start-up with one line saying so (exit 69)', async () => {
    const plain = await lab.startNats({ jetstream: false });
    try {
      const r = await run(['start', `--nats.servers=${plain.url}`, '--nats.embedded=false', `--dataDir=${dir}`]);
      expect(r.code).to.equal(69);
      expect(r.stderr.trim().split('\n')).to.have.length(1);
      expect(r.stderr).to.match(/SANDBAR_ERR_JETSTREAM_UNAVAILABLE: .*has no JetStream.*-js/);
    } finally {
      await plain.stop();
    }
  });

  it('with no NATS reachable and nats.embedded = true, the host starts nats-server itself and stops it on exit', async () => {
    const port = await freePort();
    const host = await lab.startHost({ nats: `nats://127.0.0.1:${port}`, workers: 1, flags: { 'nats.embedded': true, 'nats.connectTimeoutMs': 300 } });
    try {
      const started = host.lines.find((l) => l.msg === 'embedded nats-server started');
      expect(started?.nats).to.equal(`nats://127.0.0.1:${port}`);
      const c = await RawClient.open(host.url, token('emb'));
      expect((await c.join('echo:e'))[4]).to.have.property('status', 'ok');
      c.close();
      host.kill('SIGTERM');
      expect((await host.exit).code).to.equal(0);
      // The embedded server is gone with the host.
      const probe = await run(['start', `--nats.servers=nats://127.0.0.1:${port}`, '--nats.embedded=false', '--nats.connectTimeoutMs=300', `--dataDir=${dir}`]);
      expect(probe.code).to.equal(69);
    } finally {
      await host.stop();
    }
  });
});
