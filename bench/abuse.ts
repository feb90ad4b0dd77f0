/**
 * The storage attack of issue 21, outside the test suite: one host (the
 * shipped config/sandbar.toml, plus --set overrides) on its own nats-server;
 * abusive sessions send maximum-size dms and room messages at --rate frames
 * a second each for --seconds while an ordinary pair of users talks; once a
 * second, each worker's RSS, heap and stored bytes, and the replies so far.
 * See docs/reliability.md ("Storage attack") for the figures before and after.
 *
 *   npm run build && node dist/bench/abuse.js                      # the 20 sprayers, 20 s
 *   node dist/bench/abuse.js --spray 10 --fill 10 --seconds 60
 *   node dist/bench/abuse.js --set storage.budgetMb=64,cluster.workerHeapMb=512
 *   node dist/bench/abuse.js --help
 *
 * All clients come from one address (127.0.0.1), as in the issue. Exit
 * status 0 when the host stayed up with no worker restarted and the
 * ordinary pair got every reply ok; 1 otherwise.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { exitOnInterrupt, intFlag, runAsMain, type Flags, parseFlags, usage, boolFlag } from './lib/args.js';
import { readMetrics, sleep } from './lib/metrics.js';
import { startBenchNats } from './lib/servers.js';
import { SandbarHost } from '../test/support/host.js';
import { OrdinaryPair, openAbusers, tally } from './lib/abuse.js';
import { mintToken } from '../src/auth/token.js';
import { Subjects } from '../src/bus/subjects.js';

const FLAGS: Flags = {
  help: { boolean: true, doc: 'Print this help.' },
  spray: { doc: 'Sessions sending dms to random, never-seen user ids.', default: '20' },
  fill: { doc: 'Sessions sending dms to 12 fixed ids each (only the byte budgets stop them).', default: '0' },
  'room-spray': { doc: 'Sessions joining a random room, posting once, leaving, again.', default: '0' },
  'room-fill': { doc: 'Sessions posting to one room each.', default: '0' },
  rate: { doc: 'Frames a second per abusive session (the shipped session.ratePerSecond is 100).', default: '95' },
  seconds: { doc: 'How long the attack runs.', default: '20' },
  workers: { doc: 'Workers of the host.', default: '2' },
  set: { doc: 'Comma-separated key=value config overrides, e.g. storage.budgetMb=64,sender.newRecipientsPerMin=0.' },
  config: { doc: 'Config file of the host.', default: 'config/sandbar.toml' },
  'keep-logs': { boolean: true, doc: 'Print where the host\'s log is.' },
};

const MiB = 1024 * 1024;
const SECRET = 'bench-abuse-secret';

interface Stats { rss: number; heapUsed: number; storageBytes: number; storageBudgetBytes: number; inboxExpired: number }

async function stats(nc: NatsConnection, w: number): Promise<Stats | null> {
  try { return (await nc.request(new Subjects('abuse').worker('bench', w), JSON.stringify({ t: 'stats' }), { timeout: 2000 })).json<Stats>(); } catch { return null; }
}

async function main(): Promise<number> {
  const f = parseFlags(process.argv.slice(2), FLAGS);
  if (boolFlag(f, 'help')) { console.log(usage('bench/abuse.ts: the storage attack of issue 21', FLAGS)); return 0; }
  exitOnInterrupt();
  const workers = intFlag(f, 'workers', 2, 1);
  const seconds = intFlag(f, 'seconds', 20, 1);
  const dir = mkdtempSync(join(tmpdir(), 'sandbar-abuse-'));
  const nats = await startBenchNats(dir);
  const overrides = Object.fromEntries((f.get('set') ?? '').split(',').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  // The shipped configuration's limits (not the benches' open ones): the attack is against what a user installs.
  const logPath = join(dir, 'host.log');
  const host = await new SandbarHost({
    nats, workers, logFile: logPath, dataDir: join(dir, 'data'), readyTimeoutMs: 60000,
    flags: { config: f.get('config') ?? 'config/sandbar.toml', 'auth.secret': SECRET, hostId: 'bench', 'cluster.name': 'abuse', ...overrides },
  }).start();
  const url = `ws://127.0.0.1:${host.port}`;
  const token = (u: string) => mintToken(SECRET, u, 3600);
  const nc = await connect({ servers: nats.url });
  const pair = new OrdinaryPair(url, token, ['alice', 'bob']);
  await pair.open();
  const abusers = await openAbusers({
    url, token, perSecond: intFlag(f, 'rate', 95, 1), bodyBytes: 16384, fillTargets: 12,
    kinds: { spray: intFlag(f, 'spray', 20), fill: intFlag(f, 'fill', 0), roomSpray: intFlag(f, 'room-spray', 0), roomFill: intFlag(f, 'room-fill', 0) },
  });
  console.log(`host on ${url} (log ${logPath}); ${abusers.length} abusive sessions for ${seconds} s`);
  console.log('  s  worker  rss MiB  heap MiB  stored MiB  budget MiB');
  pair.start(250);
  for (const a of abusers) a.start();
  let peakRss = 0;
  for (let s = 1; s <= seconds; s++) {
    await sleep(1000);
    for (let w = 0; w < workers; w++) {
      const st = await stats(nc, w);
      if (!st) { console.log(`${String(s).padStart(3)}  ${w}       (no answer in 2 s)`); continue; }
      peakRss = Math.max(peakRss, st.rss);
      console.log(`${String(s).padStart(3)}  ${w}  ${(st.rss / MiB).toFixed(0).padStart(9)}  ${(st.heapUsed / MiB).toFixed(0).padStart(8)}  ${(st.storageBytes / MiB).toFixed(1).padStart(10)}  ${(st.storageBudgetBytes / MiB).toFixed(0).padStart(10)}`);
    }
  }
  for (const a of abusers) a.stop();
  pair.stop();
  await sleep(2000);
  const m = await readMetrics(host.adminPort).catch(() => null);
  const restarts = await fetch(`http://127.0.0.1:${host.adminPort}/metrics`).then((r) => r.text()).then((t) => Number(/sandbar_worker_restarts_total\{[^}]*\} (\S+)/.exec(t)?.[1] ?? NaN)).catch(() => NaN);
  const t = tally(abusers);
  const ok = abusers.reduce((n, a) => n + a.count('ok'), 0);
  const summary = {
    replies: t, acknowledgedMiB: +(ok * 16384 / MiB).toFixed(1), offeredMiB: Math.round(abusers.reduce((n, a) => n + a.sent, 0) * 16384 / MiB),
    peakRssMiB: Math.round(peakRss / MiB), rssAllWorkersNowMiB: m ? Math.round(m.rss / MiB) : null, restarts, hostUp: host.running,
    ordinary: { sent: pair.sent.length, failed: pair.sent.filter((x) => !x.ok).length, p99Ms: Math.round(pair.sent.map((x) => x.ms).sort((a, b) => a - b)[Math.floor(pair.sent.length * 0.99)] ?? 0) },
  };
  console.log(JSON.stringify(summary, null, 2));
  for (const a of abusers) a.close();
  pair.close();
  await nc.close();
  await host.stop();
  await nats.stop();
  return summary.hostUp && summary.restarts === 0 && summary.ordinary.failed === 0 ? 0 : 1;
}

runAsMain(import.meta.url, main, 'bench/abuse.ts: the storage attack of issue 21', FLAGS);
