import { expect } from 'chai';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSandbar, startHost, SECRET } from '../helpers/host.js';
import { verifyToken } from '../../src/auth/token.js';
import { RawClient } from '../helpers/clients.js';
import { freePort } from '../helpers/ports.js';

async function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = spawnSandbar(args, env);
  let stdout = '';
  let stderr = '';
  p.stdout!.on('data', (d: Buffer) => { stdout += d; });
  p.stderr!.on('data', (d: Buffer) => { stderr += d; });
  const [code] = await once(p, 'exit');
  return { code: code as number | null, stdout, stderr };
}

describe('cli: sandbar check-config | token | start failures', function () {
  this.timeout(30000);
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'sandbar-cli-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

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

  it('token mints a token that verifies for the user', async () => {
    const r = await run(['token', 'alice', `--auth.secret=${SECRET}`]);
    expect(r.code).to.equal(0);
    expect(verifyToken(SECRET, r.stdout.trim()).userId).to.equal('alice');
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
    const { startNatsServer } = await import('../helpers/nats-server.js');
    const plain = await startNatsServer({ jetstream: false });
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
    const host = await startHost({ nats: `nats://127.0.0.1:${port}`, workers: 1, flags: { 'nats.embedded': true, 'nats.connectTimeoutMs': 300 } });
    try {
      const started = host.lines.find((l) => l.msg === 'embedded nats-server started');
      expect(started?.nats).to.equal(`nats://127.0.0.1:${port}`);
      const c = await RawClient.open(host.url, (await import('../helpers/host.js')).token('emb'));
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
