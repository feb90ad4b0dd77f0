/**
 * Every workload, Sandbar next to its peers, in one run, with one table of
 * Sandbar's figure, each peer's and the ratio:
 *
 *   idle + connect-rate  bench/idle-sessions.ts (run as a child process with --json),
 *                        Sandbar against bare ws, one scheduling policy
 *   dm                   bench/dm.ts: Sandbar against Socket.IO + cluster adapter
 *   room-fanout          bench/room-fanout.ts: Sandbar against bare ws (broadcast mode)
 *   presence-churn       bench/presence-churn.ts: Sandbar against Socket.IO + cluster adapter
 *                        (not in --quick: it does not fit the 3-minute bound; --workloads ...,churn adds it)
 *
 *   npm run bench:compare -- --quick     # small sizes, one repeat: under 3 minutes on a 2-core machine
 *   node dist/bench/compare.js --help
 *
 * Targets alternate inside every workload (each bench runs Sandbar, then the
 * peer, per repeat, on fresh servers). Every workload is bounded in time
 * (--max-minutes is split over them) and kills what it started.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError, boolFlag, exitOnInterrupt, runAsMain, intFlag, numFlag, parseFlags, usage, type Flags } from './lib/args.js';
import { dmReport, dmSettings, runDmBench } from './dm.js';
import { fanoutReport, fanoutSettings, runFanoutBench } from './room-fanout.js';
import { churnReport, churnSettings, runChurnBench } from './presence-churn.js';
import { log, median, table } from './lib/report.js';

const FLAGS: Flags = {
  help: { boolean: true, doc: 'Print this help.' },
  quick: { boolean: true, doc: 'Small sizes, one repeat, short phases: idle 1,000 sessions, dm 200 pairs, fan-out 1,000 members; bounded to 3 minutes.' },
  workloads: { doc: 'Comma-separated: idle, dm, fanout, churn.', default: 'idle,dm,fanout,churn (idle,dm,fanout with --quick)' },
  workers: { doc: 'Worker processes of every server.', default: '2' },
  policy: { doc: 'node:cluster scheduling policy of every server: none or rr.', default: 'none' },
  repeat: { doc: 'Repeats of every workload.', default: '3 (1 with --quick)' },
  sessions: { doc: 'idle: sessions.', default: '10000 (1000 with --quick)' },
  pairs: { doc: 'dm: pairs.', default: '1000 (200 with --quick)' },
  members: { doc: 'fanout: room members.', default: '10000 (1000 with --quick)' },
  observers: { doc: 'churn: room members that stay and measure.', default: '1000 (200 with --quick)' },
  'max-minutes': { doc: 'Bound on the whole run, split over the workloads.', default: '120 (2.9 with --quick)' },
  sandbar: { doc: 'Sandbar entry point.', default: 'dist/src/main.js' },
  'sandbar-args': { doc: 'Extra `sandbar start` flags for the dm and fan-out runs, space-separated (idle-sessions takes none), e.g. "--cluster.workerHangMs=600000".' },
  json: { doc: 'Write every workload\'s raw results to this file.' },
  'log-dir': { doc: 'Where logs go.', default: 'a new directory under the OS temp dir' },
};

const here = (rel: string) => fileURLToPath(new URL(rel, import.meta.url));

interface Row { workload: string; metric: string; sandbar?: number; peer: string; peerValue?: number; ratio?: number; unit: string; goal?: string }

interface IdleResult {
  target: 'sandbar' | 'ws';
  phase: 'memory' | 'connect-rate';
  repeat: number;
  heapPerSession?: number;
  rssPerSession?: number;
  connectRate?: number;
  cpuPerHandshakeUs?: number;
  error?: string;
}

/** Runs idle-sessions as a child (it exits when done); SIGTERM at the bound (it then kills its servers), SIGKILL 15 s later. */
function runIdle(args: string[], boundMs: number): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [here('./idle-sessions.js'), ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
    const onExit = () => child.kill('SIGKILL');
    process.once('exit', onExit);
    const term = setTimeout(() => {
      log(`idle-sessions passed its ${Math.round(boundMs / 1000)} s bound: stopping it`);
      child.kill('SIGTERM');
    }, boundMs);
    const kill = setTimeout(() => child.kill('SIGKILL'), boundMs + 15000);
    child.on('exit', (code) => {
      clearTimeout(term);
      clearTimeout(kill);
      process.off('exit', onExit);
      resolve(code ?? 1);
    });
  });
}

function idleRows(results: IdleResult[]): Row[] {
  const ok = results.filter((r) => !r.error);
  const med = (target: string, phase: string, f: (r: IdleResult) => number | undefined) => median(ok.filter((r) => r.target === target && r.phase === phase).map(f).filter((x): x is number => x !== undefined));
  const ratio = (phase: string, f: (r: IdleResult) => number | undefined) => {
    const out: number[] = [];
    for (const a of ok.filter((r) => r.target === 'sandbar' && r.phase === phase)) {
      const b = ok.find((r) => r.target === 'ws' && r.phase === phase && r.repeat === a.repeat);
      const x = f(a);
      const y = b ? f(b) : undefined;
      if (x !== undefined && y !== undefined && x > 0 && y > 0) out.push(x / y);
    }
    return median(out);
  };
  const row = (workload: string, metric: string, phase: string, unit: string, f: (r: IdleResult) => number | undefined): Row => {
    const sandbar = med('sandbar', phase, f);
    const peerValue = med('ws', phase, f);
    const r = ratio(phase, f);
    return { workload, metric, peer: 'bare ws', unit, ...(sandbar !== undefined ? { sandbar } : {}), ...(peerValue !== undefined ? { peerValue } : {}), ...(r !== undefined ? { ratio: r } : {}) };
  };
  return [
    row('idle', 'heap per session', 'memory', 'KiB', (r) => (r.heapPerSession === undefined ? undefined : r.heapPerSession / 1024)),
    row('idle', 'RSS per session', 'memory', 'KiB', (r) => (r.rssPerSession === undefined ? undefined : r.rssPerSession / 1024)),
    row('connect-rate', 'sessions/s (upgrade + join)', 'connect-rate', '/s', (r) => r.connectRate),
    row('connect-rate', 'server CPU per handshake', 'connect-rate', 'us', (r) => r.cpuPerHandshakeUs),
  ];
}

const fmt = (x: number | undefined, unit: string) => {
  if (x === undefined || !Number.isFinite(x)) return '-';
  if (unit === 'ms' || unit === 'KiB') return x.toFixed(2);
  return x.toFixed(0);
};

async function main(): Promise<number> {
  const f = parseFlags(process.argv.slice(2), FLAGS);
  if (boolFlag(f, 'help')) {
    console.log(usage('bench/compare: idle, connect-rate, dm, room fan-out and presence churn, Sandbar against its peers, one table.', FLAGS));
    return 0;
  }
  const quick = boolFlag(f, 'quick');
  const workloads = (f.get('workloads') ?? (quick ? 'idle,dm,fanout' : 'idle,dm,fanout,churn')).split(',').map((s) => s.trim()).filter(Boolean);
  for (const w of workloads) if (!['idle', 'dm', 'fanout', 'churn'].includes(w)) throw new UsageError(`--workloads: "${w}" is not one of idle, dm, fanout, churn`);
  const workers = String(intFlag(f, 'workers', 2, 1));
  const policy = f.get('policy') ?? 'none';
  const repeat = String(intFlag(f, 'repeat', quick ? 1 : 3, 1));
  const sandbar = f.get('sandbar') ?? here('../src/main.js');
  if (!existsSync(sandbar)) throw new UsageError(`Sandbar is not built: ${sandbar} is missing (run npm run build)`);
  const logDir = f.get('log-dir') ?? mkdtempSync(join(tmpdir(), 'sandbar-compare-'));
  const sandbarArgs = f.has('sandbar-args') ? ['--sandbar-args', f.get('sandbar-args')!] : [];
  const totalMs = numFlag(f, 'max-minutes', quick ? 2.9 : 120, 0.5) * 60000;
  const t0 = Date.now();
  // Shares of the time bound: idle is the shortest in --quick, dm the longest.
  // Measured under a load average of 14: idle (4 runs with settles) needed about 60 s, dm about 58 s, fan-out about 45 s.
  const share: Record<string, number> = { idle: 0.35, dm: 0.38, fanout: 0.27, churn: 0.25 };
  const sumShare = workloads.reduce((a, w) => a + share[w]!, 0);
  const budget = (w: string) => (totalMs * share[w]!) / sumShare;

  console.log(`compare ${new Date(t0).toISOString()} node ${process.version}, ${availableParallelism()} CPUs, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  console.log(`command: node dist/bench/compare.js ${process.argv.slice(2).join(' ')}`);
  console.log(`workloads=${workloads.join(',')} workers=${workers} policy=${policy} repeat=${repeat}; logs in ${logDir}`);
  exitOnInterrupt();

  const rows: Row[] = [];
  const raw: Record<string, unknown> = {};
  const texts: string[] = [];
  let failures = 0;

  for (const w of workloads) {
    const startedAt = Date.now();
    // What earlier workloads left unused goes to the later ones.
    const left = totalMs - (startedAt - t0);
    const remainingShares = workloads.slice(workloads.indexOf(w)).reduce((a, x) => a + share[x]!, 0);
    const myMs = Math.max(30000, Math.min(left, (left * share[w]!) / remainingShares, budget(w) * 1.5));
    const minutes = (myMs / 60000).toFixed(2);
    log(`compare: ${w} (bound ${(myMs / 1000).toFixed(0)} s)`);
    if (w === 'idle') {
      const json = join(logDir, 'idle.json');
      const args = [
        '--sessions', f.get('sessions') ?? (quick ? '1000' : '10000'), '--workers', workers, '--policy', policy, '--repeat', repeat,
        '--sandbar', sandbar, '--json', json, '--max-minutes', minutes, '--log-dir', join(logDir, 'idle'),
        // A loaded machine settles slowly; in --quick the idle runs must leave time for the connect-rate runs of both targets.
        ...(quick ? ['--settle-max-s', '8', '--baseline-wait-s', '1', '--ramp-max-s', '40'] : []),
      ];
      // --max-minutes is checked before each of its runs; the hard bound leaves the last one time to finish.
      const code = await runIdle(args, myMs + 30000);
      if (code !== 0) failures++;
      if (existsSync(json)) {
        const j = JSON.parse(readFileSync(json, 'utf8')) as { results: IdleResult[] };
        raw.idle = j;
        rows.push(...idleRows(j.results));
      } else {
        rows.push({ workload: 'idle', metric: `no result (idle-sessions exited ${code})`, peer: 'bare ws', unit: '' });
      }
    } else if (w === 'dm') {
      const args = ['--workers', workers, '--policy', policy, '--repeat', repeat, '--sandbar', sandbar, '--max-minutes', minutes, '--log-dir', join(logDir, 'dm'), ...sandbarArgs];
      if (quick) args.push('--quick');
      if (f.has('pairs')) args.push('--pairs', f.get('pairs')!);
      const s = dmSettings(args)!;
      const { runs } = await runDmBench(s);
      const rep = dmReport(s, runs);
      raw.dm = { settings: { ...s, secret: undefined }, runs };
      texts.push(`dm:\n${rep.text}`);
      if (runs.some((r) => r.error || r.ready < r.clients)) failures++;
      const sb = rep.perTarget.sandbar;
      const sio = rep.perTarget.socketio;
      rows.push({ workload: 'dm', metric: `peak throughput (window ${s.window})`, peer: 'Socket.IO', unit: 'dm/s', ...(sb?.peak !== undefined ? { sandbar: sb.peak } : {}), ...(sio?.peak !== undefined ? { peerValue: sio.peak } : {}), ...(rep.ratios.peak !== undefined ? { ratio: rep.ratios.peak } : {}), goal: 'ratio >= 1.5' });
      rows.push({ workload: 'dm', metric: 'server CPU per dm (Sandbar: + nats-server)', peer: 'Socket.IO', unit: 'us', ...(sb?.cpu !== undefined ? { sandbar: sb.cpu } : {}), ...(sio?.cpu !== undefined ? { peerValue: sio.cpu } : {}), ...(rep.ratios.cpu !== undefined ? { ratio: rep.ratios.cpu } : {}) });
      s.levels.forEach((l, i) => {
        const key = String(l);
        const a = sb?.points[key];
        const b = sio?.points[key];
        const r = rep.ratios.points[key];
        const pct = `${l * 100}%`;
        rows.push({ workload: 'dm', metric: `delivery p50 at ${pct} of own peak`, peer: 'Socket.IO', unit: 'ms', ...(a?.p50 !== undefined ? { sandbar: a.p50 } : {}), ...(b?.p50 !== undefined ? { peerValue: b.p50 } : {}), ...(r?.p50 !== undefined ? { ratio: r.p50 } : {}), ...(i === 0 ? { goal: 'Sandbar <= 2 ms' } : {}) });
        rows.push({ workload: 'dm', metric: `delivery p90 at ${pct} of own peak`, peer: 'Socket.IO', unit: 'ms', ...(a?.p90 !== undefined ? { sandbar: a.p90 } : {}), ...(b?.p90 !== undefined ? { peerValue: b.p90 } : {}), ...(r?.p90 !== undefined ? { ratio: r.p90 } : {}), ...(i === 0 ? { goal: 'Sandbar <= 5 ms' } : {}) });
      });
    } else if (w === 'churn') {
      const args = ['--workers', workers, '--policy', policy, '--repeat', repeat, '--sandbar', sandbar, '--max-minutes', minutes, '--log-dir', join(logDir, 'churn'), ...sandbarArgs];
      if (quick) args.push('--quick');
      if (f.has('observers')) args.push('--observers', f.get('observers')!);
      const s = churnSettings(args)!;
      const { runs } = await runChurnBench(s);
      const rep = churnReport(s, runs);
      raw.churn = { settings: { ...s, secret: undefined }, runs };
      texts.push(`presence-churn:\n${rep.text}`);
      if (runs.some((r) => r.error || (r.completeness ?? 0) < 0.95)) failures++;
      const sb = rep.perTarget.sandbar;
      const sio = rep.perTarget.socketio;
      const r = rep.ratios.socketio;
      rows.push({ workload: 'presence-churn', metric: `join heard by every member, p50 (${s.observers} members, ${s.rate}/s)`, peer: 'Socket.IO', unit: 'ms', ...(sb?.joinP50Ms !== undefined ? { sandbar: sb.joinP50Ms } : {}), ...(sio?.joinP50Ms !== undefined ? { peerValue: sio.joinP50Ms } : {}), ...(r?.joinP50 !== undefined ? { ratio: r.joinP50 } : {}) });
      rows.push({ workload: 'presence-churn', metric: 'leave heard, p50', peer: 'Socket.IO', unit: 'ms', ...(sb?.leaveP50Ms !== undefined ? { sandbar: sb.leaveP50Ms } : {}), ...(sio?.leaveP50Ms !== undefined ? { peerValue: sio.leaveP50Ms } : {}), ...(r?.leaveP50 !== undefined ? { ratio: r.leaveP50 } : {}) });
      rows.push({ workload: 'presence-churn', metric: 'server CPU per join+leave (Sandbar: + nats-server)', peer: 'Socket.IO', unit: 'us', ...(sb?.cpuPerOpUs !== undefined ? { sandbar: sb.cpuPerOpUs } : {}), ...(sio?.cpuPerOpUs !== undefined ? { peerValue: sio.cpuPerOpUs } : {}), ...(r?.cpu !== undefined ? { ratio: r.cpu } : {}) });
    } else {
      const args = ['--workers', workers, '--policy', policy, '--repeat', repeat, '--sandbar', sandbar, '--max-minutes', minutes, '--log-dir', join(logDir, 'fanout'), ...sandbarArgs];
      if (quick) args.push('--quick', '--settle-s', '1.5');
      if (f.has('members')) args.push('--members', f.get('members')!);
      const s = fanoutSettings(args)!;
      const { runs } = await runFanoutBench(s);
      const rep = fanoutReport(s, runs);
      raw.fanout = { settings: { ...s, secret: undefined }, runs };
      texts.push(`room-fanout:\n${rep.text}`);
      if (runs.some((r) => r.error || r.complete < r.measured)) failures++;
      const sb = rep.perTarget.sandbar;
      const ws = rep.perTarget.ws;
      const r = rep.ratios.ws;
      rows.push({ workload: 'room-fanout', metric: `deliveries/s (${s.members} members)`, peer: 'bare ws', unit: '/s', ...(sb?.deliveriesPerSec !== undefined ? { sandbar: sb.deliveriesPerSec } : {}), ...(ws?.deliveriesPerSec !== undefined ? { peerValue: ws.deliveriesPerSec } : {}), ...(r?.deliveriesPerSec !== undefined ? { ratio: r.deliveriesPerSec } : {}), goal: 'ratio >= 0.8' });
      rows.push({ workload: 'room-fanout', metric: 'all members received, p50', peer: 'bare ws', unit: 'ms', ...(sb?.allP50Ms !== undefined ? { sandbar: sb.allP50Ms } : {}), ...(ws?.allP50Ms !== undefined ? { peerValue: ws.allP50Ms } : {}), ...(r?.allP50 !== undefined ? { ratio: r.allP50 } : {}) });
      rows.push({ workload: 'room-fanout', metric: 'server CPU per delivery (Sandbar: + nats-server)', peer: 'bare ws', unit: 'us', ...(sb?.cpu !== undefined ? { sandbar: sb.cpu } : {}), ...(ws?.cpu !== undefined ? { peerValue: ws.cpu } : {}), ...(r?.cpu !== undefined ? { ratio: r.cpu } : {}) });
    }
    log(`compare: ${w} took ${((Date.now() - startedAt) / 1000).toFixed(0)} s`);
  }

  for (const t of texts) console.log(`\n${t}`);
  console.log('\nCompare (Sandbar / peer: median over repeats of the per-repeat ratio):\n');
  const body = rows.map((r) => [
    r.workload, r.metric, r.unit, fmt(r.sandbar, r.unit), r.peer, fmt(r.peerValue, r.unit), r.ratio === undefined ? '-' : `x${r.ratio.toFixed(2)}`, r.goal ?? '',
  ]);
  console.log(table(['workload', 'metric', 'unit', 'Sandbar', 'peer', 'peer value', 'ratio', 'goal'], body, 2));
  const took = (Date.now() - t0) / 1000;
  console.log(`\ntook ${took.toFixed(0)} s${failures ? `; ${failures} workload(s) had problems (see above)` : ''}`);
  const jsonPath = f.get('json');
  if (jsonPath) {
    writeFileSync(jsonPath, JSON.stringify({ startedAt: new Date(t0).toISOString(), argv: process.argv.slice(2), rows, raw }, null, 2));
    console.log(`raw results: ${jsonPath}`);
  }
  console.log(`SUMMARY compare: ${rows.filter((r) => r.ratio !== undefined).map((r) => `${r.workload} ${r.metric} x${r.ratio!.toFixed(2)}`).join('; ')}`);
  return failures ? 1 : 0;
}

runAsMain(import.meta.url, main, 'bench/compare', FLAGS);
