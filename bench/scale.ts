/**
 * The scale run: one host with as many workers as the sessions need, one
 * client fleet, as many Phoenix sessions as this machine allows (up to
 * --target), then server memory per session, connect rate and the latency of
 * a broadcast to a room whose members sit on every worker. Unattended and
 * bounded: everything it started is killed by --max-seconds at the latest.
 *
 *   npm run build && node dist/bench/scale.js --target 150000
 *   node dist/bench/scale.js --help
 *
 * Steps: read the machine's limits (cores, MemAvailable, RLIMIT_NOFILE, the
 * ephemeral port range, conntrack) and plan workers and client processes at
 * <= --per-process sessions each (both ends hold one file per session);
 * check that every client source address 127.0.0.(2+i) binds; start
 * nats-server (JetStream) and `sandbar start` with that many workers; ramp
 * the sessions at --rate (token, upgrade, join `user:<id>`, heartbeats every
 * --heartbeat-ms) until the target, the ramp's share of the time budget,
 * the failure limit, or low memory stops it; hold --hold-seconds; read the
 * host's process-tree RSS from /proc (against the baseline before the ramp)
 * and the per-worker session counts from /metrics; then --room-members more
 * sessions join one room and a sender posts --messages messages, each
 * member's receive time against the send time (CLOCK_MONOTONIC) in HDR
 * histograms merged across client processes. Prints ONE `SUMMARY scale` line
 * with what stopped the ramp, and writes every figure to --out as JSON.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError, boolFlag, intFlag, numFlag, parseFlags, usage, type Flags } from './lib/args.js';
import { readMetrics, sleep } from './lib/metrics.js';
import { gcPreloadEnv, gcTree, processTree, rssBytes, treeCpuMicros } from './lib/proc.js';
import { startBenchHost, startBenchNats } from './lib/servers.js';
import type { SandbarHost } from '../test/support/host.js';
import type { NatsServer } from '../test/support/nats.js';
import { Fleet, type FleetReport } from './load/fleet.js';
import { formatReasons, mergeHistograms, summarize, type LatencySummary } from './lib/report.js';
import { WorkloadFleet } from './load/workload.js';
import { percentile, totalReceived } from './room-fanout.js';
import { memAvailableBytes, plan, readLimits, readNumber, tcpSockstat, unbindableAddresses, type MachineLimits, type Plan } from './scale/limits.js';

const FLAGS: Flags = {
  help: { boolean: true, doc: 'Print this help.' },
  target: { doc: 'Sessions to hold (lowered to what the machine allows: files, source addresses, memory, conntrack).', default: '2000000' },
  workers: { doc: 'Sandbar worker processes.', default: 'ceil(target / per-process)' },
  clients: { doc: 'Client processes, one source address 127.0.0.(2+i) each (at most 253).', default: 'ceil(target / per-process)' },
  'per-process': { doc: 'Most sessions one worker or client process holds (each is one open file at both ends).', default: 'min(15000, 0.8 x (ulimit -n - 1000))' },
  rate: { doc: 'Session attempts per second across the fleet (a ceiling: --concurrency handshakes in flight at most).', default: '700 x cores' },
  concurrency: { doc: 'Most handshakes (upgrade + join) in flight across the fleet.', default: 'max(512, 128 x cores)' },
  'heartbeat-ms': { doc: 'Phoenix heartbeat period of every session (0: none).', default: '30000' },
  'max-seconds': { doc: 'Hard bound on the whole run, clean-up included.', default: '420' },
  'hold-seconds': { doc: 'Hold the sessions this long after the ramp before measuring.', default: '10' },
  'room-members': { doc: 'Sessions (on top of --target) that join the broadcast room; 0 skips the broadcast.', default: '1000' },
  messages: { doc: 'Measured broadcast messages (after 5 warm-up ones).', default: '20' },
  'interval-ms': { doc: 'Time between two broadcast messages.', default: '250' },
  'nats-server': { doc: 'nats-server binary (JetStream: Sandbar keeps shard ownership in a KV bucket).', default: 'nats-server on PATH' },
  sandbar: { doc: 'Sandbar entry point.', default: 'dist/src/main.js' },
  'sandbar-args': { doc: 'Extra flags for `sandbar start`, space-separated (e.g. "--shards=4096").' },
  out: { doc: 'Write the result as JSON to this file.' },
  'log-dir': { doc: 'Where the host and nats-server logs go.', default: 'a new directory under the OS temp dir' },
  'dry-run': { boolean: true, doc: 'Print the limits and the plan, start nothing.' },
};

/** Why the ramp ended (first one wins). */
type Stop =
  | 'target reached' | 'time budget' | 'memory' | 'fd limit' | 'port exhaustion' | 'conntrack table' | 'source addresses' | 'connection errors'
  | 'host exited' | 'client exited' | 'host start' | 'hard deadline' | 'interrupted' | 'harness error';

interface Broadcast {
  members: number;
  joined: number;
  /** Server processes the members landed on (from the session ids of their echo joins). */
  workersCovered: number;
  setupSeconds: number;
  measured: number;
  complete: number;
  missingDeliveries: number;
  /** Send -> the last member got it, over messages (ms). */
  allReceivedP50Ms?: number;
  allReceivedP99Ms?: number;
  /** Every single delivery (HDR, merged over client processes). */
  delivery: LatencySummary;
  error?: string;
}

interface Result {
  startedAt: string;
  argv: string[];
  targetAsked: number;
  limits: MachineLimits;
  plan?: Plan;
  rate?: number;
  concurrency?: number;
  stoppedBy?: Stop;
  stopDetail?: string;
  hostStartSeconds?: number;
  sessionsHeld?: number;
  sessionsOpened?: number;
  sessionsAttempted?: number;
  failed?: Record<string, number>;
  closedByServer?: Record<string, number>;
  connectRate?: number;
  rampSeconds?: number;
  connectLatency?: LatencySummary;
  serverSessions?: number;
  perWorkerMin?: number;
  perWorkerMax?: number;
  hostRssBaselineBytes?: number;
  hostRssBytes?: number;
  natsRssBytes?: number;
  clientRssBytes?: number;
  /** (host tree RSS after - before the ramp) / sessions held, and total host RSS / sessions. */
  rssPerSessionBytes?: number;
  rssTotalPerSessionBytes?: number;
  /** Host tree RSS growth per session between a reading a quarter into the ramp and one at its end (no start-up memory in it). */
  rssSlopePerSessionBytes?: number;
  heapPerSessionBytes?: number;
  /** utime+stime of the host's process tree and of nats-server over the ramp, and of the client processes, per session opened (µs). */
  serverCpuPerSessionUs?: number;
  natsCpuPerSessionUs?: number;
  clientCpuPerSessionUs?: number;
  memAvailableEndBytes?: number;
  hostLogEmfile?: number;
  sockstat?: string;
  broadcast?: Broadcast;
  elapsedSeconds?: number;
  logDir?: string;
  notes: string[];
}

const here = (rel: string) => fileURLToPath(new URL(rel, import.meta.url));
const MiB = 2 ** 20;
const kib = (b: number | undefined) => (b === undefined ? '-' : (b / 1024).toFixed(2));
const n0 = (x: number | undefined) => (x === undefined ? '-' : Math.round(x).toLocaleString('en-US'));

function log(msg: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

function treeRss(pid: number): number {
  let sum = 0;
  for (const p of processTree(pid)) sum += rssBytes(p);
  return sum;
}

/** The failure reason that dominates, as a stop cause. */
function classifyFailures(failed: Record<string, number>): { stop: Stop; detail: string } {
  const top = Object.entries(failed).sort((a, b) => b[1] - a[1])[0];
  const all = formatReasons(failed);
  if (!top) return { stop: 'connection errors', detail: all };
  const k = top[0];
  if (k === 'EMFILE' || k === 'ENFILE') return { stop: 'fd limit', detail: `client processes ran out of file descriptors (${all})` };
  if (k === 'EADDRNOTAVAIL' || k === 'EADDRINUSE') return { stop: 'port exhaustion', detail: `no free ephemeral port for a source address (${all})` };
  if (k === 'ECONNRESET' || k.startsWith('closed-before-open')) return { stop: 'connection errors', detail: `connections reset before the join (a worker out of file descriptors resets accepted connections; see hostLogEmfile) (${all})` };
  const ct = readNumber('/proc/sys/net/netfilter/nf_conntrack_count');
  const ctMax = readNumber('/proc/sys/net/netfilter/nf_conntrack_max');
  if (k === 'timeout' && ct !== undefined && ctMax !== undefined && ct >= ctMax * 0.95) return { stop: 'conntrack table', detail: `nf_conntrack_count ${ct} of nf_conntrack_max ${ctMax}: new connections dropped (${all})` };
  if (k === 'timeout') return { stop: 'connection errors', detail: `handshakes timed out (server or machine saturated, or a full conntrack table) (${all})` };
  return { stop: 'connection errors', detail: all };
}

async function measureBroadcast(url: string, secret: string, members: number, messages: number, intervalMs: number, budgetMs: number, sourceAddresses: string[] | undefined): Promise<Broadcast> {
  const warmup = 5;
  const b: Broadcast = { members, joined: 0, workersCovered: 0, setupSeconds: 0, measured: messages, complete: 0, missingDeliveries: 0, delivery: summarize(mergeHistograms([])) };
  const processes = Math.max(1, Math.min(4, Math.ceil(members / 2000)));
  const until = Date.now() + budgetMs;
  const fleet = await WorkloadFleet.start({ url, proto: 'phoenix', processes, secret, connectConcurrency: 64, connectTimeoutMs: 30000, ...(sourceAddresses ? { sourceAddresses } : {}) });
  try {
    const room = `scale${randomBytes(3).toString('hex')}`;
    const setup = await fleet.roomSetup({ room, prefix: `${room}m`, members }, Math.max(5000, until - Date.now() - (warmup + messages) * intervalMs - 10000));
    b.joined = setup.ready - 1;
    b.setupSeconds = setup.seconds;
    b.workersCovered = Object.keys(setup.perWorker).length;
    log(`broadcast: ${setup.ready}/${members + 1} joined room ${room} (sender included) in ${setup.seconds.toFixed(1)} s, on ${b.workersCovered} server processes${Object.keys(setup.failed).length ? `; failed ${formatReasons(setup.failed)}` : ''}`);
    if (setup.ready < members + 1) throw new Error(`only ${setup.ready} of ${members + 1} room members joined (failed ${formatReasons(setup.failed)})`);
    await sleep(2000);
    const count = warmup + messages;
    await fleet.roomSend({ count, intervalMs, pad: 'p'.repeat(64) });
    await sleep(count * intervalMs);
    let rs = await fleet.roomReports();
    const waitUntil = Math.min(until, Date.now() + 10000);
    while (Date.now() < waitUntil) {
      let done = true;
      for (let k = 0; k < count && done; k++) if (totalReceived(rs, k) < members) done = false;
      if (done) break;
      await sleep(250);
      rs = await fleet.roomReports();
    }
    const sentAt = rs[0]!.sentAt;
    const all: number[] = [];
    for (let k = warmup; k < count; k++) {
      const got = totalReceived(rs, k);
      if (!sentAt[k] || got < members) {
        b.missingDeliveries += members - got;
        continue;
      }
      all.push(Math.max(...rs.map((x) => x.last[k] ?? 0)) - sentAt[k]!);
    }
    all.sort((x, y) => x - y);
    b.complete = all.length;
    const p50 = percentile(all, 50);
    const p99 = percentile(all, 99);
    if (p50 !== undefined) b.allReceivedP50Ms = Math.round(p50 * 100) / 100;
    if (p99 !== undefined) b.allReceivedP99Ms = Math.round(p99 * 100) / 100;
    b.delivery = summarize(mergeHistograms(rs.map((x) => x.hDelivery)));
  } catch (err) {
    b.error = (err as Error).message;
  } finally {
    fleet.kill();
  }
  return b;
}

function summaryLine(r: Result): string {
  const b = r.broadcast;
  const bc = !b ? 'broadcast not measured' : b.error && b.complete === 0
    ? `broadcast failed (${b.error.split('\n')[0]})`
    : `broadcast to ${n0(b.joined)} members on ${b.workersCovered} workers: delivery p50 ${b.delivery.p50Ms} ms p99 ${b.delivery.p99Ms} ms, all-received p50 ${b.allReceivedP50Ms ?? '-'} ms p99 ${b.allReceivedP99Ms ?? '-'} ms (${b.complete}/${b.measured} complete)`;
  const p = r.plan;
  return `SUMMARY scale: held ${n0(r.sessionsHeld)} of ${n0(p?.target)} sessions (asked ${n0(r.targetAsked)}) on ${p?.workers ?? '-'} workers / ${p?.clients ?? '-'} client processes, ${r.limits.cores} cores; `
    + `server RSS ${kib(r.rssPerSessionBytes)} KiB/session over baseline (${kib(r.rssSlopePerSessionBytes)} KiB growth per session over the last 3/4 of the ramp, ${kib(r.rssTotalPerSessionBytes)} KiB total), heap ${kib(r.heapPerSessionBytes)} KiB/session; `
    + `connect rate ${n0(r.connectRate)} sessions/s (p50 ${r.connectLatency?.p50Ms ?? '-'} ms, p99 ${r.connectLatency?.p99Ms ?? '-'} ms); ${bc}; `
    + `stopped by: ${r.stoppedBy ?? 'unknown'}${r.stopDetail ? ` (${r.stopDetail})` : ''}; ${n0(r.elapsedSeconds)} s`;
}

/** Set once the run has state to report: kills what was started, prints the summary, writes --out. */
let finishOnError: ((err: Error) => number) | undefined;

async function main(): Promise<number> {
  const t0 = Date.now();
  const f = parseFlags(process.argv.slice(2), FLAGS);
  if (boolFlag(f, 'help')) {
    console.log(usage('bench/scale: hold as many Phoenix sessions as this machine allows (up to --target) on one Sandbar host; print RSS per session, connect rate and broadcast latency.', FLAGS));
    return 0;
  }
  const limits = readLimits();
  const maxSeconds = numFlag(f, 'max-seconds', 420, 30);
  const deadlineAt = t0 + maxSeconds * 1000;
  const outPath = f.get('out');
  const targetAsked = intFlag(f, 'target', 2000000, 1);
  const r: Result = { startedAt: new Date(t0).toISOString(), argv: process.argv.slice(2), targetAsked, limits, notes: [] };

  let host: SandbarHost | undefined;
  let nats: NatsServer | undefined;
  let fleet: Fleet | undefined;
  let finished = false;
  const finish = (code: number): number => {
    if (finished) return code;
    finished = true;
    fleet?.kill();
    for (const h of [host, nats]) {
      if (!h) continue;
      try {
        process.kill(-h.pid, 'SIGKILL');
      } catch { /* gone */ }
    }
    r.elapsedSeconds = (Date.now() - t0) / 1000;
    const line = summaryLine(r);
    if (outPath) {
      try {
        writeFileSync(outPath, JSON.stringify({ ...r, summary: line }, null, 2));
      } catch (err) {
        log(`cannot write ${outPath}: ${(err as Error).message}`);
      }
    }
    console.log(line);
    return code;
  };
  finishOnError = (err) => {
    r.stoppedBy ??= 'harness error';
    r.stopDetail ??= err.message.split('\n')[0];
    console.error(err);
    return finish(1);
  };
  // The hard bound: whatever is still running at --max-seconds is killed and the summary printed.
  const hard = setTimeout(() => {
    r.stoppedBy ??= 'hard deadline';
    r.stopDetail ??= `--max-seconds ${maxSeconds} reached`;
    process.exit(finish(1));
  }, Math.max(1000, deadlineAt - Date.now() - 2000));
  hard.unref();
  const onSignal = (sig: string) => {
    r.stoppedBy ??= 'interrupted';
    r.stopDetail ??= sig;
    process.exit(finish(130));
  };
  process.once('SIGINT', () => onSignal('SIGINT'));
  process.once('SIGTERM', () => onSignal('SIGTERM'));

  const want = {
    target: targetAsked,
    ...(f.has('workers') ? { workers: intFlag(f, 'workers', 1, 1) } : {}),
    ...(f.has('clients') ? { clients: intFlag(f, 'clients', 1, 1) } : {}),
    ...(f.has('per-process') ? { perProcess: intFlag(f, 'per-process', 15000, 100) } : {}),
  };
  let p = plan(limits, want);
  r.plan = p;
  const rate = numFlag(f, 'rate', 700 * limits.cores, 1);
  const concurrency = intFlag(f, 'concurrency', Math.max(512, 128 * limits.cores), 1);
  r.rate = rate;
  r.concurrency = concurrency;
  console.log(`scale ${r.startedAt} node ${process.version}: ${limits.cores} cores, ${(limits.memTotalBytes / 2 ** 30).toFixed(1)} GiB (${(limits.memAvailableBytes / 2 ** 30).toFixed(1)} available), `
    + `open files ${limits.fdSoft} (hard ${limits.fdHard}; machine ${limits.filesLeft ?? '?'} left), ${limits.portsPerAddress} ephemeral ports per address, conntrack ${limits.conntrackMax === undefined ? 'not loaded' : `${limits.conntrackCount}/${limits.conntrackMax}`}, load ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  console.log(`plan: ${p.target} sessions (asked ${targetAsked}${p.cut ? `; lowered by ${p.cut}` : ''}), ${p.workers} workers, ${p.clients} client processes, <= ${p.perProcess} per process, `
    + `~${(p.memNeededBytes / 2 ** 30).toFixed(1)} GiB expected; ramp ${rate}/s, ${concurrency} in flight; --max-seconds ${maxSeconds}`);
  for (const w of p.warnings) console.log(`warning: ${w}`);
  if (p.cut) r.notes.push(`target lowered: ${p.cut}`);
  if (boolFlag(f, 'dry-run')) return finish(0);

  const sandbarMain = f.get('sandbar') ?? here('../src/main.js');
  if (!existsSync(sandbarMain)) throw new UsageError(`Sandbar is not built: ${sandbarMain} is missing (npm run build)`);
  // Every client process connects from its own source address 127.0.0.(2+i); where the sandbox refuses those (some do), the
  // processes share the addresses that bind, and each address gives at most one ephemeral port range of connections.
  let sourceAddresses: string[] | undefined;
  const bad = new Set(await unbindableAddresses(p.clients));
  if (bad.size) {
    const good = Array.from({ length: p.clients }, (_, i) => `127.0.0.${2 + i}`).filter((a) => !bad.has(a));
    if (!good.length && (await unbindableAddresses(0)).length === 0) good.push('127.0.0.1');
    if (!good.length) {
      r.stoppedBy = 'source addresses';
      r.stopDetail = `no loopback source address binds (tried 127.0.0.2..${1 + p.clients})`;
      return finish(1);
    }
    sourceAddresses = good;
    const cap = good.length * Math.floor(limits.portsPerAddress * 0.9);
    const note = `${bad.size} of ${p.clients} source addresses do not bind (${[...bad].slice(0, 3).join(', ')}…); client processes share ${good.length} (${good.slice(0, 3).join(', ')}…)`;
    r.notes.push(note);
    console.log(`warning: ${note}`);
    if (p.target > cap) {
      r.plan = p = { ...plan(limits, { ...want, target: cap }), cut: `source addresses: ${good.length} bindable x ${Math.floor(limits.portsPerAddress * 0.9)} ports` };
      console.log(`plan lowered: ${p.target} sessions, ${p.workers} workers, ${p.clients} client processes (${p.cut})`);
    }
  }
  const logDir = f.get('log-dir') ?? mkdtempSync(join(tmpdir(), 'sandbar-scale-'));
  mkdirSync(logDir, { recursive: true });
  r.logDir = logDir;
  const secret = randomBytes(16).toString('hex');

  // --- servers -------------------------------------------------------------
  const hostT0 = Date.now();
  try {
    nats = await startBenchNats(logDir, f.get('nats-server') ?? 'nats-server');
    host = await startBenchHost({
      nats, dir: logDir, workers: p.workers, secret, main: sandbarMain, logName: 'host.log',
      flags: {
        'cluster.schedulingPolicy': 'rr',
        // A worker busy for seconds during the ramp on an overloaded machine must not be killed as hung.
        'cluster.workerHangMs': 60000,
        // Heartbeats every 30 s keep sessions alive; the slack covers heartbeats delayed by a saturated ramp.
        'session.idleTimeoutMs': 120000,
      },
      args: (f.get('sandbar-args') ?? '').split(/\s+/).filter(Boolean),
      // Full GC on SIGUSR2 (bench/lib/gc-preload.js), so RSS and heap are read without the start-up's garbage.
      env: gcPreloadEnv(),
      readyTimeoutMs: Math.max(10000, Math.min(240000, deadlineAt - Date.now() - 60000)),
    });
  } catch (err) {
    r.stoppedBy = 'host start';
    r.stopDetail = (err as Error).message.split('\n').slice(0, 3).join(' | ');
    return finish(1);
  }
  r.hostStartSeconds = (Date.now() - hostT0) / 1000;
  log(`host ready: ${p.workers} workers on port ${host.port} in ${r.hostStartSeconds.toFixed(1)} s; logs in ${logDir}`);
  // Baseline: after a full GC, once two readings 1 s apart agree within 1% (at most 12 s): workers shed start-up memory for a while.
  gcTree(host.pid);
  let prev = treeRss(host.pid);
  for (let k = 0; k < 12; k++) {
    await sleep(1000);
    const cur = treeRss(host.pid);
    const settledNow = Math.abs(cur - prev) <= prev * 0.01;
    prev = cur;
    if (settledNow && k >= 2) break;
  }
  r.hostRssBaselineBytes = prev;
  const heap0 = await readMetrics(host.port).then((m) => m.heapUsed, () => undefined);

  // --- ramp ----------------------------------------------------------------
  // Leave time after the ramp for the hold, the measurements, the broadcast and the clean-up.
  const holdMs = numFlag(f, 'hold-seconds', 10) * 1000;
  const roomMembers = intFlag(f, 'room-members', 1000, 0);
  const messages = intFlag(f, 'messages', 20, 1);
  const intervalMs = numFlag(f, 'interval-ms', 250, 10);
  const reserveMs = holdMs + 28000 + (roomMembers > 0 ? 40000 + (messages + 5) * intervalMs : 0);
  const rampSeconds = Math.max(5, (deadlineAt - Date.now() - reserveMs) / 1000);
  let stop: { stop: Stop; detail: string } | undefined;
  const memFloor = Math.max(2 * 2 ** 30, limits.memTotalBytes * 0.05);
  let lastLine = 0;
  let lastOpened = 0;
  let lastAt = Date.now();
  const hostProc = host.proc;
  let mid: { rss: number; open: number } | undefined;
  const cpuHost0 = treeCpuMicros(host.pid);
  const cpuNats0 = treeCpuMicros(nats.pid);
  fleet = await Fleet.start({
    url: `ws://127.0.0.1:${host.port}/socket/websocket?vsn=2.0.0`,
    sessions: p.target,
    processes: p.clients,
    rate,
    concurrency,
    mode: 'phoenix',
    connectTimeoutMs: 15000,
    heartbeatMs: intFlag(f, 'heartbeat-ms', 30000),
    secret,
    tokenTtlS: 3600,
    userPrefix: 'u',
    deflate: false,
    ...(sourceAddresses ? { sourceAddresses } : {}),
    maxSeconds: rampSeconds,
    maxFailures: Math.max(200, Math.ceil(p.target / 100)),
    onProgress: (pr) => {
      const avail = memAvailableBytes();
      if (!stop && avail < memFloor) {
        stop = { stop: 'memory', detail: `MemAvailable ${(avail / MiB).toFixed(0)} MiB < ${(memFloor / MiB).toFixed(0)} MiB` };
        fleet?.halt();
      }
      if (!stop && (hostProc.exitCode !== null || hostProc.signalCode !== null)) {
        stop = { stop: 'host exited', detail: `sandbar host exited (${hostProc.exitCode ?? hostProc.signalCode}); see ${join(logDir, 'host.log')}` };
        fleet?.halt();
      }
      if (!mid && pr.elapsedS >= rampSeconds / 4 && pr.open >= 1000) mid = { rss: treeRss(host!.pid), open: pr.open };
      if (Date.now() - lastLine >= 10000) {
        const now = Date.now();
        log(`ramp ${pr.elapsedS.toFixed(0)} s: opened ${pr.opened} (${((pr.opened - lastOpened) / ((now - lastAt) / 1000)).toFixed(0)}/s), open ${pr.open}, in flight ${pr.inFlight}, failed ${pr.failedTotal}; MemAvailable ${(avail / 2 ** 30).toFixed(1)} GiB; load ${loadavg()[0]!.toFixed(1)}`);
        lastLine = now;
        lastOpened = pr.opened;
        lastAt = now;
      }
    },
  });
  const outcome = await fleet.ramp();
  const rampReport: FleetReport = await fleet.report();
  if (mid && rampReport.open > mid.open + 1000) r.rssSlopePerSessionBytes = (treeRss(host.pid) - mid.rss) / (rampReport.open - mid.open);
  r.sessionsAttempted = rampReport.attempted;
  r.sessionsOpened = rampReport.opened;
  r.connectRate = rampReport.connectRate;
  r.rampSeconds = rampReport.rampSeconds;
  r.connectLatency = rampReport.latency;
  r.failed = rampReport.failed;
  if (rampReport.opened > 0) {
    r.serverCpuPerSessionUs = (treeCpuMicros(host.pid) - cpuHost0) / rampReport.opened;
    r.natsCpuPerSessionUs = (treeCpuMicros(nats.pid) - cpuNats0) / rampReport.opened;
    r.clientCpuPerSessionUs = rampReport.clientCpuMicros / rampReport.opened;
  }
  if (!stop) {
    switch (outcome.reason) {
      case 'target-reached': stop = { stop: 'target reached', detail: outcome.detail }; break;
      case 'deadline': stop = { stop: 'time budget', detail: `ramp share of --max-seconds (${rampSeconds.toFixed(0)} s) used up at ${rampReport.opened} sessions` }; break;
      case 'child-exit': stop = { stop: 'client exited', detail: outcome.detail }; break;
      case 'fatal': stop = { stop: 'harness error', detail: outcome.detail }; break;
      default: stop = classifyFailures(rampReport.failed);
    }
  }
  r.stoppedBy = stop.stop;
  r.stopDetail = stop.detail;
  log(`ramp ended: ${stop.stop} (${stop.detail}); ${rampReport.opened} opened in ${rampReport.rampSeconds.toFixed(1)} s = ${rampReport.connectRate.toFixed(0)}/s, failed ${formatReasons(rampReport.failed)}; CPU per session: host ${n0(r.serverCpuPerSessionUs)} us, nats ${n0(r.natsCpuPerSessionUs)} us, clients ${n0(r.clientCpuPerSessionUs)} us`);

  // --- hold and measure ----------------------------------------------------
  await sleep(Math.min(holdMs, Math.max(0, deadlineAt - Date.now() - 20000)));
  gcTree(host.pid);
  await sleep(2500);
  const held = await fleet.report();
  r.sessionsHeld = held.open;
  r.closedByServer = held.closedByServer;
  r.clientRssBytes = held.clientRssBytes;
  r.hostRssBytes = treeRss(host.pid);
  r.natsRssBytes = treeRss(nats.pid);
  r.memAvailableEndBytes = memAvailableBytes();
  r.sockstat = tcpSockstat();
  if (held.open > 0) {
    r.rssPerSessionBytes = (r.hostRssBytes - r.hostRssBaselineBytes) / held.open;
    r.rssTotalPerSessionBytes = r.hostRssBytes / held.open;
  }
  try {
    const m = await readMetrics(host.port);
    r.serverSessions = m.sessions;
    const per = m.workers.map((w) => w.sessions);
    if (per.length) {
      r.perWorkerMin = Math.min(...per);
      r.perWorkerMax = Math.max(...per);
    }
    if (heap0 !== undefined && held.open > 0) r.heapPerSessionBytes = (m.heapUsed - heap0) / held.open;
  } catch (err) {
    r.notes.push(`/metrics unreadable after the ramp: ${(err as Error).message}`);
  }
  log(`held ${held.open} sessions (server counts ${r.serverSessions ?? '?'}, per worker ${r.perWorkerMin ?? '?'}..${r.perWorkerMax ?? '?'}; closed by server ${formatReasons(held.closedByServer)}); host RSS ${(r.hostRssBytes / MiB).toFixed(0)} MiB (baseline ${(r.hostRssBaselineBytes / MiB).toFixed(0)}), nats ${(r.natsRssBytes / MiB).toFixed(0)} MiB, clients ${(held.clientRssBytes / MiB).toFixed(0)} MiB`);

  // --- broadcast -----------------------------------------------------------
  const budget = deadlineAt - Date.now() - 15000;
  if (roomMembers > 0 && held.open > 0 && budget > 15000 + (messages + 5) * intervalMs) {
    r.broadcast = await measureBroadcast(`ws://127.0.0.1:${host.port}/socket/websocket?vsn=2.0.0`, secret, roomMembers, messages, intervalMs, budget, sourceAddresses);
    if (r.broadcast.error) log(`broadcast: ${r.broadcast.error}`);
  } else if (roomMembers > 0) {
    r.notes.push(`broadcast skipped: ${held.open === 0 ? 'no session held' : `only ${(budget / 1000).toFixed(0)} s of --max-seconds left`}`);
  }

  try {
    r.hostLogEmfile = (readFileSync(join(logDir, 'host.log'), 'utf8').match(/EMFILE/g) ?? []).length;
  } catch { /* no log */ }
  return finish(0);
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError) {
      console.error(`error: ${err.message}\n\n${usage('bench/scale', FLAGS)}`);
      process.exit(2);
    }
    if (finishOnError) process.exit(finishOnError(err as Error));
    console.error(err);
    process.exit(1);
  },
);
