/**
 * The systemd side of a deployment, checked as far as a machine without
 * systemd as PID 1 allows:
 * - every unit in systemd/ passes `systemd-analyze verify` with no complaint,
 *   and nats-server accepts systemd/nats-server.conf (`-t`);
 * - sd-notify.ts: no-op without NOTIFY_SOCKET, never throws, the exact
 *   datagrams a real systemd-notify delivers to a real unix datagram socket;
 * - sandbar.service's ExecStart, run as written (paths mapped to this
 *   checkout), reaches "host ready", answers /health/ready, and stops with
 *   exit 0 on SIGTERM to the main process alone (KillMode=mixed) within the
 *   unit's TimeoutStopSec, closing sessions with 1012.
 *
 * Needs the `systemd` Debian package (systemd-analyze, systemd-notify,
 * systemd-socket-activate): `apt-get install -y systemd`. Without it the
 * tests that need it fail and say so; none is skipped.
 */
import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, existsSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { createInterface } from 'node:readline';
import { SdNotifier, systemdNotifyCommand, type NotifyRunner } from '../../src/observability/sd-notify.js';
import { RawClient, SECRET, ServerProcess, token, withNats, withTempDir, type Exit } from '../support/index.js';

const ROOT = join(import.meta.dirname, '../..');
/** Where docs/deploy.md installs the package (npm install -g --prefix /opt/sandbar): the units name it. */
const APP = '/opt/sandbar/lib/node_modules/sandbar';
const UNIT_DIR = join(ROOT, 'systemd');
const UNITS = ['sandbar.service', 'sandbar@.service', 'nats-server.service'];

// ---------------------------------------------------------------- helpers

/** `[section] -> [key, value][]`, in file order (systemd keys may repeat). */
type UnitFile = Map<string, Array<[string, string]>>;

function parseUnit(text: string): UnitFile {
  const unit: UnitFile = new Map();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    expect(line.endsWith('\\'), `line continuations are not used in these units: ${line}`).to.equal(false);
    const m = /^\[(.+)\]$/.exec(line);
    if (m) { section = m[1]!; unit.set(section, unit.get(section) ?? []); continue; }
    const eq = line.indexOf('=');
    expect(eq, `not a key=value line: ${line}`).to.be.greaterThan(0);
    unit.get(section)!.push([line.slice(0, eq).trim(), line.slice(eq + 1).trim()]);
  }
  return unit;
}

function readUnit(name: string): UnitFile {
  return parseUnit(readFileSync(join(UNIT_DIR, name), 'utf8'));
}

/** Last value of a key (systemd: a later assignment wins), asserting it is set. */
function value(unit: UnitFile, section: string, key: string): string {
  const hits = (unit.get(section) ?? []).filter(([k]) => k === key);
  expect(hits, `[${section}] ${key}= is set`).to.not.be.empty;
  return hits[hits.length - 1]![1];
}

/** A systemd time span as used in these units ("20s", "3s", "1min", "500ms", "90"), in ms. */
function timespanMs(v: string): number {
  const m = /^(\d+)\s*(ms|s|sec|min)?$/.exec(v);
  expect(m, `time span ${v}`).to.not.equal(null);
  const n = Number(m![1]);
  return m![2] === 'ms' ? n : m![2] === 'min' ? n * 60_000 : n * 1000;
}

function which(cmd: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const p = join(dir, cmd);
    if (dir && existsSync(p)) return p;
  }
  // Debian keeps some admin tools in sbin, which a non-root PATH may lack.
  for (const dir of ['/usr/sbin', '/sbin', '/usr/bin', '/bin']) if (existsSync(join(dir, cmd))) return join(dir, cmd);
  return null;
}

const SYSTEMD_HINT = 'the Debian package "systemd" provides it: apt-get install -y systemd (CI: .ci/run must install it)';

function need(cmd: string): string {
  const p = which(cmd);
  expect(p, `${cmd} is not installed; ${SYSTEMD_HINT}`).to.not.equal(null);
  return p!;
}

/** The unit's ExecStart, split as systemd would for these units (no quotes, no specifiers but %i). */
function execStartArgv(unit: UnitFile): string[] {
  const line = value(unit, 'Service', 'ExecStart');
  expect(line, 'ExecStart uses no quoting, prefixes, variables or specifiers this test would have to interpret').to.match(/^\/[^"'$\\%]*$/);
  return line.split(/\s+/);
}

// ---------------------------------------------------------------- units

describe('systemd: unit files', function () {
  this.timeout(60000);
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'sandbar-units-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('systemd/ ships the units, the NATS node config and the sysctl file', () => {
    for (const f of [...UNITS, 'nats-server.conf', '99-sandbar.conf', 'README.md']) expect(existsSync(join(UNIT_DIR, f)), f).to.equal(true);
  });

  it('every unit passes systemd-analyze verify without a single complaint about it', function () {
    const analyze = need('systemd-analyze');
    const natsServer = need('nats-server');
    // The units name production paths; map the ones verify checks (ExecStart=
    // binaries must exist and be executable) onto this machine. Users and
    // /etc paths that are only arguments are not checked by verify.
    const rewrites: Array<[string, string]> = [
      ['/usr/bin/node ', `${process.execPath} `],
      [`${APP}/`, `${ROOT}/`],
      ['/usr/sbin/nats-server ', `${natsServer} `],
    ];
    for (const name of UNITS) {
      const original = readFileSync(join(UNIT_DIR, name), 'utf8');
      let text = original;
      for (const [from, to] of rewrites) text = text.split(from).join(to);
      writeFileSync(join(dir, name), text);
    }
    // The rewrites really happened (else verify would fail on a missing binary anyway).
    expect(readFileSync(join(dir, 'sandbar.service'), 'utf8')).to.include(`${process.execPath} ${ROOT}/dist/src/main.js start`);
    expect(readFileSync(join(dir, 'nats-server.service'), 'utf8')).to.include(`${natsServer} -c`);

    for (const name of UNITS) {
      const r = spawnSync(analyze, ['verify', '--man=no', '--recursive-errors=no', join(dir, name)], {
        encoding: 'utf8', timeout: 30000, env: { ...process.env, SYSTEMD_LOG_COLOR: '0', SYSTEMD_PAGER: '' },
      });
      expect(r.error, `systemd-analyze: ${r.error?.message}`).to.equal(undefined);
      const out = `${r.stdout}${r.stderr}`;
      // verify only warns (exit 0) on an unknown key or a value it cannot
      // parse ("..., ignoring"): any line naming our unit is a real error.
      const stem = name.replace('.service', '');
      const ours = out.split('\n').filter((l) => l.includes(`${stem}.service`) || l.includes(`${stem}@`) || l.includes(join(dir, name)));
      expect(ours, `systemd-analyze verify ${name}:\n${out}`).to.deep.equal([]);
      expect(r.status, `systemd-analyze verify ${name} exited ${r.status}:\n${out}`).to.equal(0);
    }
  });

  it('verify catches a broken unit (so a silent pass above means something)', function () {
    const analyze = need('systemd-analyze');
    const text = readFileSync(join(UNIT_DIR, 'sandbar.service'), 'utf8')
      .split('/usr/bin/node ').join(`${process.execPath} `).split(`${APP}/`).join(`${ROOT}/`)
      .replace(/^KillMode=mixed$/m, 'KillMode=mixd');
    writeFileSync(join(dir, 'broken.service'), text);
    const r = spawnSync(analyze, ['verify', '--man=no', '--recursive-errors=no', join(dir, 'broken.service')], { encoding: 'utf8', timeout: 30000 });
    expect(`${r.stdout}${r.stderr}`).to.match(/broken\.service:\d+: .*kill mode.*mixd/i);
    // With --recursive-errors=no a warning about the unit itself is also a non-zero exit.
    expect(r.status).to.not.equal(0);
  });

  it('nats-server accepts systemd/nats-server.conf (nats-server -t)', () => {
    const natsServer = need('nats-server');
    const store = join(dir, 'nats-store');
    const conf = readFileSync(join(UNIT_DIR, 'nats-server.conf'), 'utf8');
    expect(conf).to.match(/store_dir: \/var\/lib\/nats\n/);
    writeFileSync(join(dir, 'nats.conf'), conf.replace('store_dir: /var/lib/nats', `store_dir: ${store}`));
    const r = spawnSync(natsServer, ['-c', join(dir, 'nats.conf'), '-t'], { encoding: 'utf8', timeout: 15000 });
    expect(r.status, `${r.stdout}${r.stderr}`).to.equal(0);
    for (const route of ['nats-1', 'nats-2', 'nats-3']) expect(conf).to.include(`nats-route://${route}:6222`);
    expect(conf).to.match(/^listen: 0\.0\.0\.0:4222$/m);
    expect(conf).to.match(/^http: 0\.0\.0\.0:8222$/m);
  });

  it('sandbar.service keeps the promises its comments make', () => {
    const u = readUnit('sandbar.service');
    expect(value(u, 'Service', 'Type')).to.equal('notify');
    expect(value(u, 'Service', 'NotifyAccess')).to.equal('all');
    expect(timespanMs(value(u, 'Service', 'WatchdogSec'))).to.be.greaterThan(0);
    expect(value(u, 'Service', 'KillMode')).to.equal('mixed');
    expect(value(u, 'Service', 'Restart')).to.equal('on-failure');
    expect(value(u, 'Service', 'RestartPreventExitStatus').split(/\s+/)).to.include.members(['64', '78']);
    expect(value(u, 'Service', 'LimitNOFILE')).to.equal('1048576');
    expect(value(u, 'Service', 'User')).to.equal('sandbar');
    expect(value(u, 'Service', 'StateDirectory')).to.equal('sandbar');
    expect(value(u, 'Service', 'WorkingDirectory')).to.equal('/var/lib/sandbar');
    // The stop budget must cover the host's own graceful stop (default
    // cluster.shutdownTimeoutMs) with room for the NATS drain.
    const shutdownDefault = Number(/^shutdownTimeoutMs = (\d+)$/m.exec(readFileSync(join(ROOT, 'config/sandbar.toml'), 'utf8'))?.[1]);
    expect(shutdownDefault).to.equal(10000);
    expect(timespanMs(value(u, 'Service', 'TimeoutStopSec'))).to.be.at.least(shutdownDefault + 5000);
    // JIT: V8 needs writable+executable pages.
    expect((u.get('Service') ?? []).some(([k, v]) => k === 'MemoryDenyWriteExecute' && v === 'yes')).to.equal(false);
  });

  it('sandbar@.service differs from sandbar.service only in the per-instance lines', () => {
    const plain = readUnit('sandbar.service');
    const tmpl = readUnit('sandbar@.service');
    const perInstance = new Set(['Description', 'StateDirectory', 'WorkingDirectory', 'EnvironmentFile', 'ExecStart', 'SyslogIdentifier', 'ReadWritePaths']);
    for (const section of ['Unit', 'Service', 'Install']) {
      const strip = (u: UnitFile) => (u.get(section) ?? []).filter(([k]) => !perInstance.has(k));
      expect(strip(tmpl), `[${section}]`).to.deep.equal(strip(plain));
    }
    expect(value(tmpl, 'Service', 'ExecStart')).to.equal(value(plain, 'Service', 'ExecStart').replace('/etc/sandbar/sandbar.toml', '/etc/sandbar/%i.toml'));
    expect(value(tmpl, 'Service', 'StateDirectory')).to.equal('sandbar/%i');
    expect(value(tmpl, 'Service', 'WorkingDirectory')).to.equal('/var/lib/sandbar/%i');
  });

  it('99-sandbar.conf is well-formed sysctl.d and consistent with LimitNOFILE', () => {
    const text = readFileSync(join(UNIT_DIR, '99-sandbar.conf'), 'utf8');
    const settings = new Map<string, string>();
    for (const raw of text.split('\n')) {
      const line = raw.trim();
      if (!line || line.startsWith('#') || line.startsWith(';')) continue;
      const m = /^-?([a-z0-9_]+(?:\.[a-z0-9_-]+)+) = (\d+(?: \d+)*)$/.exec(line);
      expect(m, `sysctl.d line: ${line}`).to.not.equal(null);
      settings.set(m![1]!, m![2]!);
    }
    for (const k of ['net.core.somaxconn', 'net.ipv4.ip_local_port_range', 'fs.file-max', 'fs.nr_open', 'net.ipv4.tcp_mem', 'net.ipv4.tcp_rmem', 'net.ipv4.tcp_wmem']) {
      expect(settings.has(k), k).to.equal(true);
    }
    const limit = Number(value(readUnit('sandbar.service'), 'Service', 'LimitNOFILE'));
    // LimitNOFILE above fs.nr_open makes systemd fail the service at start.
    expect(Number(settings.get('fs.nr_open'))).to.be.at.least(limit);
    expect(Number(settings.get('fs.file-max'))).to.be.at.least(Number(settings.get('fs.nr_open')));
    for (const k of ['net.ipv4.tcp_mem', 'net.ipv4.tcp_rmem', 'net.ipv4.tcp_wmem', 'net.ipv4.ip_local_port_range']) {
      const v = settings.get(k)!.split(' ').map(Number);
      expect(v, k).to.deep.equal([...v].sort((a, b) => a - b));
    }
  });
});

// ---------------------------------------------------------------- sd-notify

describe('systemd: sd-notify', function () {
  this.timeout(30000);

  function recorder(opts: { fail?: 'reject' | 'throw'; delayMs?: number } = {}) {
    const calls: string[][] = [];
    const runner: NotifyRunner = (fields) => {
      calls.push([...fields]);
      if (opts.fail === 'throw') throw new Error('runner threw');
      return new Promise((resolve, reject) => setTimeout(() => (opts.fail === 'reject' ? reject(new Error('runner rejected')) : resolve()), opts.delayMs ?? 0));
    };
    return { calls, runner };
  }

  it('is a no-op without NOTIFY_SOCKET: nothing runs, nothing throws, no watchdog timer', async () => {
    const { calls, runner } = recorder();
    const n = new SdNotifier({ env: { WATCHDOG_USEC: '1000000' }, runner });
    expect(n.enabled).to.equal(false);
    await n.ready('up');
    await n.stopping();
    await n.status('x');
    await n.watchdog();
    const wd = n.startWatchdog();
    expect(wd.intervalMs).to.equal(0);
    wd.stop();
    expect(calls).to.deep.equal([]);
    expect(new SdNotifier({ env: { NOTIFY_SOCKET: '' }, runner }).enabled).to.equal(false);
  });

  it('sends READY/STOPPING/STATUS/WATCHDOG as systemd-notify VARIABLE=VALUE arguments, in call order', async () => {
    const { calls, runner } = recorder({ delayMs: 20 });
    const n = new SdNotifier({ env: { NOTIFY_SOCKET: '/run/nope/notify' }, runner });
    // Not awaited one by one: the queue must still keep them in order.
    const all = Promise.all([n.ready('host ready\non port 4000'), n.status('serving'), n.watchdog(), n.stopping('SIGTERM')]);
    await all;
    expect(calls).to.deep.equal([
      ['READY=1', 'STATUS=host ready on port 4000'],
      ['STATUS=serving'],
      ['WATCHDOG=1'],
      ['STOPPING=1', 'STATUS=SIGTERM'],
    ]);
    expect(systemdNotifyCommand(['READY=1', 'STATUS=a b'])).to.deep.equal({ file: 'systemd-notify', args: ['READY=1', 'STATUS=a b'] });
  });

  it('never throws or rejects: a failing runner (or onError) is reported and later sends still go out', async () => {
    for (const fail of ['reject', 'throw'] as const) {
      const errors: string[] = [];
      const { calls, runner } = recorder({ fail });
      const n = new SdNotifier({ env: { NOTIFY_SOCKET: '@fake' }, runner, onError: (e) => { errors.push(e.message); } });
      await n.ready();
      await n.stopping();
      expect(calls).to.have.length(2);
      expect(errors).to.deep.equal(fail === 'reject' ? ['runner rejected', 'runner rejected'] : ['runner threw', 'runner threw']);
    }
    const { runner } = recorder({ fail: 'reject' });
    const n = new SdNotifier({ env: { NOTIFY_SOCKET: '@fake' }, runner, onError: () => { throw new Error('onError threw'); } });
    await n.ready();
  });

  it('the real systemd-notify at a socket that does not exist: resolves, reports the failure once', async () => {
    need('systemd-notify');
    const errors: Error[] = [];
    const n = new SdNotifier({ env: { ...process.env, NOTIFY_SOCKET: join(tmpdir(), 'sandbar-no-such-dir', 'notify') }, onError: (e) => errors.push(e) });
    await n.ready('x');
    expect(errors).to.have.length(1);
    expect(errors[0]!.message).to.match(/systemd-notify READY=1 STATUS=x exited 1/);
  });

  it('without systemd-notify on PATH: resolves and says what is missing', async () => {
    const errors: Error[] = [];
    const n = new SdNotifier({ env: { NOTIFY_SOCKET: '/run/x/notify', PATH: join(tmpdir(), 'sandbar-empty-path') }, onError: (e) => errors.push(e) });
    await n.ready();
    expect(errors.map((e) => e.message)).to.deep.equal(['systemd-notify not found on PATH (it ships with systemd): cannot notify systemd']);
  });

  it('watchdog: half of WATCHDOG_USEC, a ping at once and then on every interval, until stop()', async () => {
    const { calls, runner } = recorder();
    const n = new SdNotifier({ env: { NOTIFY_SOCKET: '/run/x', WATCHDOG_USEC: '100000', WATCHDOG_PID: '4242' }, runner, pid: 4242 });
    const wd = n.startWatchdog();
    expect(wd.intervalMs).to.equal(50);
    await new Promise((r) => setTimeout(r, 290));
    wd.stop();
    const pings = calls.length;
    expect(pings).to.be.within(3, 7);
    expect(calls.every((c) => c.length === 1 && c[0] === 'WATCHDOG=1')).to.equal(true);
    await new Promise((r) => setTimeout(r, 150));
    expect(calls.length).to.equal(pings);
  });

  it('watchdog: off for another WATCHDOG_PID, a bad WATCHDOG_USEC, or none', () => {
    const { calls, runner } = recorder();
    for (const env of [
      { NOTIFY_SOCKET: '/run/x', WATCHDOG_USEC: '100000', WATCHDOG_PID: '1' },
      { NOTIFY_SOCKET: '/run/x', WATCHDOG_USEC: 'soon' },
      { NOTIFY_SOCKET: '/run/x', WATCHDOG_USEC: '0' },
      { NOTIFY_SOCKET: '/run/x' },
    ]) {
      const wd = new SdNotifier({ env, runner, pid: 4242 }).startWatchdog();
      expect(wd.intervalMs, JSON.stringify(env)).to.equal(0);
      wd.stop();
    }
    expect(calls).to.deep.equal([]);
  });

  it('watchdog: its timer never keeps the process alive', async () => {
    // A child process starts a watchdog with a long interval and returns: it must exit by itself.
    const code = `
      import { SdNotifier } from ${JSON.stringify(join(ROOT, 'src/observability/sd-notify.ts'))};
      const wd = new SdNotifier({ env: { NOTIFY_SOCKET: '/run/x', WATCHDOG_USEC: '60000000' }, runner: async () => {} }).startWatchdog();
      console.log(wd.intervalMs);`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => { out += d; });
    child.stderr!.on('data', (d: Buffer) => { err += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
    const [status, signal] = await once(child, 'exit');
    clearTimeout(timer);
    expect(signal, `the child hung: ${err}`).to.equal(null);
    expect(status, err).to.equal(0);
    expect(out.trim()).to.equal('30000');
  });

  it('delivers the exact datagrams through the real systemd-notify to a unix datagram socket', async function () {
    need('systemd-notify');
    const activate = need('systemd-socket-activate');
    // Node cannot receive unix datagrams either: systemd-socket-activate binds
    // the socket and hands it to a tiny node reader as fd 3; read(2) on a
    // datagram socket returns one datagram, and discards (closes) the fds
    // passed with it, which is what releases systemd-notify's BARRIER wait,
    // exactly as PID 1 does.
    const dir = mkdtempSync(join(tmpdir(), 'sandbar-notify-'));
    const sock = join(dir, 'notify.sock');
    const reader = join(dir, 'reader.cjs');
    writeFileSync(reader, `
      const fs = require('node:fs');
      const buf = Buffer.alloc(65536);
      (function next() {
        fs.read(3, buf, 0, buf.length, null, (err, n) => {
          if (err) { if (err.code === 'EAGAIN') return setTimeout(next, 5); console.error(err.message); process.exit(2); }
          process.stdout.write(JSON.stringify(buf.subarray(0, n).toString()) + '\\n');
          next();
        });
      })();`);
    const proc: ChildProcess = spawn(activate, ['--datagram', '-l', sock, process.execPath, reader], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => { stderr += d; });
    const datagrams: string[] = [];
    const waiters: Array<() => void> = [];
    createInterface({ input: proc.stdout! }).on('line', (l) => { datagrams.push(JSON.parse(l) as string); for (const w of waiters.splice(0)) w(); });
    try {
      const deadline = Date.now() + 5000;
      while (!existsSync(sock)) {
        expect(Date.now() < deadline, `systemd-socket-activate did not bind ${sock}: ${stderr}`).to.equal(true);
        await new Promise((r) => setTimeout(r, 20));
      }
      const errors: Error[] = [];
      const n = new SdNotifier({ env: { ...process.env, NOTIFY_SOCKET: sock }, onError: (e) => errors.push(e) });
      const started = Date.now();
      await n.ready('host ready: 2 workers on port 4000');
      await n.watchdog();
      await n.status('line one\nline two');
      await n.stopping();
      expect(errors.map((e) => e.message)).to.deep.equal([]);
      // Each call returned only after its barrier was released: it took the
      // reader's round trip, not a fixed sleep.
      expect(Date.now() - started).to.be.below(5000);
      // The last barrier may be printed a moment after the last message.
      while (datagrams.filter((d) => d !== 'BARRIER=1').length < 4 || datagrams.filter((d) => d === 'BARRIER=1').length < 4) {
        expect(Date.now() < deadline + 5000, `datagrams so far: ${JSON.stringify(datagrams)}; ${stderr}`).to.equal(true);
        await new Promise<void>((r) => { waiters.push(r); setTimeout(r, 100); });
      }
      expect(datagrams.filter((d) => d !== 'BARRIER=1')).to.deep.equal([
        'READY=1\nSTATUS=host ready: 2 workers on port 4000',
        'WATCHDOG=1',
        'STATUS=line one line two',
        'STOPPING=1',
      ]);
      // systemd-notify waited for the manager after each message (no --no-block):
      // that barrier is what makes a short-lived sender safe under NotifyAccess=all.
      expect(datagrams.filter((d) => d === 'BARRIER=1')).to.have.length(4);
    } finally {
      proc.kill('SIGKILL');
      await once(proc, 'exit').catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------- ExecStart

describe('systemd: sandbar.service ExecStart, run as written', function () {
  this.timeout(60000);
  const nats = withNats();
  const tmp = withTempDir('sandbar-unit-');
  let dir: string;
  before(() => { dir = tmp.path; });

  /** sandbar.service's ExecStart as systemd runs it: in `cwd`, with the unit's environment only. */
  function runUnit(argv: string[], cwd: string, ready?: { msg: string; timeoutMs: number }): Promise<ServerProcess> {
    return ServerProcess.launch({ name: 'sandbar.service', command: argv[0]!, args: argv.slice(1), cwd, env: unitEnv(), ready });
  }

  /** ExecStart of sandbar.service with the production paths mapped onto this checkout. */
  function argvFor(configPath: string): string[] {
    const argv = execStartArgv(readUnit('sandbar.service'));
    expect(argv.slice(0, 3)).to.deep.equal(['/usr/bin/node', `${APP}/dist/src/main.js`, 'start']);
    expect(argv).to.include('/etc/sandbar/sandbar.toml');
    const mapped = argv.map((a) => {
      if (a === '/usr/bin/node') return process.execPath;
      if (a.startsWith(`${APP}/`)) return join(ROOT, a.slice(APP.length + 1));
      if (a === '/etc/sandbar/sandbar.toml') return configPath;
      return a;
    });
    for (const a of mapped) if (a.startsWith('/')) expect(existsSync(a), `${a} (from ExecStart) exists here; run npm run build first`).to.equal(true);
    return mapped;
  }

  /** The environment systemd would give: only PATH and the unit's Environment= lines. */
  function unitEnv(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
    for (const [k, v] of readUnit('sandbar.service').get('Service') ?? []) {
      if (k !== 'Environment') continue;
      const eq = v.indexOf('=');
      env[v.slice(0, eq)] = v.slice(eq + 1);
    }
    expect(env.NODE_ENV).to.equal('production');
    return env;
  }

  it('starts, is ready, closes sessions with 1012 and exits 0 within TimeoutStopSec on SIGTERM to the main process', async () => {
    const state = mkdtempSync(join(dir, 'state-'));
    const config = join(dir, 'sandbar.toml');
    writeFileSync(config, [
      'hostId = "systemd-test"',
      `dataDir = ${JSON.stringify(state)}`,
      '[cluster]', 'workers = 2',
      '[http]', 'host = "127.0.0.1"', 'port = 0',
      '[admin]', 'port = 0',
      '[nats]', `servers = [${JSON.stringify(nats.url)}]`, 'embedded = false',
      '[auth]', `secret = ${JSON.stringify(SECRET)}`,
      '',
    ].join('\n'));
    const unit = readUnit('sandbar.service');
    const stopBudgetMs = timespanMs(value(unit, 'Service', 'TimeoutStopSec'));
    const argv = argvFor(config);
    // WorkingDirectory=/var/lib/sandbar -> the test's state directory.
    const unitProc = await runUnit(argv, state, { msg: 'host ready', timeoutMs: 20000 });
    const { proc, exit, log: { lines } } = unitProc;
    try {
      const readyLine = unitProc.readyLine!;
      const port = readyLine.port as number;
      expect(port).to.be.a('number').and.greaterThan(0);
      expect(readyLine.hostId).to.equal('systemd-test');

      const res = await fetch(`http://127.0.0.1:${port}/health/ready`);
      expect(res.status).to.equal(200);
      expect(await res.json()).to.deep.equal({ status: 'ready' });

      const client = await RawClient.open(`ws://127.0.0.1:${port}`, token('unit-user'));
      const workerPids = lines.filter((l) => l.msg === 'worker listening').map((l) => l.pid as number);
      expect(workerPids).to.have.length(2);

      // KillMode=mixed: SIGTERM goes to the main process only, never to the workers.
      const t0 = Date.now();
      proc.kill('SIGTERM');
      const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), stopBudgetMs).unref());
      const result = await Promise.race([exit, timeout]);
      expect(result, `no exit within TimeoutStopSec (${stopBudgetMs} ms): systemd would SIGKILL`).to.not.equal('timeout');
      const { code, signal } = result as Exit;
      expect({ code, signal }, unitProc.log.stderr()).to.deep.equal({ code: 0, signal: null });
      expect(Date.now() - t0).to.be.below(stopBudgetMs);
      expect(await client.closed).to.equal(1012);
      // The primary waited for its workers: nothing is left for systemd's final SIGKILL.
      for (const pid of workerPids) expect(() => process.kill(pid, 0), `worker ${pid} outlived the primary`).to.throw();
      expect(lines.some((l) => l.msg === 'host stopped')).to.equal(true);
    } finally {
      unitProc.kill('SIGKILL');
      await unitProc.stop();
    }
  });

  it('with stdout in the journal ($JOURNAL_STREAM names it), every line of the primary and the workers carries its priority', async () => {
    expect(value(readUnit('sandbar.service'), 'Service', 'SyslogLevelPrefix')).to.equal('yes');
    const state = mkdtempSync(join(dir, 'journal-'));
    const config = join(dir, 'journal.toml');
    writeFileSync(config, [
      'hostId = "journal-test"', `dataDir = ${JSON.stringify(state)}`, '[cluster]', 'workers = 2',
      '[http]', 'host = "127.0.0.1"', 'port = 0', '[admin]', 'port = 0',
      '[nats]', `servers = [${JSON.stringify(nats.url)}]`, 'embedded = false', '[auth]', `secret = ${JSON.stringify(SECRET)}`, '',
    ].join('\n'));
    // A file stands in for journald's stream: systemd names its device and inode in $JOURNAL_STREAM.
    const out = join(state, 'stdout');
    const fd = openSync(out, 'w');
    const st = fstatSync(fd, { bigint: true });
    const argv = argvFor(config);
    const proc = spawn(argv[0]!, argv.slice(1), { cwd: state, env: { ...unitEnv(), JOURNAL_STREAM: `${st.dev}:${st.ino}` }, stdio: ['ignore', fd, 'pipe'] });
    closeSync(fd);
    const exit = once(proc, 'exit');
    const lines = () => readFileSync(out, 'utf8').split('\n').filter(Boolean);
    const waitLine = async (what: RegExp) => {
      for (const deadline = Date.now() + 20000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
        const l = lines().find((x) => what.test(x));
        if (l) return l;
      }
      throw new Error(`no line matching ${what} in ${out}: ${lines().slice(-5).join('\n')}`);
    };
    try {
      await waitLine(/"msg":"host ready"/);
      // A worker killed: the primary logs its death at error, the restarted worker its start at info.
      const worker = JSON.parse((await waitLine(/"msg":"worker listening"/)).slice(3)) as { pid: number };
      process.kill(worker.pid, 'SIGKILL');
      await waitLine(/"msg":"worker died; restarting"/);
      proc.kill('SIGTERM');
      await exit;
      const all = lines();
      for (const l of all) expect(l, 'every line starts with <priority>{').to.match(/^<[2-7]>\{/);
      const level = (msg: string) => all.filter((l) => l.includes(`"msg":"${msg}"`)).map((l) => l.slice(0, 3));
      expect(level('host ready')).to.deep.equal(['<6>']);
      expect(level('worker died; restarting')).to.deep.equal(['<3>']);
      expect(new Set(level('worker listening'))).to.deep.equal(new Set(['<6>']));
      // The JSON after the prefix is the line as ever.
      for (const l of all) expect(() => JSON.parse(l.slice(3)), l).to.not.throw();
    } finally {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    }
  });

  it('a bad config exits 78, which RestartPreventExitStatus keeps from looping', async () => {
    const config = join(dir, 'bad.toml');
    writeFileSync(config, '[session]\nidleTimeoutMz = 5\n');
    const argv = argvFor(config);
    const unitProc = await runUnit(argv, dir);
    const { code } = await unitProc.exit;
    const stderr = unitProc.log.stderr();
    expect(code, stderr).to.equal(78);
    expect(stderr).to.match(/idleTimeoutMz/);
    expect(value(readUnit('sandbar.service'), 'Service', 'RestartPreventExitStatus').split(/\s+/)).to.include(String(code));
  });

  it('under the journal, the one-line error of a bad config carries priority err too', async () => {
    const config = join(dir, 'bad-journal.toml');
    writeFileSync(config, '[session]\nidleTimeoutMz = 5\n');
    const errFile = join(dir, 'stderr-journal');
    const fd = openSync(errFile, 'w');
    const st = fstatSync(fd, { bigint: true });
    const argv = argvFor(config);
    const proc = spawn(argv[0]!, argv.slice(1), { cwd: dir, env: { ...unitEnv(), JOURNAL_STREAM: `${st.dev}:${st.ino}` }, stdio: ['ignore', 'ignore', fd] });
    closeSync(fd);
    const [code] = await once(proc, 'exit');
    expect(code).to.equal(78);
    expect(readFileSync(errFile, 'utf8')).to.match(/^<3>sandbar: SANDBAR_ERR_CONFIG_INVALID: .*idleTimeoutMz/);
  });

  it('a broken command line exits 64, which does not loop either', async () => {
    writeFileSync(join(dir, 'empty.toml'), '');
    const argv = [...argvFor(join(dir, 'empty.toml')), 'extra-argument'];
    const unitProc = await runUnit(argv, dir);
    const { code } = await unitProc.exit;
    const stderr = unitProc.log.stderr();
    expect(code, stderr).to.equal(64);
    expect(value(readUnit('sandbar.service'), 'Service', 'RestartPreventExitStatus').split(/\s+/)).to.include('64');
  });

});
