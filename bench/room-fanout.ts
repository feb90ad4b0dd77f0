/**
 * Room fan-out: how long one room message takes to reach every member, and
 * how many deliveries per second that is, Sandbar against a bare `ws`
 * cluster that broadcasts to the same number of clients from the same
 * number of worker processes (bench/peers/ws-server.ts --broadcast), run
 * alternately in the same invocation.
 *
 *   npm run build && node dist/bench/room-fanout.js --members 10000 --workers 2
 *   node dist/bench/room-fanout.js --quick     # 1,000 members, 20 messages, one repeat
 *   node dist/bench/room-fanout.js --help
 *
 * Per repeat and target (fresh server each time; Sandbar gets a fresh
 * nats-server): N members, spread over the client processes (each from its
 * own source address), join `room:<id>`; the bench waits until every join is
 * acknowledged, then --settle-s for presence traffic to die down. A sender
 * (one more member, in client process 0) then posts --warmup-messages +
 * --messages messages `msg {id, body}`, one every --interval-ms (slow enough
 * that broadcasts do not overlap). Each body carries the sender's send time
 * on CLOCK_MONOTONIC, which every client process reads too, so each member's
 * receive time is comparable with it. Per measured message:
 *   all-received latency  send → the last of the N members received it
 *   deliveries/s          N / all-received latency
 * reported as p50/p99 over messages (and every single delivery's latency),
 * plus the server's CPU per delivery (nats-server included for Sandbar).
 */
import { randomBytes } from 'node:crypto';
import { exitOnInterrupt, runAsMain, intFlag, numFlag, type Flags } from './lib/args.js';
import { sleep } from './lib/metrics.js';
import { formatReasons, log, median, mergeHistograms, num, pairedRatio, printReport, summarize, table, times, type LatencySummary } from './lib/report.js';
import { printHeader, runRepeats, runScoped } from './lib/runs.js';
import { benchSettings, requireBuilt, targetBenchFlags, type TargetBenchSettings, type TargetBenchSpec } from './lib/settings.js';
import { WorkloadFleet } from './load/workload.js';
import type { RoomReport } from './load/workload-protocol.js';
import { startTarget, type TargetName } from './load/targets.js';

const FANOUT_SPEC: TargetBenchSpec = {
  name: 'room-fanout', logTag: 'fanout',
  title: 'bench/room-fanout: room broadcast latency to every member and deliveries/s, Sandbar against bare ws.',
  quickDoc: 'Smoke run: --members 1000 --messages 20 --interval-ms 250 --repeat 1, 3 minute bound (explicit flags still win).',
  targets: ['sandbar', 'ws', 'socketio'], defaultTargets: ['sandbar', 'ws'], defaultPolicy: 'none', maxMinutes: [30, 3], cpuProf: true,
};

export const FANOUT_FLAGS: Flags = targetBenchFlags(FANOUT_SPEC, {
  members: { doc: 'Members of the room (the sender comes on top).', default: '10000' },
  messages: { doc: 'Measured messages.', default: '50 (20 with --quick)' },
  'warmup-messages': { doc: 'Messages sent first and not measured.', default: '5' },
  'interval-ms': { doc: 'Time between two messages (keep it above the all-received latency, or broadcasts overlap).', default: '500 (250 with --quick)' },
  'body-bytes': { doc: 'Padding characters in each message body.', default: '64' },
  'settle-s': { doc: 'Wait after the last join before the first message (presence diffs are coalesced over 50 ms).', default: '2' },
  processes: { doc: 'Client processes (source addresses 127.0.0.2..).', default: 'max(2, ceil(members / 15000))' },
  concurrency: { doc: 'Handshakes (upgrade + joins) in flight across the fleet.', default: '128' },
  'setup-max-s': { doc: 'Longest wait for every member to join.', default: '120 + members / 50' },
});

export interface FanoutSettings extends TargetBenchSettings {
  members: number;
  messages: number;
  warmupMessages: number;
  intervalMs: number;
  bodyBytes: number;
  settleMs: number;
  processes: number;
  concurrency: number;
  setupMaxMs: number;
}

export interface FanoutRun {
  target: TargetName;
  repeat: number;
  startedAt: string;
  members: number;
  joined: number;
  setupSeconds?: number;
  join?: LatencySummary;
  perWorker?: Record<string, number>;
  setupFailed?: Record<string, number>;
  /** Measured messages that reached every member. */
  complete: number;
  measured: number;
  /** Over complete measured messages, ms. */
  allP50Ms?: number;
  allP99Ms?: number;
  allMaxMs?: number;
  firstP50Ms?: number;
  /** members / all-received latency, over messages (p50 = from the p50 latency). */
  deliveriesPerSecP50?: number;
  deliveriesPerSecP01?: number;
  okP50Ms?: number;
  /** Per server process: p50 over messages of send -> its first / last member received (ms). */
  workerTimes?: Record<string, { firstP50Ms: number; lastP50Ms: number }>;
  delivery?: LatencySummary;
  serverCpuPerDeliveryUs?: number;
  natsCpuPerDeliveryUs?: number;
  clientCpuPerDeliveryUs?: number;
  missing?: number;
  errors?: Record<string, number>;
  closedByServer?: Record<string, number>;
  overlapping?: number;
  logDir?: string;
  error?: string;
}

export function fanoutSettings(argv: string[]): FanoutSettings | undefined {
  return benchSettings(argv, FANOUT_FLAGS, FANOUT_SPEC, (f, quick) => {
    const members = intFlag(f, 'members', quick ? 1000 : 10000, 1);
    return {
      members,
      messages: intFlag(f, 'messages', quick ? 20 : 50, 1),
      warmupMessages: intFlag(f, 'warmup-messages', 5, 0),
      intervalMs: numFlag(f, 'interval-ms', quick ? 250 : 500, 1),
      bodyBytes: intFlag(f, 'body-bytes', 64, 0),
      settleMs: numFlag(f, 'settle-s', 2, 0) * 1000,
      processes: intFlag(f, 'processes', Math.max(2, Math.ceil(members / 15000)), 1),
      concurrency: intFlag(f, 'concurrency', 128, 1),
      setupMaxMs: numFlag(f, 'setup-max-s', 120 + members / 50, 1) * 1000,
    };
  });
}

/** Members (over every client process) that received message k. */
export function totalReceived(rs: RoomReport[], k: number): number {
  let n = 0;
  for (const r of rs) n += r.received[k] ?? 0;
  return n;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: number[], p: number): number | undefined {
  if (!sorted.length) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

export function runFanoutOnce(s: FanoutSettings, target: TargetName, repeat: number): Promise<FanoutRun> {
  const r: FanoutRun = { target, repeat, startedAt: new Date().toISOString(), members: s.members, joined: 0, complete: 0, measured: s.messages };
  return runScoped(r, async (scope) => {
    const t = scope.server(await startTarget(target, s, `fanout-r${repeat}`));
    r.logDir = t.dir;
    const fleet = scope.fleet(await WorkloadFleet.start({ url: t.url, proto: t.proto, processes: s.processes, secret: s.secret, connectConcurrency: s.concurrency, connectTimeoutMs: 30000 }));
    const room = `fan${repeat}${randomBytes(3).toString('hex')}`;
    const setup = await fleet.roomSetup({ room, prefix: `${room}u`, members: s.members }, s.setupMaxMs);
    r.joined = setup.ready - 1; // the sender
    r.setupSeconds = setup.seconds;
    r.join = summarize(setup.histogram);
    r.perWorker = setup.perWorker;
    r.setupFailed = setup.failed;
    log(`  ${target}: ${setup.ready}/${s.members + 1} joined (sender included) in ${setup.seconds.toFixed(1)} s, join p50/p99 ${r.join.p50Ms}/${r.join.p99Ms} ms, per worker ${formatReasons(setup.perWorker)}${Object.keys(setup.failed).length ? `; failed ${formatReasons(setup.failed)}` : ''}${Object.keys(setup.closedByServer).length ? `; joined, then closed by the server: ${formatReasons(setup.closedByServer)}` : ''}`);
    if (setup.ready < s.members + 1) {
      throw new Error(`only ${setup.ready} of ${s.members + 1} connections joined and still open: failed ${formatReasons(setup.failed)}; joined, then closed by the server ${formatReasons(setup.closedByServer)} (a worker restart? see ${t.dir}/server.log)`);
    }
    await sleep(s.settleMs);
    const before = await fleet.roomReports();
    const cpu0 = t.cpuMicros();
    const nats0 = t.natsCpuMicros();
    const client0 = before.reduce((a, x) => a + x.cpuMicros, 0);
    const count = s.warmupMessages + s.messages;
    await fleet.roomSend({ count, intervalMs: s.intervalMs, pad: 'p'.repeat(s.bodyBytes) });
    // Wait out the schedule, then until every message reached every member (or a bound).
    await sleep(count * s.intervalMs);
    const until = Date.now() + Math.max(10000, s.intervalMs * 4);
    let rs = await fleet.roomReports();
    while (Date.now() < until) {
      let done = true;
      for (let k = 0; k < count && done; k++) if (totalReceived(rs, k) < s.members) done = false;
      if (done) break;
      await sleep(250);
      rs = await fleet.roomReports();
    }
    const cpu1 = t.cpuMicros();
    const nats1 = t.natsCpuMicros();
    const client1 = rs.reduce((a, x) => a + x.cpuMicros, 0);
    const sentAt = rs[0]!.sentAt;
    const okAt = rs[0]!.okAt;
    const all: number[] = [];
    const first: number[] = [];
    const ok: number[] = [];
    let missing = 0;
    let overlapping = 0;
    let deliveries = 0;
    for (let k = 0; k < count; k++) deliveries += totalReceived(rs, k);
    for (let k = s.warmupMessages; k < count; k++) {
      const got = totalReceived(rs, k);
      if (!sentAt[k]) {
        missing += s.members;
        continue;
      }
      if (okAt[k]) ok.push(okAt[k]! - sentAt[k]!);
      if (got < s.members) {
        missing += s.members - got;
        continue;
      }
      const last = Math.max(...rs.map((x) => x.last[k] ?? 0));
      const firstRecv = Math.min(...rs.filter((x) => (x.first[k] ?? 0) > 0).map((x) => x.first[k]!));
      all.push(last - sentAt[k]!);
      first.push(firstRecv - sentAt[k]!);
      if (last - sentAt[k]! > s.intervalMs) overlapping++;
    }
    all.sort((a, b) => a - b);
    first.sort((a, b) => a - b);
    ok.sort((a, b) => a - b);
    r.complete = all.length;
    r.missing = missing;
    r.overlapping = overlapping;
    const p50 = percentile(all, 50);
    const p99 = percentile(all, 99);
    if (p50 !== undefined) {
      r.allP50Ms = p50;
      r.allP99Ms = p99!;
      r.allMaxMs = all[all.length - 1]!;
      r.firstP50Ms = percentile(first, 50)!;
      r.deliveriesPerSecP50 = s.members / (p50 / 1000);
      r.deliveriesPerSecP01 = s.members / (p99! / 1000);
    }
    const okP50 = percentile(ok, 50);
    if (okP50 !== undefined) r.okP50Ms = okP50;
    // When does each server process start and finish its share of a broadcast?
    const workers = new Set(rs.flatMap((x) => Object.keys(x.lastByWorker)));
    const workerTimes: Record<string, { firstP50Ms: number; lastP50Ms: number }> = {};
    for (const w of workers) {
      const f: number[] = [];
      const l: number[] = [];
      for (let k = s.warmupMessages; k < count; k++) {
        if (!sentAt[k]) continue;
        const fs = rs.map((x) => x.firstByWorker[w]?.[k] ?? 0).filter((v) => v > 0);
        const ls = rs.map((x) => x.lastByWorker[w]?.[k] ?? 0).filter((v) => v > 0);
        if (fs.length) f.push(Math.min(...fs) - sentAt[k]!);
        if (ls.length) l.push(Math.max(...ls) - sentAt[k]!);
      }
      f.sort((a, b) => a - b);
      l.sort((a, b) => a - b);
      if (f.length && l.length) workerTimes[w] = { firstP50Ms: percentile(f, 50)!, lastP50Ms: percentile(l, 50)! };
    }
    r.workerTimes = workerTimes;
    r.delivery = summarize(mergeHistograms(rs.map((x) => x.hDelivery)));
    if (deliveries > 0) {
      r.serverCpuPerDeliveryUs = (cpu1 - cpu0) / deliveries;
      if (t.nats) r.natsCpuPerDeliveryUs = (nats1 - nats0) / deliveries;
      r.clientCpuPerDeliveryUs = (client1 - client0) / deliveries;
    }
    const errors: Record<string, number> = {};
    const closedByServer: Record<string, number> = {};
    for (const x of rs) {
      for (const [k, v] of Object.entries(x.errors)) errors[k] = (errors[k] ?? 0) + v;
      for (const [k, v] of Object.entries(x.closedByServer)) closedByServer[k] = (closedByServer[k] ?? 0) + v;
    }
    r.errors = errors;
    r.closedByServer = closedByServer;
    log(`  ${target}: ${r.complete}/${s.messages} messages reached all ${s.members} members; all-received p50/p99 ${fmt(r.allP50Ms)}/${fmt(r.allP99Ms)} ms (first member p50 ${fmt(r.firstP50Ms)} ms), ${num(r.deliveriesPerSecP50)} deliveries/s at p50, server CPU ${num(r.serverCpuPerDeliveryUs, 1)} us/delivery${r.natsCpuPerDeliveryUs !== undefined ? ` (nats ${num(r.natsCpuPerDeliveryUs, 1)})` : ''}, client CPU ${num(r.clientCpuPerDeliveryUs, 1)} us/delivery${missing ? `, ${missing} deliveries missing` : ''}${Object.keys(errors).length ? `, errors ${formatReasons(errors)}` : ''}; per server process, first/last member p50: ${Object.entries(r.workerTimes ?? {}).map(([w, v]) => `${w} ${fmt(v.firstP50Ms)}/${fmt(v.lastP50Ms)} ms`).join(', ')}`);
    await fleet.close();
  });
}

const fmt = (x: number | undefined) => num(x, 1);
export interface FanoutSummary {
  perTarget: Record<string, { allP50Ms?: number; allP99Ms?: number; deliveriesPerSec?: number; cpu?: number; nats?: number; setupSeconds?: number }>;
  ratios: Record<string, { deliveriesPerSec?: number; allP50?: number; cpu?: number }>;
  text: string;
  summary: string;
}

export function fanoutReport(s: FanoutSettings, runs: FanoutRun[]): FanoutSummary {
  const perTarget: FanoutSummary['perTarget'] = {};
  const headers = ['target', 'runs', 'members', 'join s', 'all-received p50 ms', 'p99 ms', 'first member p50 ms', 'deliveries/s (p50)', 'delivery p50/p99 ms', 'server CPU us/delivery (nats)', 'msg ok p50 ms'];
  const body: string[][] = [];
  for (const target of s.targets) {
    if (!runs.some((r) => r.target === target)) continue;
    const mine = runs.filter((r) => r.target === target && !r.error);
    const pick = (f: (r: FanoutRun) => number | undefined) => median(mine.map(f).filter((x): x is number => x !== undefined));
    const v = {
      allP50Ms: pick((r) => r.allP50Ms), allP99Ms: pick((r) => r.allP99Ms), deliveriesPerSec: pick((r) => r.deliveriesPerSecP50),
      cpu: pick((r) => r.serverCpuPerDeliveryUs), nats: pick((r) => r.natsCpuPerDeliveryUs), setupSeconds: pick((r) => r.setupSeconds),
    };
    const entry: FanoutSummary['perTarget'][string] = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) (entry as Record<string, number>)[k] = x;
    perTarget[target] = entry;
    body.push([
      target, String(mine.length), String(s.members), num(v.setupSeconds, 1), fmt(v.allP50Ms), fmt(v.allP99Ms), fmt(pick((r) => r.firstP50Ms)), num(v.deliveriesPerSec),
      `${num(pick((r) => r.delivery?.p50Ms), 1)}/${num(pick((r) => r.delivery?.p99Ms), 1)}`, `${num(v.cpu, 1)}${v.nats !== undefined ? ` (${num(v.nats, 1)})` : ''}`, num(pick((r) => r.okP50Ms), 2),
    ]);
  }
  const lines = [table(headers, body), ''];
  lines.push('all-received: send -> the last member got the message (over messages); deliveries/s = members / all-received p50; delivery: every single delivery\'s latency.');
  lines.push('Server CPU: utime+stime of the server process tree from before the first message to after the last, per delivery; for Sandbar it includes nats-server (in brackets).');
  const ratios: FanoutSummary['ratios'] = {};
  let summary = `SUMMARY room-fanout (members=${s.members}, workers=${s.workers}): `;
  const parts: string[] = [];
  if (s.targets.includes('sandbar')) {
    for (const peer of s.targets.filter((x) => x !== 'sandbar')) {
      const d = pairedRatio(runs, 'sandbar', peer, (r) => r.deliveriesPerSecP50);
      const a = pairedRatio(runs, 'sandbar', peer, (r) => r.allP50Ms);
      const c = pairedRatio(runs, 'sandbar', peer, (r) => r.serverCpuPerDeliveryUs);
      ratios[peer] = { ...(d !== undefined ? { deliveriesPerSec: d } : {}), ...(a !== undefined ? { allP50: a } : {}), ...(c !== undefined ? { cpu: c } : {}) };
      lines.push('', `Ratios Sandbar / ${peer} (median over repeats of the per-repeat ratio): deliveries/s ${times(d)}, all-received p50 ${times(a)}, server CPU per delivery ${times(c)}`);
      if (peer === 'ws') lines.push(`Goal: deliveries/s >= 0.8 x bare ws: ${d !== undefined && d >= 0.8 ? 'met' : 'NOT met'} (${times(d)})`);
      parts.push(`vs ${peer}: deliveries/s ${times(d)} all-received p50 ${times(a)} cpu ${times(c)}`);
    }
  }
  for (const [k, v] of Object.entries(perTarget)) parts.push(`${k} ${num(v.deliveriesPerSec)} deliveries/s, all-received p50 ${fmt(v.allP50Ms)} ms`);
  const problems: string[] = [];
  for (const r of runs) {
    if (r.error) problems.push(`${r.target}#${r.repeat}: ${r.error.split('\n')[0]}`);
    if (!r.error && r.complete < r.measured) problems.push(`${r.target}#${r.repeat}: ${r.measured - r.complete} of ${r.measured} messages did not reach every member (${r.missing} deliveries missing)`);
    if (r.overlapping) problems.push(`${r.target}#${r.repeat}: ${r.overlapping} broadcasts took longer than --interval-ms (they overlapped the next one; raise --interval-ms)`);
    if (r.errors && Object.keys(r.errors).length) problems.push(`${r.target}#${r.repeat}: client errors ${formatReasons(r.errors)}`);
    if (r.closedByServer && Object.keys(r.closedByServer).length) problems.push(`${r.target}#${r.repeat}: closed by server ${formatReasons(r.closedByServer)}`);
  }
  if (problems.length) lines.push('', 'Problems:', ...problems.map((p) => `  ${p}`));
  summary += parts.join('; ') + (problems.length ? `; ${problems.length} problem(s)` : '');
  return { perTarget, ratios, text: lines.join('\n'), summary };
}

export function runFanoutBench(s: FanoutSettings): Promise<{ runs: FanoutRun[]; stoppedEarly: string }> {
  return runRepeats(s,
    (target, rep) => `room-fanout: ${target}, ${s.members} members, workers=${s.workers}, repeat ${rep}/${s.repeat}`,
    (target, rep) => runFanoutOnce(s, target, rep));
}

async function main(): Promise<number> {
  const s = fanoutSettings(process.argv.slice(2));
  if (!s) return 0;
  requireBuilt(s, 'pass --targets ws');
  if (Math.ceil(s.members / s.processes) > 18000) log(`warning: ${Math.ceil(s.members / s.processes)} connections per client process is close to the ~20,000 open-file limit; raise --processes`);
  if (Math.ceil(s.members / s.workers) * 1.3 > 19000) log(`warning: ${Math.ceil(s.members / s.workers)} connections per server worker if evenly spread; an uneven spread can pass the ~20,000 open-file limit`);
  const startedAt = printHeader('room-fanout', `members=${s.members} workers=${s.workers} policy=${s.policy} targets=${s.targets.join(',')} repeat=${s.repeat} messages=${s.messages}(+${s.warmupMessages} warm-up) interval=${s.intervalMs}ms body=${s.bodyBytes}B processes=${s.processes}; logs in ${s.logDir}`);
  exitOnInterrupt();
  const { runs, stoppedEarly } = await runFanoutBench(s);
  printReport({ report: fanoutReport(s, runs), runs, startedAt, settings: s, jsonPath: s.jsonPath, stoppedEarly });
  return runs.some((r) => r.error || r.complete < r.measured) || stoppedEarly ? 1 : 0;
}

runAsMain(import.meta.url, main, 'bench/room-fanout', FANOUT_FLAGS);
