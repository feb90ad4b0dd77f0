/**
 * The installable package, as an operator gets it: `npm pack` makes the
 * tarball, `npm install -g` puts it into a temporary prefix (dependencies from
 * the registry, or npm's cache), and the `sandbar` it puts on PATH works:
 * `--version`, `check-config` of the config the package ships, and `start`
 * against a real nats-server up to `/health/ready` and `/metrics`. It runs
 * with the Node that runs the tests (.ci/run runs it under Node 24 too).
 * Needs `npm run build` first, as every integration test (the tarball packs
 * dist/src as built; `npm pack` by hand builds first, through prepack).
 */
import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { startNatsServer, type NatsServerHandle } from '../support/nats.js';

const ROOT = join(import.meta.dirname, '../..');
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

describe('package: npm pack, npm install -g, and the sandbar it installs', function () {
  this.timeout(300000);
  let dir: string;
  let prefix: string;
  let tarball: string;
  let nats: NatsServerHandle | undefined;
  /** The test's own Node first on PATH: the installed `sandbar` runs with `#!/usr/bin/env node`. */
  let env: NodeJS.ProcessEnv;

  function sandbar(args: string[]): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync(join(prefix, 'bin', 'sandbar'), args, { env, encoding: 'utf8', timeout: 30000, cwd: dir });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  before(function () {
    if (!existsSync(join(ROOT, 'dist/src/main.js'))) throw new Error('dist/src/main.js is missing: run npm run build first');
    dir = mkdtempSync(join(tmpdir(), 'sandbar-package-'));
    prefix = join(dir, 'prefix');
    env = { ...process.env, PATH: `${join(prefix, 'bin')}${delimiter}${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}` };
    for (const k of Object.keys(env)) if (k.startsWith('SANDBAR_')) delete env[k];
    const pack = spawnSync('npm', ['pack', '--ignore-scripts', '--pack-destination', dir], { cwd: ROOT, env, encoding: 'utf8', timeout: 120000 });
    expect(pack.status, `npm pack: ${pack.stderr}`).to.equal(0);
    tarball = join(dir, readdirSync(dir).find((f) => f.endsWith('.tgz'))!);
    const install = spawnSync('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tarball], { cwd: dir, env, encoding: 'utf8', timeout: 240000 });
    expect(install.status, `npm install -g: ${install.stdout}${install.stderr}`).to.equal(0);
  });
  after(async () => {
    await nats?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the tarball holds what a host needs (dist/src, web, config, systemd, deploy, docs) and no tests or benches', () => {
    const list = spawnSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
    for (const f of ['package/dist/src/main.js', 'package/web/cluster.js', 'package/config/sandbar.toml', 'package/systemd/sandbar.service', 'package/deploy/prometheus/sandbar.rules.yml', 'package/deploy/grafana/sandbar.json', 'package/docs/deploy.md', 'package/README.md']) {
      expect(list, f).to.include(f);
    }
    expect(list.filter((f) => /^package\/(test|bench|dist\/bench|src|node_modules)\//.test(f)), 'nothing else').to.deep.equal([]);
  });

  it('sandbar --version prints the package version', () => {
    const r = sandbar(['--version']);
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout).to.equal(`sandbar ${PKG.version}\n`);
  });

  it('sandbar check-config accepts the config shipped in the package and refuses a bad key with 78', () => {
    const shipped = join(prefix, 'lib/node_modules/sandbar/config/sandbar.toml');
    expect(existsSync(shipped)).to.equal(true);
    const ok = sandbar(['check-config', '--config', shipped]);
    expect(ok.status, ok.stderr).to.equal(0);
    expect(JSON.parse(ok.stdout).admin).to.include({ listener: 'internal', host: '127.0.0.1', port: 4001 });
    const bad = sandbar(['check-config', '--admin.prot=1']);
    expect(bad.status).to.equal(78);
    expect(bad.stderr).to.match(/admin\.prot.*did you mean --admin\.port/);
  });

  it('sandbar start against a nats-server: ready on the public port, /metrics on the internal one, a clean stop', async () => {
    nats = await startNatsServer();
    const proc: ChildProcess = spawn(join(prefix, 'bin', 'sandbar'), [
      'start', '--hostId=pkg', '--cluster.workers=1', '--http.host=127.0.0.1', '--http.port=0', '--admin.port=0',
      `--nats.servers=${nats.url}`, '--nats.embedded=false', `--dataDir=${join(dir, 'data')}`,
    ], { env, cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => { stderr += d; });
    const exit = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
    try {
      const ready = await new Promise<{ port: number; adminPort: number }>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no "host ready" within 30 s: ${stderr}`)), 30000);
        void exit.then((code) => reject(new Error(`exited ${code}: ${stderr}`)));
        createInterface({ input: proc.stdout! }).on('line', (line) => {
          try {
            const l = JSON.parse(line) as { msg?: string; port: number; adminPort: number };
            if (l.msg === 'host ready') { clearTimeout(t); resolve(l); }
          } catch { /* not JSON */ }
        });
      });
      const health = await fetch(`http://127.0.0.1:${ready.port}/health/ready`);
      expect(health.status).to.equal(200);
      expect(await health.json()).to.deep.equal({ status: 'ready' });
      // The demo page and the phoenix client come from the installed package (web/, node_modules/phoenix).
      expect((await fetch(`http://127.0.0.1:${ready.port}/assets/phoenix.mjs`)).status).to.equal(200);
      const metrics = await (await fetch(`http://127.0.0.1:${ready.adminPort}/metrics`)).text();
      expect(metrics).to.match(new RegExp(`^sandbar_build_info\\{host="pkg",version="${PKG.version.replace(/\./g, '\\.')}",node="${process.version}",nats="[\\d.]+"\\} 1$`, 'm'));
      proc.kill('SIGTERM');
      expect(await exit).to.equal(0);
    } finally {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    }
  });
});
