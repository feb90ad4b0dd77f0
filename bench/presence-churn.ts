/**
 * Presence churn: one room with --observers members that stay, and
 * connections that keep arriving and leaving (--rate joins per second, each
 * held --hold-ms); how long until every observer hears of a join and of a
 * leave, and what the churn costs the server in CPU. Sandbar (room presence,
 * presence_diff coalesced over 50 ms) against Socket.IO 4 with
 * @socket.io/cluster-adapter on the same number of workers, whose `pjoin`
 * event broadcasts a join and its disconnect a leave to the room (no
 * presence state kept: the floor of what a presence feature costs there).
 *
 *   npm run bench:churn -- --quick           # 200 observers, 20 joins/s, 8 s, one repeat
 *   node dist/bench/presence-churn.js --observers 1000 --rate 50 --workers 2
 *   node dist/bench/presence-churn.js --help
 *
 * Per repeat and target (fresh server each time): the observers join; the
 * churn slots start (each: connect with a token, join the room with a
 * `device` meta holding its join time and planned leave time on
 * CLOCK_MONOTONIC, close at that time, wait --gap-ms, again); after
 * --warmup-s, for --seconds, every observer records receive time − join time
 * for each join it hears of and receive time − planned leave time for each
 * leave (HDR histograms merged across client processes), and the server's
 * CPU (utime+stime of its process tree, plus nats-server for Sandbar) is
 * read before and after. Output: a table, the ratios Sandbar / Socket.IO,
 * and a `SUMMARY presence-churn` line.
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { exitOnInterrupt, runAsMain, intFlag, numFlag, type Flags } from './lib/args.js';
import { printHeader, runRepeats, runScoped } from './lib/runs.js';
import { benchSettings, requireBuilt, targetBenchFlags, type TargetBenchSettings, type TargetBenchSpec } from './lib/settings.js';
import { ChildFleet, split } from './lib/child-fleet.js';
import { sleep } from './lib/metrics.js';
import { defaultTokenModule } from './load/fleet.js';
import { formatReasons, log, median, mergeHistograms, num, pairedRatio, printReport, summarize, table, times, type LatencySummary } from './lib/report.js';
import type { ChurnCounts, ChurnToChild, ChurnToParent } from './load/churn-protocol.js';
import { startTarget, type TargetName } from './load/targets.js';

const CHURN_SPEC: TargetBenchSpec = {
  name: 'presence-churn', logTag: 'churn',
  title: 'bench/presence-churn: presence join/leave latency to every room member and server CPU under connect/disconnect churn, Sandbar against Socket.IO.',
  quickDoc: 'Smoke run: --observers 200 --rate 20 --seconds 8 --warmup-s 2 --repeat 1, 3 minute bound (explicit flags still win).',
  targets: ['sandbar', 'socketio'], defaultTargets: ['sandbar', 'socketio'], defaultPolicy: 'rr', maxMinutes: [20, 3],
};

export const CHURN_FLAGS: Flags = targetBenchFlags(CHURN_SPEC, {
  observers: { doc: 'Room members that stay and measure.', default: '1000 (200 with --quick)' },
  rate: { doc: 'Churn joins per second (each followed by its leave after --hold-ms).', default: '50 (20 with --quick)' },
  'hold-ms': { doc: 'How long a churn connection stays joined.', default: '1000' },
  'gap-ms': { doc: 'Pause of a churn slot between a leave and its next connect.', default: '200' },
  seconds: { doc: 'Measured interval.', default: '20 (8 with --quick)' },
  'warmup-s': { doc: 'Churn before measuring.', default: '3 (2 with --quick)' },
  processes: { doc: 'Client processes (source addresses 127.0.0.2..).', default: '2' },
});

export interface ChurnSettings extends TargetBenchSettings {
  observers: number;
  rate: number;
  holdMs: number;
  gapMs: number;
  seconds: number;
  warmupS: number;
  processes: number;
}

export interface ChurnRun {
  target: TargetName;
  repeat: number;
  observers: number;
  ready: number;
  /** Churn joins per second started, and acknowledged, over the measured interval. */
  opsPerSec?: number;
  joinedPerSec?: number;
  join?: LatencySummary;
  leave?: LatencySummary;
  /** Observer deliveries of churn changes per second, and the share of the expected (2 per op per observer). */
  deliveriesPerSec?: number;
  completeness?: number;
  serverCpuPerOpUs?: number;
  natsCpuPerOpUs?: number;
  serverCpuShare?: number;
  errors?: Record<string, number>;
  error?: string;
}

const here = (rel: string) => fileURLToPath(new URL(rel, import.meta.url));

export function churnSettings(argv: string[]): ChurnSettings | undefined {
  return benchSettings(argv, CHURN_FLAGS, CHURN_SPEC, (f, quick) => ({
    observers: intFlag(f, 'observers', quick ? 200 : 1000, 1),
    rate: numFlag(f, 'rate', quick ? 20 : 50, 0.1),
    holdMs: intFlag(f, 'hold-ms', 1000, 10),
    gapMs: intFlag(f, 'gap-ms', 200, 0),
    seconds: numFlag(f, 'seconds', quick ? 8 : 20, 1),
    warmupS: numFlag(f, 'warmup-s', quick ? 2 : 3, 0),
    processes: intFlag(f, 'processes', 2, 1),
  }));
}

const sum = (cs: ChurnCounts[], f: (c: ChurnCounts) => number) => cs.reduce((a, c) => a + f(c), 0);

export function runChurnOnce(s: ChurnSettings, target: TargetName, repeat: number): Promise<ChurnRun> {
  const r: ChurnRun = { target, repeat, observers: s.observers, ready: 0 };
  return runScoped(r, async (scope) => {
    const t = scope.server(await startTarget(target, { ...s, cpuProf: false }, `churn-r${repeat}`));
    const fleet = scope.fleet(await ChildFleet.start<ChurnToChild, ChurnToParent>({ script: here('./load/churn-client.js'), n: s.processes }));
    const room = `churn${repeat}${randomBytes(3).toString('hex')}`;
    // A slot's cycle is hold + gap + the connect and join (about 50 ms here); enough slots for the rate.
    const slotsTotal = Math.max(1, Math.ceil((s.rate * (s.holdMs + s.gapMs + 50)) / 1000));
    const obs = split(s.observers, s.processes);
    const sl = split(slotsTotal, s.processes);
    const ready = await fleet.all<Extract<ChurnToParent, { t: 'setup-done' }>>((i, id) => ({
      t: 'setup', id, config: {
        childIndex: i, url: t!.url, proto: t!.proto, localAddress: `127.0.0.${2 + i}`, secret: s.secret, tokenModule: defaultTokenModule(),
        room: t!.proto === 'phoenix' ? `room:${room}` : room, prefix: `${room}u`, firstObserver: obs[i]![0], observers: obs[i]![1],
        slots: sl[i]![1], holdMs: s.holdMs, gapMs: s.gapMs,
      },
    }), 60000 + s.observers * 20);
    r.ready = ready.reduce((a, m) => a + m.ready, 0);
    log(`  ${target}: ${r.ready}/${s.observers} observers joined; ${slotsTotal} churn slots`);
    if (r.ready < s.observers) throw new Error(`only ${r.ready} of ${s.observers} observers joined`);
    await sleep(2000);
    await fleet.all((_, id) => ({ t: 'go', id }), 10000);
    await sleep(s.warmupS * 1000);
    const c0 = (await fleet.all<Extract<ChurnToParent, { t: 'ok' }>>((_, id) => ({ t: 'record', id, on: true }), 10000)).map((m) => m.counts);
    const cpu0 = t.cpuMicros();
    const nats0 = t.natsCpuMicros();
    const at0 = Date.now();
    await sleep(s.seconds * 1000);
    const c1 = (await fleet.all<Extract<ChurnToParent, { t: 'ok' }>>((_, id) => ({ t: 'record', id, on: false }), 10000)).map((m) => m.counts);
    const cpu1 = t.cpuMicros();
    const nats1 = t.natsCpuMicros();
    const secs = (Date.now() - at0) / 1000;
    const reports = await fleet.all<Extract<ChurnToParent, { t: 'report' }>>((_, id) => ({ t: 'stop', id }), s.holdMs + s.gapMs + 20000);
    const ops = sum(c1, (c) => c.ops) - sum(c0, (c) => c.ops);
    const joined = sum(c1, (c) => c.opsJoined) - sum(c0, (c) => c.opsJoined);
    const seen = sum(c1, (c) => c.diffsSeen) - sum(c0, (c) => c.diffsSeen);
    r.opsPerSec = ops / secs;
    r.joinedPerSec = joined / secs;
    r.join = summarize(mergeHistograms(reports.map((m) => m.hJoin)));
    r.leave = summarize(mergeHistograms(reports.map((m) => m.hLeave)));
    r.deliveriesPerSec = seen / secs;
    r.completeness = joined > 0 ? seen / (2 * joined * s.observers) : 0;
    if (joined > 0) {
      r.serverCpuPerOpUs = (cpu1 - cpu0) / joined;
      if (t.nats) r.natsCpuPerOpUs = (nats1 - nats0) / joined;
    }
    r.serverCpuShare = (cpu1 - cpu0) / 1e6 / secs;
    const errors: Record<string, number> = {};
    for (const m of reports) for (const [k, v] of Object.entries(m.counts.errors)) errors[k] = (errors[k] ?? 0) + v;
    r.errors = errors;
    log(`  ${target}: ${r.joinedPerSec.toFixed(1)} joins/s; join heard p50/p99 ${r.join.p50Ms}/${r.join.p99Ms} ms, leave heard p50/p99 ${r.leave.p50Ms}/${r.leave.p99Ms} ms; ${r.deliveriesPerSec.toFixed(0)} deliveries/s (${(r.completeness * 100).toFixed(1)}% of expected); server CPU ${num(r.serverCpuPerOpUs)} us/op (${num(r.serverCpuShare, 2)} cores)${Object.keys(errors).length ? `; errors ${formatReasons(errors)}` : ''}`);
  });
}

export interface ChurnSummary {
  perTarget: Record<string, { joinP50Ms?: number; leaveP50Ms?: number; cpuPerOpUs?: number; joinedPerSec?: number }>;
  ratios: Record<string, { joinP50?: number; leaveP50?: number; cpu?: number }>;
  text: string;
  summary: string;
}

export function churnReport(s: ChurnSettings, runs: ChurnRun[]): ChurnSummary {
  const perTarget: ChurnSummary['perTarget'] = {};
  const body: string[][] = [];
  for (const target of s.targets) {
    const mine = runs.filter((r) => r.target === target && !r.error);
    if (!runs.some((r) => r.target === target)) continue;
    const pick = (f: (r: ChurnRun) => number | undefined) => median(mine.map(f).filter((x): x is number => x !== undefined));
    const v = { joinP50Ms: pick((r) => r.join?.p50Ms), leaveP50Ms: pick((r) => r.leave?.p50Ms), cpuPerOpUs: pick((r) => r.serverCpuPerOpUs), joinedPerSec: pick((r) => r.joinedPerSec) };
    const entry: ChurnSummary['perTarget'][string] = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) (entry as Record<string, number>)[k] = x;
    perTarget[target] = entry;
    body.push([
      target, String(mine.length), String(s.observers), num(v.joinedPerSec, 1),
      `${num(v.joinP50Ms, 1)}/${num(pick((r) => r.join?.p99Ms), 1)}`, `${num(v.leaveP50Ms, 1)}/${num(pick((r) => r.leave?.p99Ms), 1)}`,
      num(pick((r) => r.deliveriesPerSec)), `${num(pick((r) => (r.completeness ?? 0) * 100), 1)}%`,
      `${num(v.cpuPerOpUs)}${target === 'sandbar' ? ` (${num(pick((r) => r.natsCpuPerOpUs))})` : ''}`, num(pick((r) => r.serverCpuShare), 2),
    ]);
  }
  const lines = [table(['target', 'runs', 'observers', 'joins/s', 'join heard p50/p99 ms', 'leave heard p50/p99 ms', 'deliveries/s', 'heard', 'server CPU us/op (nats)', 'server cores'], body), ''];
  lines.push('join heard: observer received the change - the churner started connecting (connect, token, join); leave heard: - its planned close. Sandbar coalesces presence_diff over 50 ms; the Socket.IO peer broadcasts each change at once and keeps no presence state.');
  lines.push('heard: changes received / (2 x joins x observers). Server CPU: utime+stime of the server tree over the measured interval per churn op (join + leave), nats-server included for Sandbar (in brackets).');
  const ratios: ChurnSummary['ratios'] = {};
  const parts: string[] = [];
  if (s.targets.includes('sandbar')) {
    for (const peer of s.targets.filter((x) => x !== 'sandbar')) {
      const j = pairedRatio(runs, 'sandbar', peer, (r) => r.join?.p50Ms);
      const l = pairedRatio(runs, 'sandbar', peer, (r) => r.leave?.p50Ms);
      const c = pairedRatio(runs, 'sandbar', peer, (r) => r.serverCpuPerOpUs);
      ratios[peer] = { ...(j !== undefined ? { joinP50: j } : {}), ...(l !== undefined ? { leaveP50: l } : {}), ...(c !== undefined ? { cpu: c } : {}) };
      lines.push('', `Ratios Sandbar / ${peer} (median of per-repeat ratios): join heard p50 ${times(j)}, leave heard p50 ${times(l)}, server CPU per op ${times(c)}`);
      parts.push(`vs ${peer}: join p50 ${times(j)} leave p50 ${times(l)} cpu/op ${times(c)}`);
    }
  }
  for (const [k, v] of Object.entries(perTarget)) parts.push(`${k} join p50 ${num(v.joinP50Ms, 1)} ms, leave p50 ${num(v.leaveP50Ms, 1)} ms, ${num(v.cpuPerOpUs)} us CPU/op`);
  const problems: string[] = [];
  for (const r of runs) {
    if (r.error) problems.push(`${r.target}#${r.repeat}: ${r.error.split('\n')[0]}`);
    else if ((r.completeness ?? 0) < 0.95) problems.push(`${r.target}#${r.repeat}: observers heard ${num((r.completeness ?? 0) * 100, 1)}% of the changes`);
    if (r.errors && Object.keys(r.errors).length) problems.push(`${r.target}#${r.repeat}: client errors ${formatReasons(r.errors)}`);
  }
  if (problems.length) lines.push('', 'Problems:', ...problems.map((p) => `  ${p}`));
  const summary = `SUMMARY presence-churn (observers=${s.observers}, ${s.rate} joins/s, workers=${s.workers}): ${parts.join('; ')}${problems.length ? `; ${problems.length} problem(s)` : ''}`;
  return { perTarget, ratios, text: lines.join('\n'), summary };
}

export function runChurnBench(s: ChurnSettings): Promise<{ runs: ChurnRun[]; stoppedEarly: string }> {
  return runRepeats(s,
    (target, rep) => `presence-churn: ${target}, ${s.observers} observers, ${s.rate} joins/s, workers=${s.workers}, repeat ${rep}/${s.repeat}`,
    (target, rep) => runChurnOnce(s, target, rep));
}

async function main(): Promise<number> {
  const s = churnSettings(process.argv.slice(2));
  if (!s) return 0;
  requireBuilt(s, '');
  const startedAt = printHeader('presence-churn', `observers=${s.observers} rate=${s.rate}/s hold=${s.holdMs}ms gap=${s.gapMs}ms seconds=${s.seconds}(+${s.warmupS} warm-up) workers=${s.workers} policy=${s.policy} targets=${s.targets.join(',')} repeat=${s.repeat}; logs in ${s.logDir}`);
  exitOnInterrupt();
  const { runs, stoppedEarly } = await runChurnBench(s);
  printReport({ report: churnReport(s, runs), runs, startedAt, settings: s, jsonPath: s.jsonPath, stoppedEarly });
  return runs.some((r) => r.error || (r.completeness ?? 0) < 0.95) || stoppedEarly ? 1 : 0;
}

runAsMain(import.meta.url, main, 'bench/presence-churn', CHURN_FLAGS);
