/**
 * connect-rate: sessions established per second, each one a token, an
 * upgrade and a `user:<id>` join acknowledged `ok` (Sandbar), against bare
 * `ws` upgrades on the same number of workers, alternating, in one run; and
 * the server's CPU time per handshake. The connect-rate phase of
 * bench/idle-sessions.ts on its own (run as a child with --json), summed up
 * in one line.
 *
 *   npm run bench:connect -- --quick              # 1,000 sessions, both policies, one repeat
 *   node dist/bench/connect-rate.js --sessions 10000 --policy rr --repeat 3
 *   node dist/bench/connect-rate.js --help        # every idle-sessions flag except --phases
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median, num } from './lib/report.js';

interface ConnectRun {
  target: string;
  policy: string;
  n: number;
  phase: string;
  repeat: number;
  opened: number;
  connectRate?: number;
  cpuPerHandshakeUs?: number;
  error?: string;
}

const here = (rel: string) => fileURLToPath(new URL(rel, import.meta.url));

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  if (argv.some((a) => a === '--phases' || a.startsWith('--phases='))) {
    console.error('error: connect-rate runs the connect-rate phase only; use bench/idle-sessions.js for --phases');
    return 2;
  }
  const help = argv.includes('--help');
  if (help) console.log('bench/connect-rate: sessions/s including token, upgrade and the user: join, and server CPU per handshake, Sandbar against bare ws.\nIt runs bench/idle-sessions.js --phases connect-rate with these flags:\n');
  const dir = mkdtempSync(join(tmpdir(), 'sandbar-connect-'));
  const json = join(dir, 'runs.json');
  const code = await new Promise<number>((resolve) => {
    const child = spawn(process.execPath, [here('./idle-sessions.js'), '--phases', 'connect-rate', ...(help ? [] : ['--json', json]), ...argv], { stdio: ['ignore', 'inherit', 'inherit'] });
    const forward = (sig: NodeJS.Signals) => child.kill(sig);
    process.once('SIGINT', forward);
    process.once('SIGTERM', forward);
    child.once('exit', (c, sig) => resolve(c ?? (sig ? 1 : 0)));
  });
  if (help) return code;
  let runs: ConnectRun[] = [];
  try {
    runs = (JSON.parse(readFileSync(json, 'utf8')) as { results: ConnectRun[] }).results.filter((r) => r.phase === 'connect-rate');
  } catch (err) {
    console.log(`SUMMARY connect-rate: no result (idle-sessions exited ${code}: ${(err as Error).message})`);
    return code || 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const parts: string[] = [];
  const groups = [...new Set(runs.map((r) => `${r.policy}|${r.n}`))];
  for (const g of groups) {
    const [policy, n] = g.split('|');
    const mine = runs.filter((r) => r.policy === policy && String(r.n) === n && !r.error);
    const fig = (t: string, f: (r: ConnectRun) => number | undefined) => median(mine.filter((r) => r.target === t).map(f).filter((x): x is number => x !== undefined));
    const ratios: number[] = [];
    for (const s of mine.filter((r) => r.target === 'sandbar')) {
      const w = mine.find((r) => r.target === 'ws' && r.repeat === s.repeat);
      if (s.connectRate && w?.connectRate) ratios.push(s.connectRate / w.connectRate);
    }
    const ratio = median(ratios);
    parts.push(`N=${n} ${policy}: sandbar ${num(fig('sandbar', (r) => r.connectRate))}/s (${num(fig('sandbar', (r) => r.cpuPerHandshakeUs))} us CPU/handshake), bare ws ${num(fig('ws', (r) => r.connectRate))}/s (${num(fig('ws', (r) => r.cpuPerHandshakeUs))} us), ratio ${ratio === undefined ? '-' : `x${ratio.toFixed(2)}`}`);
  }
  const failed = runs.filter((r) => r.error).length;
  console.log(`SUMMARY connect-rate (Sandbar / bare ws, medians over repeats): ${parts.join('; ') || 'no runs'}${failed ? `; ${failed} run(s) failed` : ''}`);
  return code;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
