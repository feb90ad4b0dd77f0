/**
 * Issue 21: no client can take a host down. The storage attack (sessions
 * spraying maximum-size dms and room messages to random ids at the
 * frame-rate limit), scaled to a 2-core CI machine: one host, 2 workers with
 * a 256 MiB heap (cluster.workerHeapMb) and a 16 MiB storage budget each,
 * and 8 abusers (at the frame-rate limit, 30 frames a second here, with
 * 16 KiB bodies) whose offered load passes the budget about six times over.
 * An ordinary pair of users talks throughout.
 *
 * Then the restart of a host whose shards are near the budget (SIGTERM and
 * start; kill -9 and start): it serves again within a bound, no worker is
 * killed as hung, nothing acknowledged is lost.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startNatsServer, type NatsServerHandle } from '../support/nats.js';
import { startHost, token, type HostHandle, type LogLine } from '../support/host.js';
import { RawClient, type Frame } from '../support/clients.js';
import { Subjects } from '../../src/bus/subjects.js';
import { OrdinaryPair, openAbusers, tally, type Abuser } from '../../bench/lib/abuse.js';

const MiB = 1024 * 1024;
const HEAP_MB = 256;
const BUDGET_MB = 16;
/** RSS a worker may reach: its heap limit plus what a Node process holds outside the heap (code, buffers, sockets). */
const RSS_BOUND = (HEAP_MB + 160) * MiB;
const ATTACK_MS = 24_000;
/** session.ratePerSecond in this test, and the rate every abuser sends at. */
const RATE = 30;

interface Stats { rss: number; heapUsed: number; storageBytes: number; storageBudgetBytes: number; storageRefusedFull: number; storageRefusedShare: number; storageRefusedShard: number; sendQuotaRefused: number; restoring: number }

/** A worker's storage counters (asked over NATS: a worker that is slow to answer gives null, counted). */
async function workerStats(nc: NatsConnection, cluster: string, host: string, w: number): Promise<Stats | null> {
  try {
    const r = await nc.request(new Subjects(cluster).worker(host, w), JSON.stringify({ t: 'stats' }), { timeout: 2000 });
    return r.json<Stats>();
  } catch { return null; }
}

/** Resident set size of a process, from /proc (needs nothing of the process itself). */
function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

async function metrics(port: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const sums = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)\{[^}]*\} (\S+)$/.exec(line);
    if (m) sums.set(m[1]!, (sums.get(m[1]!) ?? 0) + Number(m[2]));
  }
  return sums;
}

type Reply = { status: string; response: Record<string, unknown> };

/** Every message id user has waiting (nobody acknowledges them here, so the replay ends with the join's seq). */
async function inboxIds(url: string, user: string, localAddress: string): Promise<Set<string>> {
  const c = await RawClient.open(url, token(user), { localAddress });
  try {
    const j = await c.join(`user:${user}`, { last_seq: 0 }, 'u', 10000);
    expect((j[4] as Reply).status, `${user}: ${JSON.stringify(j[4])}`).to.equal('ok');
    const seq = (j[4] as Reply).response.seq as number;
    if (seq > 0) await c.waitFor((f) => f[3] === 'dm' && (f[4] as { seq: number }).seq === seq, 10000);
    return new Set(c.frames.filter((f: Frame) => f[3] === 'dm').map((f) => (f[4] as { id: string }).id));
  } finally { c.close(); }
}

const hungOrDied = (l: LogLine) => l.msg === 'worker died; restarting' || /stopped answering pings/.test(String(l.msg)) || l.level === 60;

describe('abuse: no client can take a host down (storage budget, quotas)', function () {
  this.timeout(120_000);
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  let host: HostHandle;
  let abusers: Abuser[] = [];
  let pair: OrdinaryPair | null = null;
  const cluster = 'abuse';

  before(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    host = await startHost({
      nats: nats.url, workers: 2, flags: {
        'cluster.name': cluster, 'cluster.workerHeapMb': HEAP_MB, 'storage.budgetMb': BUDGET_MB,
        // Fewer shards than the default 1024: less start-up work on the shared machine; the sprays still spread over all.
        shards: 256,
        // The frame-rate limit, scaled to the machine: the abusers send at it.
        'session.ratePerSecond': RATE, 'session.rateBurst': 2 * RATE,
        // Latency is not what this test measures, and the machine is shared: a request may wait longer before it counts as lost.
        'request.timeoutMs': 15000,
        // Periodic snapshots run during the attack (every changed shard, whole).
        'persistence.snapshotIntervalMs': 8000,
        // This test is about storage, on a 2-core machine shared with other runs:
        // more slack before a starved host fences itself (fencing has its own tests).
        'cluster.heartbeatMs': 500, 'cluster.suspectAfterMs': 3000, 'cluster.downAfterMs': 6000, 'cluster.selfFenceMs': 5000,
      },
    });
  });

  after(async () => {
    for (const a of abusers) a.close();
    pair?.close();
    await host?.stop();
    await nc?.close();
    await nats?.stop();
  });

  it('sprayed max-size dms and room messages at the frame-rate limit: refused with quota and storage errors; the host stays up, RSS levels off under the bound, an ordinary user keeps talking, nothing acknowledged is lost', async () => {
    const heapLine = await host.waitFor((l) => l.msg === 'storage budget');
    expect(heapLine.heapLimitMb).to.be.within(HEAP_MB, HEAP_MB + 64);
    expect(heapLine.budgetMb).to.equal(BUDGET_MB);
    const logFrom = host.lines.length;

    pair = new OrdinaryPair(host.url, token, ['alice', 'bob'], '127.0.0.2');
    await pair.open();
    abusers = await openAbusers({
      url: host.url, token, localAddress: (i) => `127.0.0.${10 + i}`,
      kinds: { spray: 3, fill: 3, roomSpray: 1, roomFill: 1 }, perSecond: RATE, bodyBytes: 16384, fillTargets: 12,
    });
    const pids = [...host.workerPids().values()];
    expect(pids).to.have.length(2);
    const baseline = pids.map(rssOf);
    pair.start(250);
    for (const a of abusers) a.start();

    // Sample both workers once a second while the attack runs: RSS from /proc, stored bytes from the workers.
    const samples: { t: number; rss: number[]; stored: number[] }[] = [];
    let statsMissed = 0;
    const t0 = Date.now();
    while (Date.now() - t0 < ATTACK_MS) {
      await new Promise((r) => setTimeout(r, 1000));
      const st = await Promise.all([0, 1].map((w) => workerStats(nc, cluster, 'h1', w)));
      statsMissed += st.filter((x) => x === null).length;
      samples.push({ t: Date.now() - t0, rss: pids.map(rssOf), stored: st.map((x) => x?.storageBytes ?? 0) });
    }
    for (const a of abusers) a.stop();
    pair.stop();
    // Let the last replies come in.
    await new Promise((r) => setTimeout(r, 2000));

    const t = tally(abusers);
    const offered = abusers.reduce((n, a) => n + a.sent, 0) * 16384;
    const peakRss = Math.max(...samples.flatMap((s) => s.rss));
    const peakStored = Math.max(...samples.flatMap((s) => s.stored));
    const third = Math.floor(samples.length / 3);
    const rssMid = Math.max(...samples.slice(third, 2 * third).flatMap((s) => s.rss));
    const rssEnd = Math.max(...samples.slice(2 * third).flatMap((s) => s.rss));
    const ordinary = { sent: pair.sent.length, failed: pair.sent.filter((s) => !s.ok).map((s) => s.code), p99Ms: pair.sent.map((s) => s.ms).sort((a, b) => a - b)[Math.floor(pair.sent.length * 0.99)] ?? 0, acks: pair.acks, ackErrors: pair.ackErrors };
    console.log(`      abuse: ${JSON.stringify({
      replies: t, offeredMiB: Math.round(offered / MiB), budgetMiB: BUDGET_MB, peakStoredMiB: +(peakStored / MiB).toFixed(1),
      statsMissed, rssMiB: { baseline: baseline.map((b) => Math.round(b / MiB)), mid: Math.round(rssMid / MiB), end: Math.round(rssEnd / MiB), peak: Math.round(peakRss / MiB) },
      closed: abusers.filter((a) => a.closeCode !== null).map((a) => `${a.kind}:${a.closeCode}`), ordinary,
    })}`);

    // The offered load passed the budget several times over, and was refused with the documented codes.
    expect(offered).to.be.greaterThan(4 * BUDGET_MB * MiB);
    expect(t.SANDBAR_ERR_SEND_QUOTA ?? 0, 'quota refusals').to.be.greaterThan(100);
    expect(t.SANDBAR_ERR_STORAGE_FULL ?? 0, 'storage refusals').to.be.greaterThan(100);
    for (const code of Object.keys(t)) expect(['ok', 'SANDBAR_ERR_SEND_QUOTA', 'SANDBAR_ERR_STORAGE_FULL', 'SANDBAR_ERR_INBOX_FULL', 'SANDBAR_ERR_RATE_LIMITED', 'join:SANDBAR_ERR_STORAGE_FULL'], code).to.include(code);
    // Stored state stayed within the budget (a replica copy never refuses: a little slack), RSS under the bound and level.
    expect(peakStored, 'stored bytes').to.be.at.most(BUDGET_MB * MiB * 1.05);
    expect(statsMissed, 'stats answered').to.be.below(samples.length);
    expect(peakRss, 'peak RSS').to.be.below(RSS_BOUND);
    expect(rssEnd, 'RSS in the last third vs the middle third').to.be.below(rssMid + 48 * MiB);
    // The host stayed up: no worker died, none was killed as hung, no restart.
    expect(host.proc.exitCode).to.equal(null);
    expect(host.lines.slice(logFrom).filter(hungOrDied).map((l) => l.msg)).to.deep.equal([]);
    expect((await metrics(host.adminPort)).get('sandbar_worker_restarts_total')).to.equal(0);
    // The ordinary pair: every push answered ok, every dm received, every ack ok.
    expect(ordinary.sent).to.be.greaterThan(2 * (ATTACK_MS / 250) * 0.8);
    expect(ordinary.failed).to.deep.equal([]);
    expect(pair.unanswered).to.equal(0);
    for (const [i, u] of pair.users.entries()) {
      const sentByOther = pair.sent.filter((s) => s.from === pair!.users[1 - i]).map((s) => s.mid);
      expect([...sentByOther].filter((m) => !pair!.got.get(u)!.has(m)), `${u} missed`).to.deep.equal([]);
    }
    expect(pair.ackErrors).to.equal(0);

    // Every acknowledged dm is still readable: all of the fillers', a sample of the sprayers'.
    const want = new Map<string, Set<string>>();
    for (const a of abusers.filter((x) => x.kind === 'fill' || x.kind === 'spray')) {
      const acked = a.kind === 'fill' ? a.acked : a.acked.slice(0, 8);
      for (const k of acked) {
        let s = want.get(k.to);
        if (!s) want.set(k.to, (s = new Set()));
        s.add(k.mid);
      }
    }
    expect(want.size).to.be.greaterThan(12);
    // One at a time: a join's reply carries its whole replay, and the worker bus
    // sends the messages for one worker in one turn as one NATS message, which
    // passes max_payload when several big replays meet (an open finding in
    // docs/storage.md: the replies are then dropped and their joins time out).
    let checked = 0;
    for (const [to, mids] of want) {
      const have = await inboxIds(host.url, to, '127.0.0.3');
      expect([...mids].filter((m) => !have.has(m)), `acknowledged dms to ${to} missing`).to.deep.equal([]);
      checked += mids.size;
    }
    console.log(`      abuse: ${checked} acknowledged dms to ${want.size} users read back`);
  });
});

describe('abuse: a host whose shards are near the budget restarts and serves again', function () {
  this.timeout(180_000);
  /**
   * From spawning the new host to "host ready" (every shard restored and
   * served), on the shared 2-core machine: measured 6.4-19.8 s, of which the
   * workers' start-up (loading their code) alone took 1-4 s under load.
   */
  const READY_BOUND_MS = 30_000;
  const SHARDS = 64;
  const USERS = 120;
  /** This test's budget: the dms below fill it to its warning mark (80 %). */
  const RESTART_BUDGET_MB = 24;
  const PER_USER = 10;
  let nats: NatsServerHandle;
  let host: HostHandle | null = null;
  const cluster = 'restart';
  const flags = {
    'cluster.name': cluster, shards: SHARDS, 'cluster.workerHeapMb': HEAP_MB, 'storage.budgetMb': RESTART_BUDGET_MB,
    'persistence.snapshotIntervalMs': 1000,
    // The shipped hang detector (5 s), pinging often: a restore that held the event loop would get its worker killed.
    'cluster.workerPingMs': 250,
    'session.ratePerSecond': 0, 'sender.newRecipientsPerMin': 0, 'sender.bytesPerMin': 0,
  };
  /** user → ids of the dms acknowledged to them. */
  const acked = new Map<string, Set<string>>();

  before(async () => { nats = await startNatsServer(); });
  after(async () => { await host?.stop(); await nats?.stop(); });

  /** Starts a host on the same NATS (its store outlives hosts) and times it to "host ready" (waiting past the bound, to report it). */
  async function restart(): Promise<{ host: HostHandle; readyMs: number }> {
    const t0 = Date.now();
    const h = await startHost({ nats: nats.url, workers: 2, flags, noWait: true });
    host = h;
    const ready = await h.waitFor((l) => l.msg === 'host ready', 3 * READY_BOUND_MS);
    url = `ws://127.0.0.1:${ready.port as number}`;
    return { host: h, readyMs: Date.now() - t0 };
  }

  /** The current host's WebSocket address (from its "host ready" line). */
  let url = '';

  async function checkAllReadable(): Promise<number> {
    let n = 0;
    for (const [user, mids] of acked) {
      const have = await inboxIds(url, user, '127.0.0.3');
      expect([...mids].filter((m) => !have.has(m)), `acknowledged dms to ${user} missing`).to.deep.equal([]);
      n += mids.size;
    }
    return n;
  }

  it('fills the shards to near the budget (max-size dms to offline users)', async () => {
    ({ host } = await restart());
    const body = 'x'.repeat(16382);
    const senders = await Promise.all([0, 1, 2, 3].map(async (i) => {
      const c = await RawClient.open(url, token(`filler${i}`), { localAddress: `127.0.0.${20 + i}` });
      expect(((await c.join(`user:filler${i}`, {}, 'u'))[4] as Reply).status).to.equal('ok');
      return c;
    }));
    const t0 = Date.now();
    let refused = 0;
    // Each sender keeps 16 dms in flight.
    const jobs: [number, number][] = [];
    for (let k = 0; k < PER_USER; k++) for (let u = 0; u < USERS; u++) jobs.push([u, k]);
    await Promise.all(senders.flatMap((c, i) => Array.from({ length: 16 }, async () => {
      for (let j = jobs.pop(); j; j = jobs.pop()) {
        const [u, k] = j;
        const to = `away${u}`;
        const r = (await c.request('u', `user:filler${i}`, 'dm', { to, id: `d${u}-${k}`, body }, 15000))[4] as Reply;
        if (r.status === 'ok') {
          let s = acked.get(to);
          if (!s) acked.set(to, (s = new Set()));
          s.add(`d${u}-${k}`);
        } else {
          expect(r.response.code).to.equal('SANDBAR_ERR_STORAGE_FULL');
          refused++;
        }
      }
    })));
    for (const c of senders) c.close();
    const st = await Promise.all([0, 1].map(async (w) => {
      const nc = await connect({ servers: nats.url });
      try { return await workerStats(nc, cluster, 'h1', w); } finally { await nc.close(); }
    }));
    const stored = st.map((s) => s?.storageBytes ?? 0);
    const total = [...acked.values()].reduce((n, s) => n + s.size, 0);
    console.log(`      restart: ${total} dms acknowledged (${refused} refused) in ${Date.now() - t0} ms; stored ${stored.map((b) => (b / MiB).toFixed(1)).join(' / ')} MiB of ${RESTART_BUDGET_MB}`);
    // Near the budget.
    for (const b of stored) expect(b).to.be.above(0.75 * RESTART_BUDGET_MB * MiB);
  });

  for (const how of ['SIGTERM', 'kill -9'] as const) {
    it(`${how}, then start: ready within ${READY_BOUND_MS / 1000} s, no worker killed as hung, every acknowledged dm still there`, async () => {
      if (how === 'SIGTERM') {
        host!.kill('SIGTERM');
        expect((await host!.exit).code).to.equal(0);
        expect(host!.lines.some((l) => l.msg === 'shard snapshots written before stop')).to.equal(true);
      } else {
        // Every write is older than two periodic snapshot rounds by now.
        await new Promise((r) => setTimeout(r, 3000));
        host!.killHost();
        await host!.exit;
      }
      await host!.stop();
      let readyMs: number;
      ({ host, readyMs } = await restart());
      const restored = host.lines.filter((l) => l.msg === 'shard restored from JetStream').length;
      const late = host.lines.filter((l) => /late answering pings/.test(String(l.msg))).length;
      console.log(`      restart (${how}): host ready ${readyMs} ms after spawn; ${restored} shards restored; late-pong warnings ${late}`);
      expect(readyMs).to.be.below(READY_BOUND_MS);
      expect(restored).to.be.above(SHARDS / 2);
      expect(host.lines.filter(hungOrDied).map((l) => l.msg)).to.deep.equal([]);
      const n = await checkAllReadable();
      expect(n).to.be.above(900);
    });
  }
});
