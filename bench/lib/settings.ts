/**
 * The one settings parser of the benches that compare Sandbar with its peers
 * (dm, room-fanout, presence-churn, and compare.ts, which runs all three):
 * the flags they share (--quick, --workers, --policy, --targets, --repeat,
 * --max-minutes, --sandbar, --sandbar-args, --json, --log-dir, and
 * --cpu-prof where a bench offers it) and their parsing into one settings
 * object. Each bench adds its own flags and reads them from the same map.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError, boolFlag, enumFlag, intFlag, numFlag, parseFlags, usage, type Flags } from './args.js';
import type { TargetName } from '../load/targets.js';

export interface TargetBenchSpec {
  /** The bench's name: runs are logged as "<name>: <target>, ...", its log dir is sandbar-<logTag>-*. */
  readonly name: string;
  readonly logTag: string;
  /** The first line of --help. */
  readonly title: string;
  /** What --quick sets (explicit flags still win). */
  readonly quickDoc: string;
  readonly targets: readonly TargetName[];
  readonly defaultTargets: readonly TargetName[];
  readonly defaultPolicy: 'none' | 'rr';
  /** --max-minutes without and with --quick. */
  readonly maxMinutes: readonly [number, number];
  /** Offer --cpu-prof. */
  readonly cpuProf?: boolean;
}

/** What every comparison bench is told by the shared flags. */
export interface TargetBenchSettings {
  quick: boolean;
  workers: number;
  policy: 'none' | 'rr';
  targets: TargetName[];
  repeat: number;
  deadlineAt: number;
  sandbarMain: string;
  sandbarArgs: string[];
  cpuProf: boolean;
  jsonPath: string | undefined;
  logDir: string;
  /** Signs every client's token (each server is started with it). */
  secret: string;
}

/** The shared flags first (help and quick), then the bench's own, then the shared rest. */
export function targetBenchFlags(spec: TargetBenchSpec, own: Flags): Flags {
  return {
    help: { boolean: true, doc: 'Print this help.' },
    quick: { boolean: true, doc: spec.quickDoc },
    ...own,
    workers: { doc: 'Worker processes of every server.', default: '2' },
    policy: { doc: 'node:cluster scheduling policy of every server: none or rr.', default: spec.defaultPolicy },
    targets: { doc: `Comma-separated, run in this order in every repeat: ${spec.targets.join(', ')}.`, default: spec.defaultTargets.join(',') },
    repeat: { doc: 'Repeats (each target fresh every time); medians and per-repeat ratios are reported.', default: '3 (1 with --quick)' },
    'max-minutes': { doc: 'Bound on the whole run: what is left is skipped and the partial table printed.', default: `${spec.maxMinutes[0]} (${spec.maxMinutes[1]} with --quick)` },
    sandbar: { doc: 'Sandbar entry point.', default: 'dist/src/main.js' },
    'sandbar-args': { doc: 'Extra flags for `sandbar start`, space-separated (e.g. "--user.inboxMax=100000").' },
    ...(spec.cpuProf ? { 'cpu-prof': { boolean: true, doc: 'Start every server with --cpu-prof (profiles of primary and workers in <log-dir>/<target>-*/prof, written at exit).' } } : {}),
    json: { doc: 'Also write every run\'s raw result to this file.' },
    'log-dir': { doc: 'Where server logs go.', default: 'a new directory under the OS temp dir' },
  };
}

/** Parses argv against the flags; --help prints the usage and gives undefined. */
export function parseOrHelp(argv: readonly string[], flags: Flags, title: string): Map<string, string> | undefined {
  const f = parseFlags(argv, flags);
  if (boolFlag(f, 'help')) {
    console.log(usage(title, flags));
    return undefined;
  }
  return f;
}

/** A comparison bench's settings: the shared ones and what `own` reads of the same flags (undefined after --help). */
export function benchSettings<Own>(argv: readonly string[], flags: Flags, spec: TargetBenchSpec, own: (f: Map<string, string>, quick: boolean) => Own): (TargetBenchSettings & Own) | undefined {
  const f = parseOrHelp(argv, flags, spec.title);
  if (!f) return undefined;
  const common = targetBenchSettings(f, spec);
  return { ...common, ...own(f, common.quick) };
}

/** The shared settings from parsed flags; the bench reads its own from the same map. */
export function targetBenchSettings(f: Map<string, string>, spec: TargetBenchSpec): TargetBenchSettings {
  const quick = boolFlag(f, 'quick');
  const targets = (f.get('targets') ?? spec.defaultTargets.join(',')).split(',').map((s) => s.trim()).filter(Boolean);
  for (const t of targets) if (!(spec.targets as readonly string[]).includes(t)) throw new UsageError(`--targets: "${t}" is not one of ${spec.targets.join(', ')}`);
  if (!targets.length) throw new UsageError('--targets is empty');
  const logDir = f.get('log-dir') ?? mkdtempSync(join(tmpdir(), `sandbar-${spec.logTag}-`));
  mkdirSync(logDir, { recursive: true });
  return {
    quick,
    workers: intFlag(f, 'workers', 2, 1),
    policy: enumFlag(f, 'policy', ['none', 'rr'] as const, spec.defaultPolicy),
    targets: targets as TargetName[],
    repeat: intFlag(f, 'repeat', quick ? 1 : 3, 1),
    deadlineAt: Date.now() + numFlag(f, 'max-minutes', quick ? spec.maxMinutes[1] : spec.maxMinutes[0], 0.1) * 60000,
    sandbarMain: f.get('sandbar') ?? fileURLToPath(new URL('../../src/main.js', import.meta.url)),
    sandbarArgs: (f.get('sandbar-args') ?? '').split(/\s+/).filter(Boolean),
    cpuProf: boolFlag(f, 'cpu-prof'),
    jsonPath: f.get('json'),
    logDir,
    secret: randomBytes(16).toString('hex'),
  };
}

/** Refuses to run against an unbuilt Sandbar (`hint`: how to leave it out). */
export function requireBuilt(s: TargetBenchSettings, hint: string): void {
  if (s.targets.includes('sandbar') && !existsSync(s.sandbarMain)) throw new UsageError(`Sandbar is not built: ${s.sandbarMain} is missing (run npm run build)${hint ? `, or ${hint}` : ''}`);
}
