/**
 * Idle sessions: what one open session costs Sandbar, next to a bare `ws`
 * server (bench/peers/ws-server.ts) with the same worker count and
 * node:cluster scheduling policy, measured in the same run, alternating.
 *
 *   npm run build && node dist/bench/idle-sessions.js --sessions 10000,30000 --workers 2 --policy both
 *   node dist/bench/idle-sessions.js --quick          # 1,000 sessions, one repeat, both policies
 *   node dist/bench/idle-sessions.js --help
 *
 * For every N, policy and repeat, each target runs two phases on a fresh
 * server (Sandbar gets a fresh nats-server too):
 *   memory        baseline /metrics after a settle; open N idle sessions at
 *                 --rate; wait until two readings >= 1 s apart agree within
 *                 2%; report (after - baseline) / N for heap and RSS, summed
 *                 over workers, and the spread of sessions over workers.
 *   connect-rate  open N sessions with no rate limit (at most --concurrency
 *                 handshakes in flight): sessions/s over the ramp, and the
 *                 server's CPU time (utime+stime of the server process tree
 *                 from /proc) per handshake.
 * Sandbar sessions are Phoenix V2 (upgrade + phx_join of user:<id> +
 * heartbeat every 30 s); bare ws sessions are plain upgrades (--peer-mode).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError, boolFlag, exitOnInterrupt, runAsMain, enumFlag, intFlag, numFlag, parseFlags, usage, type Flags } from './lib/args.js';
import { sleep, waitSessions, waitSettled, type MetricsSnapshot, type SettleResult } from './lib/metrics.js';
import { gcPreloadEnv, gcTree, rssBytes, treeCpuMicros } from './lib/proc.js';
import { startBenchHost, startBenchNats, startPeer, type BenchServer } from './lib/servers.js';
import { Fleet, type RampOutcome } from './load/fleet.js';
import { formatReasons, num, type LatencySummary } from './lib/report.js';

const FLAGS: Flags = {
  help: { boolean: true, doc: 'Print this help.' },
  quick: { boolean: true, doc: 'Smoke run: --sessions 1000 --repeat 1, short settles, 5 minute bound (explicit flags still win).' },
  sessions: { doc: 'Comma-separated session counts N.', default: '10000,30000' },
  workers: { doc: 'Worker processes of both servers.', default: '2' },
  policy: { doc: 'node:cluster scheduling policy: none, rr or both.', default: 'both' },
  repeat: { doc: 'Repeats of every (N, policy, target, phase); medians are reported.', default: '3 (1 with --quick)' },
  targets: { doc: 'Comma-separated: sandbar, ws.', default: 'sandbar,ws' },
  phases: { doc: 'Comma-separated: memory, connect-rate.', default: 'memory,connect-rate' },
  rate: { doc: 'memory phase: connection attempts per second across the fleet; keep it below both servers\' connect rate, or the latency columns measure queueing.', default: '1000' },
  concurrency: { doc: 'Most handshakes in flight across the fleet (both phases).', default: '256' },
  'fleet-processes': { doc: 'Client processes.', default: 'ceil(N / 15000)' },
  'peer-mode': { doc: 'Sessions against bare ws: raw (plain upgrade) or phoenix (peer started with --phoenix-reply).', default: 'raw' },
  'settle-max-s': { doc: 'Longest wait for memory to settle (baseline and after the ramp); the reading is then flagged unsettled.', default: '60 (20 with --quick)' },
  'baseline-wait-s': { doc: 'Wait after "host ready" before the first baseline reading.', default: '3 (2 with --quick)' },
  'ramp-max-s': { doc: 'Deadline of each ramp.', default: '300 (60 with --quick)' },
  'max-minutes': { doc: 'Bound on the whole run; what is left is skipped and the partial table printed.', default: '90 (5 with --quick)' },
  'topic-kind': { doc: 'Sandbar sessions join <kind>:<userId> (echo works before the user channel exists).', default: 'user' },
  sandbar: { doc: 'Sandbar entry point.', default: 'dist/src/main.js' },
  'no-gc': { boolean: true, doc: 'Do not force a full GC in the server processes before each memory reading (heap then includes handshake garbage).' },
  'gc-wait-s': { doc: 'Wait after forcing GC before reading /metrics (servers refresh their gauges every 0.5-1 s).', default: '2.5' },
  json: { doc: 'Also write every run\'s raw result to this file.' },
  'log-dir': { doc: 'Where server logs go.', default: 'a new directory under the OS temp dir' },
};

type Target = 'sandbar' | 'ws';
type Phase = 'memory' | 'connect-rate';
type Policy = 'none' | 'rr';

interface Spread { max: number; min: number; ratio: number; perWorker: number[] }

interface RunResult {
  target: Target;
  policy: Policy;
  n: number;
  phase: Phase;
  repeat: number;
  startedAt: string;
  outcome?: RampOutcome;
  opened: number;
  failedTotal: number;
  failed: Record<string, number>;
  closedByServer: Record<string, number>;
  latency?: LatencySummary;
  baseline?: MetricsSnapshot;
  after?: MetricsSnapshot;
  settled?: boolean;
  settleWaitS?: number;
  heapPerSession?: number;
  rssPerSession?: number;
  natsRssPerSession?: number;
  serverSessions?: number;
  spread?: Spread;
  rampSeconds?: number;
  connectRate?: number;
  cpuPerHandshakeUs?: number;
  natsCpuPerHandshakeUs?: number;
  clientCpuPerHandshakeUs?: number;
  logDir: string;
  error?: string;
}

interface Settings {
  sessions: number[];
  workers: number;
  policies: Policy[];
  repeat: number;
  targets: Target[];
  phases: Phase[];
  rate: number;
  concurrency: number;
  fleetProcesses: number | undefined;
  peerMode: 'raw' | 'phoenix';
  settleMaxMs: number;
  baselineWaitMs: number;
  rampMaxS: number;
  deadlineAt: number;
  sandbarMain: string;
  jsonPath: string | undefined;
  logDir: string;
  secret: string;
  topicKind: string;
  gc: boolean;
  gcWaitMs: number;
}

const here = (rel: string) => fileURLToPath(new URL(rel, import.meta.url));

function list<T extends string>(v: string, allowed: readonly T[], name: string): T[] {
  const out = v.split(',').map((s) => s.trim()).filter(Boolean);
  for (const x of out) if (!(allowed as readonly string[]).includes(x)) throw new UsageError(`--${name}: "${x}" is not one of ${allowed.join(', ')}`);
  if (!out.length) throw new UsageError(`--${name} is empty`);
  return out as T[];
}

function settings(argv: string[]): Settings | undefined {
  const f = parseFlags(argv, FLAGS);
  if (boolFlag(f, 'help')) {
    console.log(usage('bench/idle-sessions: memory, connect rate and CPU per idle session, Sandbar against bare ws.', FLAGS));
    return undefined;
  }
  const quick = boolFlag(f, 'quick');
  const sessions = (f.get('sessions') ?? (quick ? '1000' : '10000,30000')).split(',').map((s) => {
    const n = Number(s.trim());
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`--sessions: "${s}" is not a positive integer`);
    return n;
  });
  const policy = enumFlag(f, 'policy', ['none', 'rr', 'both'] as const, 'both');
  const logDir = f.get('log-dir') ?? mkdtempSync(join(tmpdir(), 'sandbar-bench-'));
  mkdirSync(logDir, { recursive: true });
  return {
    sessions,
    workers: intFlag(f, 'workers', 2, 1),
    policies: policy === 'both' ? ['none', 'rr'] : [policy],
    repeat: intFlag(f, 'repeat', quick ? 1 : 3, 1),
    targets: list(f.get('targets') ?? 'sandbar,ws', ['sandbar', 'ws'] as const, 'targets'),
    phases: list(f.get('phases') ?? 'memory,connect-rate', ['memory', 'connect-rate'] as const, 'phases'),
    rate: numFlag(f, 'rate', 1000, 1),
    concurrency: intFlag(f, 'concurrency', 256, 1),
    fleetProcesses: f.has('fleet-processes') ? intFlag(f, 'fleet-processes', 1, 1) : undefined,
    peerMode: enumFlag(f, 'peer-mode', ['raw', 'phoenix'] as const, 'raw'),
    settleMaxMs: numFlag(f, 'settle-max-s', quick ? 20 : 60, 1) * 1000,
    baselineWaitMs: numFlag(f, 'baseline-wait-s', quick ? 2 : 3) * 1000,
    rampMaxS: numFlag(f, 'ramp-max-s', quick ? 60 : 300, 1),
    deadlineAt: Date.now() + numFlag(f, 'max-minutes', quick ? 5 : 90, 0.1) * 60000,
    sandbarMain: f.get('sandbar') ?? here('../src/main.js'),
    jsonPath: f.get('json'),
    logDir,
    secret: randomBytes(16).toString('hex'),
    topicKind: f.get('topic-kind') ?? 'user',
    gc: !boolFlag(f, 'no-gc'),
    gcWaitMs: numFlag(f, 'gc-wait-s', 2.5) * 1000,
  };
}

function spreadOf(s: MetricsSnapshot): Spread {
  const per = s.workers.map((w) => w.sessions);
  const max = Math.max(...per);
  const min = Math.min(...per);
  return { max, min, ratio: min > 0 ? max / min : Infinity, perWorker: per };
}

function log(msg: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

async function startTarget(s: Settings, target: Target, policy: Policy, dir: string): Promise<{ server: BenchServer; nats?: BenchServer; url: string; mode: 'raw' | 'phoenix' }> {
  const env = s.gc ? gcPreloadEnv() : undefined;
  if (target === 'ws') {
    const args = ['--workers', String(s.workers), '--policy', policy, '--port', '0'];
    if (s.peerMode === 'phoenix') args.push('--phoenix-reply');
    const server = await startPeer({ name: 'ws-peer', script: here('./peers/ws-server.js'), args, dir, ...(env ? { env } : {}) });
    const path = s.peerMode === 'phoenix' ? '/socket/websocket?vsn=2.0.0' : '/';
    return { server, url: `ws://127.0.0.1:${server.port}${path}`, mode: s.peerMode };
  }
  const nats = await startBenchNats(dir);
  try {
    const server = await startBenchHost({
      nats, dir, workers: s.workers, secret: s.secret, main: s.sandbarMain,
      flags: { 'cluster.schedulingPolicy': policy }, ...(env ? { env } : {}),
    });
    return { server, nats, url: `ws://127.0.0.1:${server.port}/socket/websocket?vsn=2.0.0`, mode: 'phoenix' };
  } catch (err) {
    await nats.stop();
    throw err;
  }
}

/** Forces a full GC in every server process (unless --no-gc), then waits for /metrics to settle. */
async function settleAfterGc(s: Settings, server: BenchServer, port: number, expectSessions: number): Promise<SettleResult> {
  if (s.gc) {
    const n = gcTree(server.pid);
    if (n === 0) log('  warning: no server process took the GC signal; heap includes garbage');
    return waitSettled(port, { minMs: s.gcWaitMs, maxMs: s.settleMaxMs, expectSessions });
  }
  return waitSettled(port, { minMs: 1000, maxMs: s.settleMaxMs, expectSessions });
}

async function runOne(s: Settings, target: Target, policy: Policy, n: number, phase: Phase, repeat: number): Promise<RunResult> {
  const dir = mkdtempSync(join(s.logDir, `${target}-${policy}-${n}-${phase}-r${repeat}-`));
  const r: RunResult = { target, policy, n, phase, repeat, startedAt: new Date().toISOString(), opened: 0, failedTotal: 0, failed: {}, closedByServer: {}, logDir: dir };
  let started: Awaited<ReturnType<typeof startTarget>> | undefined;
  let fleet: Fleet | undefined;
  try {
    started = await startTarget(s, target, policy, dir);
    const { server, nats, url, mode } = started;
    const port = server.port;
    let natsRss0 = 0;
    if (phase === 'memory') {
      await sleep(s.baselineWaitMs);
      const base = await settleAfterGc(s, server, port, 0);
      r.baseline = base.snapshot;
      if (!base.settled) log(`  warning: baseline did not settle within ${s.settleMaxMs / 1000} s`);
      if (nats) natsRss0 = rssBytes(nats.pid);
    } else {
      await sleep(s.baselineWaitMs);
    }
    fleet = await Fleet.start({
      url,
      sessions: n,
      ...(s.fleetProcesses ? { processes: s.fleetProcesses } : {}),
      rate: phase === 'memory' ? s.rate : 0,
      concurrency: s.concurrency,
      mode,
      connectTimeoutMs: 10000,
      heartbeatMs: 30000,
      secret: s.secret,
      tokenTtlS: 3600,
      userPrefix: `bench${repeat}x`,
      topicKind: s.topicKind,
      deflate: false,
      maxSeconds: s.rampMaxS,
      maxFailures: Math.max(50, Math.ceil(n / 100)),
      onProgress: (p) => {
        if (p.elapsedS >= 5 && Math.round(p.elapsedS) % 5 === 0) log(`  ramp ${p.elapsedS.toFixed(0)} s: opened ${p.opened}/${n}, in flight ${p.inFlight}, failed ${p.failedTotal}`);
      },
    });
    const cpu0 = treeCpuMicros(server.pid);
    const natsCpu0 = nats ? treeCpuMicros(nats.pid) : 0;
    r.outcome = await fleet.ramp();
    const cpu1 = treeCpuMicros(server.pid);
    const natsCpu1 = nats ? treeCpuMicros(nats.pid) : 0;
    const rep = await fleet.report();
    r.opened = rep.opened;
    r.failedTotal = rep.failedTotal;
    r.failed = rep.failed;
    if (rep.latency.count > 0) r.latency = rep.latency;
    r.rampSeconds = rep.rampSeconds;
    if (r.outcome.reason !== 'target-reached') log(`  ramp stopped by ${r.outcome.reason}: ${r.outcome.detail}; failures: ${formatReasons(rep.failed)}`);
    if (phase === 'memory') {
      const st = await settleAfterGc(s, server, port, rep.opened);
      r.after = st.snapshot;
      r.settled = st.settled;
      r.settleWaitS = st.waitedS;
      if (rep.opened > 0 && r.baseline) {
        r.heapPerSession = (st.snapshot.heapUsed - r.baseline.heapUsed) / rep.opened;
        r.rssPerSession = (st.snapshot.rss - r.baseline.rss) / rep.opened;
        if (nats) r.natsRssPerSession = (rssBytes(nats.pid) - natsRss0) / rep.opened;
      }
      r.serverSessions = st.snapshot.sessions;
      r.spread = spreadOf(st.snapshot);
    } else {
      if (rep.opened > 0) {
        r.connectRate = rep.connectRate;
        r.cpuPerHandshakeUs = (cpu1 - cpu0) / rep.opened;
        if (nats) r.natsCpuPerHandshakeUs = (natsCpu1 - natsCpu0) / rep.opened;
        r.clientCpuPerHandshakeUs = rep.clientCpuMicros / rep.opened;
      }
      // The gauges are refreshed every 0.5-1 s: wait until they count every open session.
      const snap = await waitSessions(port, rep.opened, 5000);
      r.serverSessions = snap.sessions;
      r.spread = spreadOf(snap);
    }
    r.closedByServer = (await fleet.report()).closedByServer;
    await fleet.close();
  } catch (err) {
    r.error = (err as Error).message;
    log(`  error: ${r.error}`);
  } finally {
    fleet?.kill();
    await started?.server.stop();
    await started?.nats?.stop();
  }
  return r;
}

function median(xs: number[]): number | undefined {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return undefined;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1]! + v[m]!) / 2;
}

const kib = (b: number | undefined) => (b === undefined ? '-' : (b / 1024).toFixed(2));
const times = (x: number | undefined) => (x === undefined ? '-' : `x${x.toFixed(2)}`);

interface Row {
  policy: Policy;
  n: number;
  target: Target;
  memRuns: number;
  rateRuns: number;
  heap?: number;
  rss?: number;
  natsRss?: number;
  spreadMem?: number;
  spreadRate?: number;
  rate?: number;
  cpu?: number;
  natsCpu?: number;
  clientCpu?: number;
  p50?: number;
  p99?: number;
  unsettled: number;
  problems: string[];
}

function rows(s: Settings, results: RunResult[]): Row[] {
  const out: Row[] = [];
  for (const n of s.sessions) {
    for (const policy of s.policies) {
      for (const target of s.targets) {
        const mine = results.filter((r) => r.n === n && r.policy === policy && r.target === target);
        if (!mine.length) continue;
        const mem = mine.filter((r) => r.phase === 'memory' && !r.error);
        const rate = mine.filter((r) => r.phase === 'connect-rate' && !r.error);
        const pick = (rs: RunResult[], f: (r: RunResult) => number | undefined) => median(rs.map(f).filter((x): x is number => x !== undefined));
        const problems: string[] = [];
        for (const r of mine) {
          if (r.error) problems.push(`${r.phase}#${r.repeat}: ${r.error.split('\n')[0]}`);
          else if (r.outcome && r.outcome.reason !== 'target-reached') problems.push(`${r.phase}#${r.repeat}: ${r.outcome.reason} (${r.outcome.detail}) failures ${formatReasons(r.failed)}`);
          if (!r.error && r.serverSessions !== undefined && r.serverSessions !== r.opened) problems.push(`${r.phase}#${r.repeat}: server counts ${r.serverSessions} sessions, fleet opened ${r.opened}`);
          if (Object.keys(r.closedByServer).length) problems.push(`${r.phase}#${r.repeat}: closed by server ${formatReasons(r.closedByServer)}`);
        }
        out.push({
          policy, n, target, memRuns: mem.length, rateRuns: rate.length,
          heap: pick(mem, (r) => r.heapPerSession),
          rss: pick(mem, (r) => r.rssPerSession),
          natsRss: pick(mem, (r) => r.natsRssPerSession),
          spreadMem: pick(mem, (r) => r.spread?.ratio),
          spreadRate: pick(rate, (r) => r.spread?.ratio),
          rate: pick(rate, (r) => r.connectRate),
          cpu: pick(rate, (r) => r.cpuPerHandshakeUs),
          natsCpu: pick(rate, (r) => r.natsCpuPerHandshakeUs),
          clientCpu: pick(rate, (r) => r.clientCpuPerHandshakeUs),
          p50: pick(mem, (r) => r.latency?.p50Ms),
          p99: pick(mem, (r) => r.latency?.p99Ms),
          unsettled: mem.filter((r) => r.settled === false).length,
          problems,
        });
      }
    }
  }
  return out;
}

/** Median over repeats of sandbar_r / ws_r for one metric (runs paired by repeat). */
function pairedRatio(results: RunResult[], n: number, policy: Policy, phase: Phase, f: (r: RunResult) => number | undefined): number | undefined {
  const ratios: number[] = [];
  const sb = results.filter((r) => r.target === 'sandbar' && r.n === n && r.policy === policy && r.phase === phase && !r.error);
  for (const a of sb) {
    const b = results.find((r) => r.target === 'ws' && r.n === n && r.policy === policy && r.phase === phase && r.repeat === a.repeat && !r.error);
    const x = f(a);
    const y = b ? f(b) : undefined;
    if (x !== undefined && y !== undefined && x > 0 && y > 0) ratios.push(x / y); // a delta <= 0 is noise, not a ratio
  }
  return median(ratios);
}

function table(headers: string[], body: string[][]): string {
  const w = headers.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 3 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  return [line(headers), line(w.map((x) => '-'.repeat(x))), ...body.map(line)].join('\n');
}

function report(s: Settings, results: RunResult[]): { text: string; summary: string } {
  const rs = rows(s, results);
  const headers = ['policy', 'N', 'target', 'heap KiB/sess', 'RSS KiB/sess', 'spread mem', 'sessions/s', 'server CPU us/hs', 'spread rate', `p50 ms @${s.rate}/s`, `p99 ms @${s.rate}/s`, 'runs mem+rate'];
  const body = rs.map((r) => [
    r.policy, String(r.n), r.target, kib(r.heap), kib(r.rss), num(r.spreadMem, 2), num(r.rate), num(r.cpu), num(r.spreadRate, 2), num(r.p50, 2), num(r.p99, 2),
    `${r.memRuns}+${r.rateRuns}${r.unsettled ? ` (${r.unsettled} unsettled)` : ''}`,
  ]);
  const lines = [table(headers, body), ''];
  const extras = rs.filter((r) => r.natsRss !== undefined || r.natsCpu !== undefined || r.clientCpu !== undefined);
  for (const r of extras) {
    lines.push(`  ${r.policy} N=${r.n} ${r.target}: nats-server RSS ${kib(r.natsRss)} KiB/sess, nats-server CPU ${num(r.natsCpu)} us/hs, fleet CPU ${num(r.clientCpu)} us/hs`);
  }
  const summaryParts: string[] = [];
  if (s.targets.includes('sandbar') && s.targets.includes('ws')) {
    lines.push('', 'Ratios Sandbar / bare ws (median over repeats of the per-repeat ratio):');
    for (const n of s.sessions) {
      for (const policy of s.policies) {
        const heap = pairedRatio(results, n, policy, 'memory', (r) => r.heapPerSession);
        const rss = pairedRatio(results, n, policy, 'memory', (r) => r.rssPerSession);
        const rate = pairedRatio(results, n, policy, 'connect-rate', (r) => r.connectRate);
        const cpu = pairedRatio(results, n, policy, 'connect-rate', (r) => r.cpuPerHandshakeUs);
        lines.push(`  ${policy} N=${n}: heap/sess ${times(heap)}, RSS/sess ${times(rss)}, sessions/s ${times(rate)}, server CPU/handshake ${times(cpu)}`);
        summaryParts.push(`${policy}/N=${n} heap ${times(heap)} RSS ${times(rss)} rate ${times(rate)} cpu ${times(cpu)}`);
      }
    }
  }
  const problems = rs.flatMap((r) => r.problems.map((p) => `  ${r.policy} N=${r.n} ${r.target} ${p}`));
  if (problems.length) lines.push('', 'Problems:', ...problems);
  const sbRows = rs.filter((r) => r.target === 'sandbar');
  const wsRows = rs.filter((r) => r.target === 'ws');
  const fmtRows = (xs: Row[]) => xs.map((r) => `${r.policy}/N=${r.n} heap ${kib(r.heap)} RSS ${kib(r.rss)} KiB/sess ${num(r.rate)} sess/s`).join('; ');
  const summary = summaryParts.length
    ? `SUMMARY idle-sessions (Sandbar / bare ws, workers=${s.workers}): ${summaryParts.join('; ')}${problems.length ? `; ${problems.length} problem(s)` : ''}`
    : `SUMMARY idle-sessions (workers=${s.workers}): ${sbRows.length ? `sandbar ${fmtRows(sbRows)}` : ''}${wsRows.length ? `ws ${fmtRows(wsRows)}` : ''}${problems.length ? `; ${problems.length} problem(s)` : ''}`;
  return { text: lines.join('\n'), summary };
}

async function main(): Promise<number> {
  const s = settings(process.argv.slice(2));
  if (!s) return 0;
  if (s.targets.includes('sandbar') && !existsSync(s.sandbarMain)) {
    throw new UsageError(`Sandbar is not built: ${s.sandbarMain} is missing (run npm run build), or pass --targets ws`);
  }
  const maxN = Math.max(...s.sessions);
  const procs = s.fleetProcesses ?? Math.ceil(maxN / 15000);
  if (Math.ceil(maxN / procs) > 18000) log(`warning: ${Math.ceil(maxN / procs)} sessions per client process is close to the ~20,000 open-file limit`);
  if (Math.ceil(maxN / s.workers) * 1.3 > 19000) log(`warning: ${Math.ceil(maxN / s.workers)} sessions per server worker if evenly spread; an uneven spread (policy none) can push a worker past the ~20,000 open-file limit`);
  const startedAt = new Date();
  console.log(`idle-sessions ${startedAt.toISOString()} node ${process.version}, ${availableParallelism()} CPUs, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  console.log(`command: node dist/bench/idle-sessions.js ${process.argv.slice(2).join(' ')}`);
  console.log(`settings: sessions=${s.sessions.join(',')} workers=${s.workers} policies=${s.policies.join(',')} repeat=${s.repeat} targets=${s.targets.join(',')} phases=${s.phases.join(',')} rate=${s.rate}/s concurrency=${s.concurrency} peer-mode=${s.peerMode} topic-kind=${s.topicKind} gc=${s.gc ? 'forced before readings' : 'off'}; logs in ${s.logDir}`);

  const results: RunResult[] = [];
  let stoppedEarly = '';
  exitOnInterrupt();

  outer: for (const n of s.sessions) {
    for (const policy of s.policies) {
      for (let rep = 1; rep <= s.repeat; rep++) {
        for (const phase of s.phases) {
          for (const target of s.targets) {
            if (Date.now() > s.deadlineAt) {
              stoppedEarly = `--max-minutes reached before ${target} ${phase} N=${n} policy=${policy} repeat ${rep}`;
              break outer;
            }
            log(`${target} ${phase} N=${n} policy=${policy} workers=${s.workers} repeat ${rep}/${s.repeat}`);
            const r = await runOne(s, target, policy, n, phase, rep);
            results.push(r);
            if (!r.error) {
              if (phase === 'memory') {
                log(`  opened ${r.opened}, heap ${kib(r.heapPerSession)} KiB/sess, RSS ${kib(r.rssPerSession)} KiB/sess, server counts ${r.serverSessions} (per worker ${r.spread?.perWorker.join('/')})${r.settled ? `, settled after ${r.settleWaitS?.toFixed(1)} s` : ' (not settled)'}, connect p50 ${r.latency?.p50Ms} ms`);
              } else {
                log(`  opened ${r.opened} in ${r.rampSeconds?.toFixed(2)} s = ${num(r.connectRate)} sess/s, server CPU ${num(r.cpuPerHandshakeUs)} us/hs, per worker ${r.spread?.perWorker.join('/')}`);
              }
            }
          }
        }
      }
    }
  }
  const { text, summary } = report(s, results);
  console.log('');
  console.log(text);
  if (stoppedEarly) console.log(`\nstopped early: ${stoppedEarly}`);
  if (s.jsonPath) {
    writeFileSync(s.jsonPath, JSON.stringify({ startedAt: startedAt.toISOString(), argv: process.argv.slice(2), settings: { ...s, secret: undefined }, results }, null, 2));
    console.log(`\nraw results: ${s.jsonPath}`);
  }
  console.log(`\n${summary}`);
  const incomplete = results.some((r) => r.error || r.outcome?.reason !== 'target-reached');
  return incomplete || stoppedEarly ? 1 : 0;
}

runAsMain(import.meta.url, main, 'bench/idle-sessions', FLAGS);
