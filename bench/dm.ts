/**
 * Direct messages: throughput and latency of dms between pairs of users,
 * Sandbar against Socket.IO 4 with its cluster adapter, same worker count,
 * run alternately in the same invocation.
 *
 *   npm run build && node dist/bench/dm.js --pairs 1000 --workers 2
 *   node dist/bench/dm.js --quick          # 200 pairs, short phases, one repeat
 *   node dist/bench/dm.js --help
 *
 * Per repeat and target (fresh server each time; Sandbar gets a fresh
 * nats-server): open N pairs of clients (user a<p> and b<p>, both in the same
 * client process), each joined to its own user topic; with --placement cross
 * (default) b is reconnected until it lands on another worker than a (at most
 * --max-retries times), and the share of pairs that cross workers is
 * reported. Then three phases on the same connections:
 *   peak   closed loop: every client keeps --window dms outstanding (a dm is
 *          done when its sender got the ok AND the peer got the dm event);
 *          delivered dms/s over --seconds after --warmup.
 *   25%, 50% (--levels) open loop: every client sends at a fixed rate, on
 *          schedule and whatever is outstanding, so that the total is that
 *          share of this target's own peak; latency send → peer got the dm
 *          event, and send → ok, for dms sent during the measured interval.
 *   --rates (optional) the same open loop at fixed totals (dm/s), equal for
 *          every target, for latency at the same absolute load.
 * With --persistence snapshots,log Sandbar runs once per persistence.mode in
 * every repeat (its own row each), and the log/snapshots ratios of peak
 * throughput and delivery p50 are reported (docs/durability.md). With
 * --histograms on,off it runs once with metrics.histograms = true and once
 * with false in every repeat, and the off/on ratios of peak throughput and
 * server CPU per dm are reported: the cost of timing every request
 * (docs/benchmarks.md, "Cost of the metrics").
 * Server CPU per delivered dm: utime+stime of the server's process tree over
 * the measured interval, nats-server included for Sandbar (it routes the
 * messages between Sandbar's workers).
 */
import { randomBytes } from 'node:crypto';
import { UsageError, exitOnInterrupt, runAsMain, enumFlag, intFlag, numFlag, type Flags } from './lib/args.js';
import { sleep } from './lib/metrics.js';
import { formatReasons, log, median, num, pairedRatio, printReport, summarize, table, times, type LatencySummary } from './lib/report.js';
import { printHeader, runRepeats, runScoped } from './lib/runs.js';
import { benchSettings, requireBuilt, targetBenchFlags, type TargetBenchSettings, type TargetBenchSpec } from './lib/settings.js';
import { WorkloadFleet, type DmTotals } from './load/workload.js';
import type { DmGo, Placement } from './load/workload-protocol.js';
import { startTarget, type RunningTarget, type TargetName } from './load/targets.js';

const DM_SPEC: TargetBenchSpec = {
  name: 'dm', logTag: 'dm',
  title: 'bench/dm: direct-message throughput and latency, Sandbar against Socket.IO (cluster adapter).',
  quickDoc: 'Smoke run: --pairs 200 --repeat 1 --warmup 2 --seconds 4, 3 minute bound (explicit flags still win).',
  targets: ['sandbar', 'socketio'], defaultTargets: ['sandbar', 'socketio'], defaultPolicy: 'none', maxMinutes: [30, 3], cpuProf: true,
};

export const DM_FLAGS: Flags = targetBenchFlags(DM_SPEC, {
  pairs: { doc: 'Pairs of clients (2 connections each).', default: '1000' },
  seconds: { doc: 'Measured interval of each phase.', default: '10 (4 with --quick)' },
  warmup: { doc: 'Seconds of traffic before each measured interval.', default: '3 (2 with --quick)' },
  window: { doc: 'peak phase: dms outstanding per client.', default: '4' },
  levels: { doc: 'Comma-separated shares of the peak for the paced latency phases.', default: '0.25,0.5' },
  rates: { doc: 'Comma-separated fixed totals (dm/s) for more paced latency phases, the same for every target (none by default).' },
  placement: { doc: 'cross: reconnect b until it is on another worker than a; random: leave it where the server put it.', default: 'cross' },
  'max-retries': { doc: 'cross: most reconnects of one b.', default: '8' },
  'body-bytes': { doc: 'Characters in each dm body.', default: '64' },
  processes: { doc: 'Client processes (source addresses 127.0.0.2..); a pair stays in one.', default: 'max(2, ceil(2*pairs / 15000))' },
  concurrency: { doc: 'Handshakes in flight across the fleet during set-up.', default: '128' },
  'drain-s': { doc: 'After each phase, the longest wait for outstanding dms.', default: '5' },
  'timeout-ms': { doc: 'A dm not acknowledged and delivered within this is counted as a timeout.', default: '10000' },
  persistence: { doc: 'Comma-separated persistence.mode values (snapshots, log, none): Sandbar runs once with each in every repeat, its own row; log/snapshots ratios are reported.' },
  histograms: { doc: 'on,off: Sandbar runs with metrics.histograms true and false in every repeat, its own row each; off/on ratios of peak and CPU per dm are reported (not with --persistence).' },
  base: { doc: 'Another Sandbar build\'s entry point (e.g. main before a change, built in another checkout): Sandbar runs from --sandbar ("this") and from this one ("base") in every repeat, its own row each; this/base ratios of peak and CPU per dm are reported (not with --persistence or --histograms).' },
});

export interface DmSettings extends TargetBenchSettings {
  pairs: number;
  measureMs: number;
  warmupMs: number;
  window: number;
  levels: number[];
  rates: number[];
  placement: Placement;
  maxRetries: number;
  bodyBytes: number;
  processes: number;
  concurrency: number;
  drainMs: number;
  timeoutMs: number;
  /** persistence.mode values to run Sandbar with (empty: its configured default only). */
  persistence: string[];
  /** Sandbar's variants in every repeat: the persistence modes, histograms-on/-off, or this/base builds (empty: one run as configured). */
  variants: string[];
  /** --base: the other build's entry point. */
  baseMain: string | undefined;
}

export interface PhaseResult {
  kind: 'peak' | 'paced';
  /** Share of the peak (--levels), or a fixed total (--rates). */
  level?: number;
  fixedRate?: number;
  targetRate?: number;
  seconds: number;
  /** Delivered dms per second over the measured interval. */
  throughput: number;
  sendRate: number;
  okRate: number;
  serverCpuPerMsgUs?: number;
  natsCpuPerMsgUs?: number;
  clientCpuPerMsgUs?: number;
  delivery: LatencySummary;
  ok: LatencySummary;
  lag?: LatencySummary;
  recordedSent: number;
  recordedDone: number;
  skipped: number;
  errors: Record<string, number>;
  closedByServer: Record<string, number>;
}

export interface DmRun {
  target: TargetName;
  /** Sandbar's persistence.mode for this run (--persistence). */
  variant?: string;
  repeat: number;
  startedAt: string;
  clients: number;
  ready: number;
  setupSeconds?: number;
  connect?: LatencySummary;
  perWorker?: Record<string, number>;
  pairsCross?: number;
  pairsSame?: number;
  reconnects?: number;
  setupFailed?: Record<string, number>;
  peak?: PhaseResult;
  paced: PhaseResult[];
  logDir?: string;
  error?: string;
}

export function dmSettings(argv: string[]): DmSettings | undefined {
  return benchSettings(argv, DM_FLAGS, DM_SPEC, (f, quick) => {
    const pairs = intFlag(f, 'pairs', quick ? 200 : 1000, 1);
    const levels = (f.get('levels') ?? '0.25,0.5').split(',').map((x) => Number(x.trim()));
    for (const l of levels) if (!(l > 0 && l <= 1)) throw new UsageError(`--levels: ${l} is not a share in (0, 1]`);
    const rates = (f.get('rates') ?? '').split(',').filter((x) => x.trim()).map((x) => Number(x.trim()));
    for (const r of rates) if (!(r > 0)) throw new UsageError(`--rates: ${r} is not a positive rate`);
    return {
      pairs,
      measureMs: numFlag(f, 'seconds', quick ? 4 : 10, 0.5) * 1000,
      warmupMs: numFlag(f, 'warmup', quick ? 2 : 3, 0) * 1000,
      window: intFlag(f, 'window', 4, 1),
      levels,
      rates,
      placement: enumFlag(f, 'placement', ['cross', 'random'] as const, 'cross'),
      maxRetries: intFlag(f, 'max-retries', 8, 0),
      bodyBytes: intFlag(f, 'body-bytes', 64, 0),
      processes: intFlag(f, 'processes', Math.max(2, Math.ceil((2 * pairs) / 15000)), 1),
      concurrency: intFlag(f, 'concurrency', 128, 1),
      drainMs: numFlag(f, 'drain-s', 5, 0) * 1000,
      timeoutMs: intFlag(f, 'timeout-ms', 10000, 100),
      persistence: persistenceModes(f.get('persistence')),
      variants: variantsOf(persistenceModes(f.get('persistence')), f.get('histograms'), f.get('base')),
      baseMain: f.get('base'),
    };
  });
}

function variantsOf(persistence: string[], histograms: string | undefined, base: string | undefined): string[] {
  if ([persistence.length > 0, histograms !== undefined, base !== undefined].filter(Boolean).length > 1) throw new UsageError('--persistence, --histograms and --base cannot be combined: each makes its own variants');
  if (base !== undefined) return ['this', 'base'];
  if (histograms === undefined) return persistence;
  const v = histograms.split(',').map((x) => x.trim()).filter(Boolean);
  for (const x of v) if (x !== 'on' && x !== 'off') throw new UsageError(`--histograms: "${x}" is not on or off`);
  return v.map((x) => `histograms-${x}`);
}

/** The sandbar flags of a variant. */
function variantArgs(variant: string): string[] {
  if (variant === 'this' || variant === 'base') return [];
  if (variant.startsWith('histograms-')) return [`--metrics.histograms=${variant === 'histograms-on'}`];
  return [`--persistence.mode=${variant}`];
}

function persistenceModes(v: string | undefined): string[] {
  const modes = (v ?? '').split(',').map((x) => x.trim()).filter(Boolean);
  for (const m of modes) if (!['snapshots', 'log', 'none'].includes(m)) throw new UsageError(`--persistence: "${m}" is not one of snapshots, log, none`);
  return modes;
}

function rate(a: DmTotals, b: DmTotals, k: 'delivered' | 'sent' | 'oks'): number {
  const dt = (b.at - a.at) / 1000;
  return dt > 0 ? (b[k] - a[k]) / dt : 0;
}

async function phase(s: DmSettings, fleet: WorkloadFleet, t: RunningTarget, go: DmGo, kind: 'peak' | 'paced', level?: number, targetRate?: number, fixedRate?: number): Promise<PhaseResult> {
  await fleet.dmGo(go);
  await sleep(s.warmupMs);
  const a = await fleet.mark(true);
  const cpu0 = t.cpuMicros();
  const nats0 = t.natsCpuMicros();
  await sleep(s.measureMs);
  const b = await fleet.mark(false);
  const cpu1 = t.cpuMicros();
  const nats1 = t.natsCpuMicros();
  const rep = await fleet.dmStop(s.drainMs);
  const n = b.delivered - a.delivered;
  return {
    kind,
    ...(level !== undefined ? { level } : {}),
    ...(fixedRate !== undefined ? { fixedRate } : {}),
    ...(targetRate !== undefined ? { targetRate } : {}),
    seconds: (b.at - a.at) / 1000,
    throughput: rate(a, b, 'delivered'),
    sendRate: rate(a, b, 'sent'),
    okRate: rate(a, b, 'oks'),
    ...(n > 0 ? { serverCpuPerMsgUs: (cpu1 - cpu0) / n, clientCpuPerMsgUs: (b.clientCpuMicros - a.clientCpuMicros) / n } : {}),
    ...(n > 0 && t.nats ? { natsCpuPerMsgUs: (nats1 - nats0) / n } : {}),
    delivery: summarize(rep.delivery),
    ok: summarize(rep.ok),
    ...(kind === 'paced' ? { lag: summarize(rep.lag) } : {}),
    recordedSent: rep.recordedSent,
    recordedDone: rep.recordedDone,
    skipped: b.skipped - a.skipped,
    errors: rep.errors,
    closedByServer: rep.closedByServer,
  };
}

function fmtPhase(p: PhaseResult): string {
  const cpu = p.serverCpuPerMsgUs === undefined ? '-' : `${p.serverCpuPerMsgUs.toFixed(0)}${p.natsCpuPerMsgUs !== undefined ? ` (nats ${p.natsCpuPerMsgUs.toFixed(0)})` : ''}`;
  const lag = p.lag ? `, send lag p99 ${p.lag.p99Ms} ms` : '';
  const errs = Object.keys(p.errors).length ? `, errors ${formatReasons(p.errors)}` : '';
  return `${p.throughput.toFixed(0)} dm/s delivered (sent ${p.sendRate.toFixed(0)}/s${p.targetRate ? ` of ${p.targetRate.toFixed(0)}/s scheduled` : ''}), server CPU ${cpu} us/dm, client CPU ${num(p.clientCpuPerMsgUs)} us/dm, delivery p50/p90/p99 ${p.delivery.p50Ms}/${p.delivery.p90Ms}/${p.delivery.p99Ms} ms, ok p50/p90/p99 ${p.ok.p50Ms}/${p.ok.p90Ms}/${p.ok.p99Ms} ms${lag}${errs}`;
}

export function runDmOnce(s: DmSettings, target: TargetName, repeat: number, variant?: string): Promise<DmRun> {
  const r: DmRun = { target, ...(variant ? { variant } : {}), repeat, startedAt: new Date().toISOString(), clients: 2 * s.pairs, ready: 0, paced: [] };
  const sandbarArgs = variant ? [...s.sandbarArgs, ...variantArgs(variant)] : s.sandbarArgs;
  const sandbarMain = variant === 'base' ? s.baseMain! : s.sandbarMain;
  return runScoped(r, async (scope) => {
    const t = scope.server(await startTarget(target, { ...s, sandbarArgs, sandbarMain }, `dm-r${repeat}`));
    r.logDir = t.dir;
    const fleet = scope.fleet(await WorkloadFleet.start({ url: t.url, proto: t.proto, processes: s.processes, secret: s.secret, connectConcurrency: s.concurrency, connectTimeoutMs: 15000 }));
    const prefix = `dm${repeat}${target.charAt(0)}${randomBytes(3).toString('hex')}`;
    const setup = await fleet.dmSetup({ pairs: s.pairs, prefix, placement: s.placement, maxRetries: s.maxRetries }, 60000 + s.pairs * 20);
    r.ready = setup.ready;
    r.setupSeconds = setup.seconds;
    r.connect = summarize(setup.histogram);
    r.perWorker = setup.perWorker;
    r.pairsCross = setup.pairsCross;
    r.pairsSame = setup.pairsSame;
    r.reconnects = setup.reconnects;
    r.setupFailed = setup.failed;
    const pairsOk = setup.pairsCross + setup.pairsSame;
    log(`  ${target}: ${setup.ready}/${2 * s.pairs} clients joined in ${setup.seconds.toFixed(1)} s (per worker ${formatReasons(setup.perWorker)}); pairs crossing workers ${setup.pairsCross}/${pairsOk}, ${setup.reconnects} reconnects${Object.keys(setup.failed).length ? `; failed ${formatReasons(setup.failed)}` : ''}${Object.keys(setup.closedByServer).length ? `; joined, then closed by the server: ${formatReasons(setup.closedByServer)}` : ''}`);
    if (setup.ready === 0) throw new Error(`no client could join: ${formatReasons(setup.failed)}`);
    const bodyJson = JSON.stringify('m'.repeat(s.bodyBytes));
    const base = { bodyJson, timeoutMs: s.timeoutMs, window: s.window, ratePerClient: 0, maxOutstanding: 1000 };
    r.peak = await phase(s, fleet, t, { ...base, mode: 'window' }, 'peak');
    log(`  ${target} peak (window ${s.window}): ${fmtPhase(r.peak)}`);
    for (const level of s.levels) {
      if (Date.now() > s.deadlineAt) break;
      const total = r.peak.throughput * level;
      if (!(total > 0)) break;
      const p = await phase(s, fleet, t, { ...base, mode: 'paced', ratePerClient: total / setup.ready }, 'paced', level, total);
      r.paced.push(p);
      log(`  ${target} at ${(level * 100).toFixed(0)}% of peak: ${fmtPhase(p)}`);
    }
    for (const total of s.rates) {
      if (Date.now() > s.deadlineAt) break;
      const p = await phase(s, fleet, t, { ...base, mode: 'paced', ratePerClient: total / setup.ready }, 'paced', undefined, total, total);
      r.paced.push(p);
      log(`  ${target} at ${total} dm/s: ${fmtPhase(p)}`);
    }
    await fleet.close();
  });
}

interface Point { key: string; label: string; match: (p: PhaseResult) => boolean }

function pointsOf(s: DmSettings): Point[] {
  return [
    ...s.levels.map((l) => ({ key: String(l), label: `${l * 100}% of own peak`, match: (p: PhaseResult) => p.level === l })),
    ...s.rates.map((r) => ({ key: `${r}/s`, label: `${r} dm/s`, match: (p: PhaseResult) => p.fixedRate === r })),
  ];
}

export interface DmPoint { p50?: number; p90?: number; p99?: number; okP50?: number; rate?: number }

export interface DmSummary {
  /** Medians over repeats, per target; `points` keyed by the --levels share ("0.25") or the --rates total ("2000/s"). */
  perTarget: Record<string, { peak?: number; cpu?: number; nats?: number; crossShare?: number; points: Record<string, DmPoint> }>;
  ratios: { peak?: number; cpu?: number; points: Record<string, { p50?: number; p90?: number }> };
  text: string;
  summary: string;
}

export function dmReport(s: DmSettings, runs: DmRun[]): DmSummary {
  const perTarget: DmSummary['perTarget'] = {};
  const points = pointsOf(s);
  const headers = ['target', 'runs', 'pairs crossing', 'peak dm/s', 'server CPU us/dm (nats)'];
  for (const pt of points) headers.push(`@${pt.label}: dm/s`, 'deliv p50/p90/p99 ms', 'ok p50/p90/p99 ms');
  const body: string[][] = [];
  const rows = s.targets.flatMap((target) => (target === 'sandbar' && s.variants.length ? s.variants : [undefined]).map((variant) => ({ target, variant })));
  for (const { target, variant } of rows) {
    const label = variant ? `${target} (${variant})` : target;
    const mine = runs.filter((r) => r.target === target && r.variant === variant && !r.error && r.peak);
    if (!runs.some((r) => r.target === target && r.variant === variant)) continue;
    const pick = (f: (r: DmRun) => number | undefined) => median(mine.map(f).filter((x): x is number => x !== undefined));
    const crossShare = pick((r) => (r.pairsCross !== undefined && r.pairsCross + (r.pairsSame ?? 0) > 0 ? r.pairsCross / (r.pairsCross + (r.pairsSame ?? 0)) : undefined));
    const peak = pick((r) => r.peak?.throughput);
    const cpu = pick((r) => r.peak?.serverCpuPerMsgUs);
    const nats = pick((r) => r.peak?.natsCpuPerMsgUs);
    const pts: Record<string, DmPoint> = {};
    const row = [label, String(mine.length), crossShare === undefined ? '-' : `${(crossShare * 100).toFixed(0)}%`, num(peak), `${num(cpu)}${nats !== undefined ? ` (${num(nats)})` : ''}`];
    for (const pt of points) {
      const at = (r: DmRun) => r.paced.find(pt.match);
      const v: DmPoint = {};
      const put = (k: keyof DmPoint, x: number | undefined) => {
        if (x !== undefined) v[k] = x;
      };
      put('rate', pick((r) => at(r)?.throughput));
      put('p50', pick((r) => at(r)?.delivery.p50Ms));
      put('p90', pick((r) => at(r)?.delivery.p90Ms));
      put('p99', pick((r) => at(r)?.delivery.p99Ms));
      put('okP50', pick((r) => at(r)?.ok.p50Ms));
      const ok90 = pick((r) => at(r)?.ok.p90Ms);
      const ok99 = pick((r) => at(r)?.ok.p99Ms);
      pts[pt.key] = v;
      row.push(num(v.rate), `${num(v.p50, 2)}/${num(v.p90, 2)}/${num(v.p99, 2)}`, `${num(v.okP50, 2)}/${num(ok90, 2)}/${num(ok99, 2)}`);
    }
    perTarget[variant && variant !== s.variants[0] ? label : target] = { ...(peak !== undefined ? { peak } : {}), ...(cpu !== undefined ? { cpu } : {}), ...(nats !== undefined ? { nats } : {}), ...(crossShare !== undefined ? { crossShare } : {}), points: pts };
    body.push(row);
  }
  const lines = [table(headers, body), ''];
  lines.push('Server CPU: utime+stime of the server process tree over the measured interval of the peak phase, per delivered dm; for Sandbar it includes nats-server (in brackets: its part).');
  const ratios: DmSummary['ratios'] = { points: {} };
  let summary = `SUMMARY dm (pairs=${s.pairs}, workers=${s.workers}): `;
  const v0 = s.variants[0];
  if (s.targets.includes('sandbar') && s.persistence.includes('log') && s.persistence.includes('snapshots')) {
    const first = pointsOf(s)[0];
    const peak = pairedRatio(runs, 'sandbar', 'sandbar', (r) => r.peak?.throughput, 'log', 'snapshots');
    const p50 = first ? pairedRatio(runs, 'sandbar', 'sandbar', (r) => r.paced.find(first.match)?.delivery.p50Ms, 'log', 'snapshots') : undefined;
    lines.push('', 'persistence.mode log / snapshots (median over repeats of the per-repeat ratio):');
    lines.push(`  peak throughput ${times(peak)} (goal >= 0.6: ${peak !== undefined && peak >= 0.6 ? 'met' : 'NOT met'})${first ? `, delivery p50 at ${first.label} ${times(p50)}` : ''}`);
    summary += `log/snapshots peak ${times(peak)}${first ? ` p50 ${times(p50)}` : ''}; `;
  }
  if (s.targets.includes('sandbar') && s.variants.includes('histograms-on') && s.variants.includes('histograms-off')) {
    const peak = pairedRatio(runs, 'sandbar', 'sandbar', (r) => r.peak?.throughput, 'histograms-off', 'histograms-on');
    const cpu = pairedRatio(runs, 'sandbar', 'sandbar', (r) => r.peak?.serverCpuPerMsgUs, 'histograms-on', 'histograms-off');
    const met = peak !== undefined && cpu !== undefined && peak <= 1.03 && cpu <= 1.03;
    lines.push('', 'metrics.histograms: peak throughput off / on, and server CPU per dm on / off (median over repeats of the per-repeat ratio):');
    lines.push(`  peak ${times(peak)}, CPU per dm ${times(cpu)} (goal: both <= 1.03, a cost of at most 3 %: ${met ? 'met' : 'NOT met'})`);
    summary += `histograms peak off/on ${times(peak)} cpu on/off ${times(cpu)}; `;
  }
  if (s.targets.includes('sandbar') && s.variants.includes('this') && s.variants.includes('base')) {
    const peak = pairedRatio(runs, 'sandbar', 'sandbar', (r) => r.peak?.throughput, 'this', 'base');
    const cpu = pairedRatio(runs, 'sandbar', 'sandbar', (r) => r.peak?.serverCpuPerMsgUs, 'this', 'base');
    lines.push('', `this build / --base (${s.baseMain}): peak throughput, and server CPU per dm (median over repeats of the per-repeat ratio):`);
    lines.push(`  peak ${times(peak)}, CPU per dm ${times(cpu)}`);
    summary += `this/base peak ${times(peak)} cpu ${times(cpu)}; `;
  }
  if (s.targets.includes('sandbar') && s.targets.includes('socketio')) {
    ratios.peak = pairedRatio(runs, 'sandbar', 'socketio', (r) => r.peak?.throughput, v0);
    ratios.cpu = pairedRatio(runs, 'sandbar', 'socketio', (r) => r.peak?.serverCpuPerMsgUs, v0);
    lines.push('', 'Ratios Sandbar / Socket.IO (median over repeats of the per-repeat ratio; --levels are each target\'s share of its own peak):');
    lines.push(`  peak throughput ${times(ratios.peak)}, server CPU per dm ${times(ratios.cpu)}`);
    for (const pt of points) {
      const at = (r: DmRun) => r.paced.find(pt.match);
      const p50 = pairedRatio(runs, 'sandbar', 'socketio', (r) => at(r)?.delivery.p50Ms, v0);
      const p90 = pairedRatio(runs, 'sandbar', 'socketio', (r) => at(r)?.delivery.p90Ms, v0);
      ratios.points[pt.key] = { ...(p50 !== undefined ? { p50 } : {}), ...(p90 !== undefined ? { p90 } : {}) };
      lines.push(`  at ${pt.label}: delivery p50 ${times(p50)}, p90 ${times(p90)}`);
    }
    summary += `peak ${times(ratios.peak)} cpu/dm ${times(ratios.cpu)}; `;
  }
  const sb = perTarget.sandbar;
  if (sb) {
    const first = points[0];
    const l25 = first ? sb.points[first.key] : undefined;
    lines.push('', 'Goals:');
    if (ratios.peak !== undefined) lines.push(`  throughput >= 1.5 x Socket.IO: ${ratios.peak >= 1.5 ? 'met' : 'NOT met'} (${times(ratios.peak)})`);
    if (first && l25) lines.push(`  at ${first.label}, delivery p50 <= 2 ms: ${l25.p50 !== undefined && l25.p50 <= 2 ? 'met' : 'NOT met'} (${num(l25.p50, 2)} ms); p90 <= 5 ms: ${l25.p90 !== undefined && l25.p90 <= 5 ? 'met' : 'NOT met'} (${num(l25.p90, 2)} ms)`);
    summary += `sandbar peak ${num(sb.peak)} dm/s${first ? `, p50/p90 at ${first.label} ${num(l25?.p50, 2)}/${num(l25?.p90, 2)} ms` : ''}`;
  }
  const sio = perTarget.socketio;
  if (sio) summary += `; socketio peak ${num(sio.peak)} dm/s`;
  const problems: string[] = [];
  for (const r of runs) {
    if (r.error) problems.push(`${r.target}${r.variant ? `(${r.variant})` : ''}#${r.repeat}: ${r.error.split('\n')[0]}`);
    if (r.ready < r.clients) problems.push(`${r.target}#${r.repeat}: ${r.ready}/${r.clients} clients joined; failures ${formatReasons(r.setupFailed ?? {})}`);
    for (const p of [r.peak, ...r.paced]) {
      if (!p) continue;
      const name = p.kind === 'peak' ? 'peak' : p.fixedRate !== undefined ? `${p.fixedRate}/s` : `${(p.level ?? 0) * 100}%`;
      if (Object.keys(p.errors).length) problems.push(`${r.target}#${r.repeat} ${name}: ${formatReasons(p.errors)}`);
      if (Object.keys(p.closedByServer).length) problems.push(`${r.target}#${r.repeat} ${name}: closed by server ${formatReasons(p.closedByServer)}`);
      if (p.kind === 'paced' && p.targetRate && p.sendRate < 0.95 * p.targetRate) problems.push(`${r.target}#${r.repeat} ${name}: sent ${p.sendRate.toFixed(0)}/s of ${p.targetRate.toFixed(0)}/s scheduled (the client fell behind; skipped ${p.skipped})`);
      if (p.recordedSent > p.recordedDone) problems.push(`${r.target}#${r.repeat} ${name}: ${p.recordedSent - p.recordedDone} of ${p.recordedSent} measured dms did not complete`);
    }
  }
  if (problems.length) lines.push('', 'Problems:', ...problems.map((p) => `  ${p}`));
  if (problems.length) summary += `; ${problems.length} problem(s)`;
  return { perTarget, ratios, text: lines.join('\n'), summary };
}

export function runDmBench(s: DmSettings): Promise<{ runs: DmRun[]; stoppedEarly: string }> {
  return runRepeats(s,
    (target, rep, variant) => `dm: ${target}${variant ? ` (${variant})` : ''}, ${s.pairs} pairs, workers=${s.workers}, repeat ${rep}/${s.repeat}`,
    (target, rep, variant) => runDmOnce(s, target, rep, variant),
    (target) => (target === 'sandbar' && s.variants.length ? s.variants : [undefined]));
}

async function main(): Promise<number> {
  const s = dmSettings(process.argv.slice(2));
  if (!s) return 0;
  requireBuilt(s, 'pass --targets socketio');
  if (Math.ceil((2 * s.pairs) / s.processes) > 18000) log(`warning: ${Math.ceil((2 * s.pairs) / s.processes)} connections per client process is close to the ~20,000 open-file limit; raise --processes`);
  const startedAt = printHeader('dm', `pairs=${s.pairs} workers=${s.workers} policy=${s.policy} targets=${s.targets.join(',')} repeat=${s.repeat} warmup=${s.warmupMs / 1000}s seconds=${s.measureMs / 1000}s window=${s.window} levels=${s.levels.join(',')}${s.rates.length ? ` rates=${s.rates.join(',')}` : ''} placement=${s.placement} body=${s.bodyBytes}B processes=${s.processes}; logs in ${s.logDir}`);
  exitOnInterrupt();
  const { runs, stoppedEarly } = await runDmBench(s);
  printReport({ report: dmReport(s, runs), runs, startedAt, settings: s, jsonPath: s.jsonPath, stoppedEarly });
  return runs.some((r) => r.error || r.ready < r.clients) || stoppedEarly ? 1 : 0;
}

runAsMain(import.meta.url, main, 'bench/dm', DM_FLAGS);
