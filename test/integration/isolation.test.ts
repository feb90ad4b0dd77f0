import { expect } from 'chai';
import { createServer } from 'node:net';
import { openMany, token, useLab, withHost, withNats, type RawClient } from '../support/index.js';

const N = 1000;

/** Joins echo:x on every client; returns each client's worker index (from the session id h1.<worker>.<n>). */
async function joinAll(clients: RawClient[]): Promise<number[]> {
  const replies = await Promise.all(clients.map((c) => c.join('echo:x', {}, 'j')));
  return replies.map((f) => {
    const p = f[4] as { status: string; response: { session: string } };
    expect(p.status).to.equal('ok');
    return Number(p.response.session.split('.')[1]);
  });
}

async function allEcho(clients: RawClient[], tag: string): Promise<void> {
  const replies = await Promise.all(clients.map((c) => c.request('j', 'echo:x', 'ping', { tag }, 10000)));
  for (const f of replies) expect((f[4] as { status: string; response: unknown })).to.deep.equal({ status: 'ok', response: { tag } });
}

describe('host: a fault costs one session, a dead worker costs its own sessions only', function () {
  this.timeout(60000);
  let clients: RawClient[] = [];
  after(() => { for (const c of clients) c.terminate(); });
  const { host } = withHost({ workers: 2, flags: { 'debug.faultInjection': true } });

  it(`${N} sessions over 2 workers: a fault in one session's handler closes exactly that session`, async () => {
    clients = await openMany(N, host.url, (i) => token(`u${i}`));
    const workers = await joinAll(clients);
    expect(new Set(workers).size).to.equal(2);
    const victim = clients[N >> 1]!;
    victim.send(['j', victim.ref(), 'echo:x', 'crash', {}]);
    expect(await victim.closed).to.equal(1011);
    const asyncVictim = clients[7]!;
    asyncVictim.send(['j', asyncVictim.ref(), 'echo:x', 'crash_async', {}]);
    expect(await asyncVictim.closed).to.equal(1011);
    const others = clients.filter((c) => c !== victim && c !== asyncVictim);
    await allEcho(others, 'after-fault');
    expect(others.every((c) => c.closeCode === null)).to.equal(true);
    const crashLogs = host.lines.filter((l) => l.msg === 'session crashed; only this session is closed');
    expect(crashLogs).to.have.length(2);
  });

  it('kill -9 of one worker: restarted within 1 s, sessions on the other worker never notice', async () => {
    const live = clients.filter((c) => c.closeCode === null);
    const workers = await Promise.all(live.map((c) => c.request('j', 'echo:x', 'who', {}))).then(() => joinIndex(live));
    const pids = host.workerPids();
    const from = host.lines.length;
    const killedAt = Date.now();
    process.kill(pids.get(0)!, 'SIGKILL');
    // The supervisor starts the new process within 1 s; it serves again once it has its shards back.
    const forked = await host.waitFor((l) => l.msg === 'worker forked' && l.workerIndex === 0, 10000, from);
    expect(Date.parse(forked.time as string) - killedAt).to.be.below(1000);
    const relisten = await host.waitFor((l) => l.msg === 'worker listening' && l.worker === 0, 10000, from);
    console.log(`      new worker process after ${Date.parse(forked.time as string) - killedAt} ms, listening after ${Date.parse(relisten.time as string) - killedAt} ms`);
    const onZero = live.filter((_, i) => workers[i] === 0);
    const onOne = live.filter((_, i) => workers[i] === 1);
    await Promise.all(onZero.map((c) => c.closed));
    await allEcho(onOne, 'after-kill');
    expect(onOne.every((c) => c.closeCode === null)).to.equal(true);
  });

  /** Worker index per client from the session id its join returned. */
  function joinIndex(cs: RawClient[]): number[] {
    return cs.map((c) => {
      const f = c.frames.find((fr) => fr[3] === 'phx_reply' && (fr[4] as { response?: { session?: string } }).response?.session);
      return Number((f![4] as { response: { session: string } }).response.session.split('.')[1]);
    });
  }
});

describe('host: graceful stop', function () {
  this.timeout(60000);
  const lab = useLab();
  const nats = withNats();

  it(`SIGTERM with ${N} sessions: every client sees close 1012 and the host exits 0 within the timeout`, async () => {
    const host = await lab.startHost({ nats: nats.url, workers: 2, flags: { 'cluster.shutdownTimeoutMs': 8000 } });
    try {
      const clients = await openMany(N, host.url, (i) => token(`s${i}`));
      await joinAll(clients);
      const t0 = Date.now();
      host.kill('SIGTERM');
      const codes = await Promise.all(clients.map((c) => c.closed));
      const { code } = await host.exit;
      expect(Date.now() - t0).to.be.below(8000);
      expect(code).to.equal(0);
      expect(codes.filter((c) => c !== 1012)).to.deep.equal([]);
    } finally {
      await host.stop();
    }
  });
});

describe('host: restart intensity', function () {
  this.timeout(30000);
  const lab = useLab();
  const nats = withNats();

  it('workers that crash at start make the primary give up after cluster.maxRestarts and exit non-zero', async () => {
    // A port already taken: every worker fails at listen, a realistic crash at start.
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as { port: number }).port;
    try {
      const host = await lab.startHost({ nats: nats.url, workers: 1, noWait: true, flags: { 'http.port': port, 'cluster.maxRestarts': 3, 'cluster.restartBackoffMs': 10 } });
      const { code } = await host.exit;
      expect(code).to.not.equal(0);
      const restarts = host.lines.filter((l) => l.msg === 'worker died; restarting');
      expect(restarts).to.have.length(3);
      const fatal = host.lines.find((l) => l.level === 60 && l.worker === 'primary');
      expect(String(fatal?.msg)).to.match(/cluster\.maxRestarts/);
      await host.stop();
    } finally {
      blocker.close();
    }
  });
});

describe('host: stuck workers', function () {
  this.timeout(30000);
  const hangMs = 1000;
  const { host } = withHost({ workers: 2, flags: { 'cluster.workerPingMs': 100, 'cluster.workerHangMs': hangMs } });

  it('a worker that stops answering pings (SIGSTOP) is killed after cluster.workerHangMs and replaced', async () => {
    const pid = host.workerPids().get(1)!;
    const from = host.lines.length;
    process.kill(pid, 'SIGSTOP');
    const killed = await host.waitFor((l) => l.msg === 'worker stopped answering pings; killing it (SIGKILL)', 10000, from);
    expect(killed.workerIndex).to.equal(1);
    expect(killed.pid).to.equal(pid);
    expect(killed.silentMs).to.be.above(hangMs);
    await host.waitFor((l) => l.msg === 'worker listening' && l.worker === 1, 10000, from);
    expect(host.workerPids().get(1)).to.not.equal(pid);
    // The other worker was left alone.
    expect(host.lines.slice(from).filter((l) => l.msg === 'worker forked' && l.workerIndex === 0)).to.deep.equal([]);
  });
});
