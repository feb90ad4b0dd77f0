import { pathToFileURL } from 'node:url';
/**
 * Tiny command-line flag reader shared by the bench scripts.
 *
 * Accepts `--name value`, `--name=value` and bare boolean flags (`--quick`).
 * Every flag a script accepts is declared up front, so a typo is an error
 * rather than a silently ignored option.
 */

export interface FlagSpec {
  /** `true` for flags that take no value. */
  readonly boolean?: boolean;
  readonly doc: string;
  /** Shown in --help; the script applies its own default. */
  readonly default?: string;
}

export type Flags = Record<string, FlagSpec>;

export class UsageError extends Error {}

export function parseFlags(argv: readonly string[], spec: Flags): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new UsageError(`unexpected argument "${a}"`);
    const eq = a.indexOf('=');
    const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
    const s = spec[name];
    if (!s) throw new UsageError(`unknown flag --${name}`);
    if (s.boolean) {
      const v = eq >= 0 ? a.slice(eq + 1) : 'true';
      if (v !== 'true' && v !== 'false') throw new UsageError(`--${name} takes no value (or =true/=false)`);
      out.set(name, v);
      continue;
    }
    let v: string | undefined;
    if (eq >= 0) v = a.slice(eq + 1);
    else {
      v = argv[i + 1];
      i++;
    }
    if (v === undefined) throw new UsageError(`--${name} needs a value`);
    out.set(name, v);
  }
  return out;
}

export function usage(title: string, spec: Flags): string {
  const lines = [title, '', 'Flags:'];
  const width = Math.max(...Object.keys(spec).map((k) => k.length + (spec[k]!.boolean ? 0 : 8))) + 4;
  for (const [k, s] of Object.entries(spec)) {
    const left = `  --${k}${s.boolean ? '' : ' <value>'}`;
    const def = s.default !== undefined ? ` (default: ${s.default})` : '';
    lines.push(`${left.padEnd(width + 2)}${s.doc}${def}`);
  }
  return lines.join('\n');
}

export function intFlag(m: Map<string, string>, name: string, def: number, min = 0): number {
  const v = m.get(name);
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer >= ${min}, got "${v}"`);
  return n;
}

export function numFlag(m: Map<string, string>, name: string, def: number, min = 0): number {
  const v = m.get(name);
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) throw new UsageError(`--${name} must be a number >= ${min}, got "${v}"`);
  return n;
}

export function enumFlag<T extends string>(m: Map<string, string>, name: string, values: readonly T[], def: T): T {
  const v = m.get(name);
  if (v === undefined) return def;
  if (!(values as readonly string[]).includes(v)) throw new UsageError(`--${name} must be one of ${values.join('|')}, got "${v}"`);
  return v as T;
}

export function boolFlag(m: Map<string, string>, name: string): boolean {
  return m.get(name) === 'true';
}

/** Refuses any target outside 127.0.0.0/8, ::1 and localhost: the benches only ever load this machine. */
export function assertLoopback(host: string): void {
  const h = host.replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)) return;
  throw new UsageError(`refusing non-loopback target "${host}": benches only connect to 127.0.0.0/8, ::1 or localhost`);
}

/**
 * Ctrl-C or SIGTERM ends a bench at once with 130: the exit hooks of the
 * fleets and servers (bench/lib/proc.ts) SIGKILL what they started.
 */
export function exitOnInterrupt(): void {
  const interrupt = () => {
    process.stderr.write('interrupted: killing servers and clients\n');
    process.exit(130);
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
}

/** Runs a bench's main when its file is the entry point: its code is the exit status; a bad flag prints the usage and exits 2. */
export function runAsMain(moduleUrl: string, main: () => Promise<number>, title: string, spec: Flags): void {
  if (moduleUrl !== pathToFileURL(process.argv[1] ?? '').href) return;
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      if (err instanceof UsageError) {
        console.error(`error: ${err.message}\n\n${usage(title, spec)}`);
        process.exit(2);
      }
      console.error(err);
      process.exit(1);
    },
  );
}
