/**
 * Loads, checks and freezes Sandbar's configuration.
 *
 * Load order, later wins: schema defaults < TOML file < `SANDBAR_*`
 * environment < `--key=value` flags. Every value given by any source is
 * checked (even one a later source overrides), so a bad file never passes just
 * because today's environment happens to hide it. Any problem throws a
 * {@link SandbarError} with a one-line message; the caller maps that to exit
 * code 78 (EX_CONFIG).
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { parse as parseToml, TomlError } from 'smol-toml';
import { Errors, SandbarError } from '../errors.js';
import { schema, type ConfigKey, type KeySpec } from './schema.js';
import type { SandbarConfig } from './types.js';
import { checkIntegration, integrationRules } from './integration-rules.js';
import { checkAuth, checkKeys, checkRoomRules, isTableKey, tableKeys, type TableKey } from './tables.js';

/** What {@link loadConfig} reads: the process arguments (without node and script) and environment. */
export interface LoadOptions {
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** The loaded configuration, the non-flag arguments, and where each key's value came from. */
export interface LoadedConfig {
  readonly config: SandbarConfig;
  /** Arguments that are not flags, in order (`--help`, `-h` and everything after `--` included). */
  readonly positionals: string[];
  /** Key → `default`, the config file path, the env var name, or `--key`. */
  readonly sources: Record<string, string>;
}

/**
 * Keys that were renamed, old → new. An old config then gets a message that
 * says what to write instead of a bare "unknown key".
 */
export const renamed: Readonly<Record<string, ConfigKey>> = {
  'session.idleTimeout': 'session.idleTimeoutMs',
};

/** Env var that names the config file. */
export const CONFIG_ENV = 'SANDBAR_CONFIG';
const ENV_PREFIX = 'SANDBAR_';
/** `SANDBAR__*` names are for internal use (e.g. worker hand-off) and never configuration. */
const RESERVED_ENV_PREFIX = 'SANDBAR__';

type Value = string | number | boolean | readonly string[];

/** One value offered by one source, before checking. */
interface Setting {
  readonly key: ConfigKey;
  readonly raw: unknown;
  /** `default`, file path, env var name or `--key`. */
  readonly source: string;
  /** How to read `raw`: as given (defaults), as a TOML value, or as text (env and flags). */
  readonly form: 'default' | 'toml' | 'text';
}

const keys = Object.keys(schema) as ConfigKey[];
const keySet: ReadonlySet<string> = new Set(keys);
/** The TOML tables that hold keys: `cluster`, `session`, ... (`a` and `a.b` for a key `a.b.c`). */
const sections: ReadonlySet<string> = (() => {
  const out = new Set<string>();
  for (const key of keys) {
    const segs = key.split('.');
    for (let i = 1; i < segs.length; i++) out.add(segs.slice(0, i).join('.'));
  }
  return out;
})();

/**
 * The env var of a key: each dotted segment in upper snake case, joined with `_`
 * (`session.idleTimeoutMs` → `SANDBAR_SESSION_IDLE_TIMEOUT_MS`).
 */
export function envNameOf(key: string): string {
  return ENV_PREFIX + key.split('.').map((seg) => seg.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_');
}

/** Env var → key (old names of {@link renamed} included, so they get the renamed message). */
const envToKey: ReadonlyMap<string, string> = (() => {
  const names = [...keys, ...Object.keys(renamed)];
  const map = new Map(names.map((k) => [envNameOf(k), k] as const));
  // Two keys with one env name, or a key named like SANDBAR_CONFIG, would be ambiguous: fail at import.
  if (map.size !== names.length || map.has(CONFIG_ENV)) throw new Error('config schema: env var names are not unique');
  return map;
})();

/**
 * Loads the configuration from defaults, the TOML file (`--config <path>`, else
 * env `SANDBAR_CONFIG`, else none), `SANDBAR_*` env vars and `--key=value` flags.
 *
 * @throws SandbarError `SANDBAR_ERR_CONFIG_INVALID` for a bad key, value or flag;
 *   `SANDBAR_ERR_CONFIG_FILE` when the file cannot be read or is not TOML.
 */
export function loadConfig(opts: LoadOptions): LoadedConfig {
  const cli = readArgv(opts.argv);
  const fromEnv = readEnv(opts.env);
  const envPath = opts.env[CONFIG_ENV];
  const tables = new Map<TableKey, { raw: unknown; source: string }>();
  const file =
    cli.configPath !== undefined ? readFile(cli.configPath, '--config', tables)
    : envPath !== undefined && envPath !== '' ? readFile(envPath, CONFIG_ENV, tables)
    : [];

  const values = new Map<ConfigKey, Value>();
  const sources: Record<string, string> = {};
  for (const s of [...defaults(), ...file, ...fromEnv, ...cli.settings]) {
    values.set(s.key, settle(s));
    sources[s.key] = s.source;
  }
  checkHeartbeatOrder(values, sources);
  checkPairs(values, sources);
  checkIntegration(values, sources, invalid);
  checkPorts(values, sources);
  const tableValue = <T>(key: TableKey, check: (raw: unknown, inv: (what: string, value: unknown, problem: string, secret?: boolean) => SandbarError) => T): T => {
    const t = tables.get(key);
    if (t) sources[key] = t.source;
    return check(t?.raw ?? [], (what, value, problem, secret) => invalid(what, value, t?.source ?? 'default', problem, secret));
  };
  const keyList = tableValue('auth.keys', checkKeys);
  const rules = tableValue('authz.rooms', checkRoomRules);
  checkAuth((k) => values.get(k as ConfigKey), rules, (what, value, problem) => invalid(what, value, sources[what.replace(/\[.*$/, '')] ?? sources[what] ?? 'default', problem));
  derive(values, sources);
  return { config: build(values, { 'auth.keys': keyList, 'authz.rooms': rules }), positionals: cli.positionals, sources: Object.freeze(sources) };
}

// ---------------------------------------------------------------- sources

function defaults(): Setting[] {
  // A null default is derived after loading (see derive), so it is not a setting.
  return keys.filter((key) => schema[key].default !== null).map((key) => ({ key, raw: schema[key].default, source: 'default', form: 'default' }));
}

function readArgv(argv: readonly string[]): { settings: Setting[]; positionals: string[]; configPath: string | undefined } {
  const settings: Setting[] = [];
  const positionals: string[] = [];
  let configPath: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    // --help is the CLI's business, not configuration.
    if (!arg.startsWith('--') || arg === '--help') {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    const inline = eq === -1 ? undefined : arg.slice(eq + 1);
    const key = name === 'config' ? undefined : resolveName(name, inline, `--${name}`, 'command line');
    let value = inline;
    if (value === undefined) {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) throw invalid(`--${name}`, undefined, 'command line', 'expected a value (--key=value or --key value)');
      value = next;
      i++;
    }
    if (key === undefined) configPath = value;
    else settings.push({ key, raw: value, source: `--${name}`, form: 'text' });
  }
  return { settings, positionals, configPath };
}

function readEnv(env: Readonly<Record<string, string | undefined>>): Setting[] {
  const settings: Setting[] = [];
  // Sorted so that, with several bad variables, the same one is reported every time.
  for (const name of Object.keys(env).sort()) {
    const text = env[name];
    if (text === undefined || !name.startsWith(ENV_PREFIX) || name.startsWith(RESERVED_ENV_PREFIX) || name === CONFIG_ENV) continue;
    const key = envToKey.get(name);
    const table = tableEnv.get(name);
    if (table !== undefined) throw invalid(name, text, 'environment', `expected ${table} in the config file only: it is a list of tables ([[${table}]])`);
    if (key === undefined) {
      throw unknown(name, text, 'environment', [...envToKey.keys(), CONFIG_ENV], 'variable');
    }
    const to = renamed[key];
    if (to !== undefined) throw invalid(key, text, name, `key "${key}" was renamed to "${to}"; set ${envNameOf(to)} instead`, looksSecret(key));
    settings.push({ key: key as ConfigKey, raw: text, source: name, form: 'text' });
  }
  return settings;
}

function readFile(path: string, via: string, tables: Map<TableKey, { raw: unknown; source: string }>): Setting[] {
  const where = `config file ${path} (from ${via})`;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw Errors.CONFIG_FILE(`${where}: cannot read: ${firstLine(err)}`, { cause: err });
  }
  try {
    // Integers as bigint so `1.0` (a TOML float) is told apart from `1`.
    return flatten(parseToml(text, { integersAsBigInt: true }), '', path, tables);
  } catch (err) {
    if (!(err instanceof TomlError)) throw err;
    const reason = firstLine(err).replace(/^Invalid TOML document:\s*/, '');
    throw Errors.CONFIG_FILE(`${where}: invalid TOML at line ${err.line}, column ${err.column}: ${reason}`, { cause: err });
  }
}

/** Walks the TOML tables into dotted keys (`[session] idleTimeoutMs` → `session.idleTimeoutMs`). */
function flatten(table: Record<string, unknown>, prefix: string, source: string, tables: Map<TableKey, { raw: unknown; source: string }>): Setting[] {
  const out: Setting[] = [];
  for (const [name, raw] of Object.entries(table)) {
    const path = prefix + name;
    if (isTableKey(path)) {
      // Checked as a whole after every source is read (config/tables.ts).
      tables.set(path, { raw: bigintsToNumbers(raw), source });
    } else if (keySet.has(path)) {
      out.push({ key: path as ConfigKey, raw, source, form: 'toml' });
    } else if (isTable(raw) && (sections.has(path) || Object.keys(raw).length > 0)) {
      // Unknown tables are walked too, so `[sesion] idleTimeoutMs` suggests `session.idleTimeoutMs`.
      out.push(...flatten(raw, `${path}.`, source, tables));
    } else if (sections.has(path)) {
      throw invalid(path, raw, source, `expected a table ([${path}])`);
    } else {
      resolveName(path, raw, path, source);
    }
  }
  return out;
}

/** Returns the key a known name stands for; throws for a renamed or unknown one. */
function resolveName(name: string, raw: unknown, what: string, source: string): ConfigKey {
  if (keySet.has(name)) return name as ConfigKey;
  if (isTableKey(name)) throw invalid(what, raw, source, `expected it in the config file only: it is a list of tables ([[${name}]])`);
  const to = renamed[name];
  if (to !== undefined) throw invalid(what, raw, source, `key "${name}" was renamed to "${to}"`, looksSecret(name));
  const flag = what.startsWith('--');
  throw unknown(what, raw, source, flag ? [...keys.map((k) => `--${k}`), '--config'] : keys, flag ? 'flag' : 'key');
}

// ---------------------------------------------------------------- checking

/** Turns a setting into its typed value, or throws saying what was expected. */
function settle(s: Setting): Value {
  const spec: KeySpec = schema[s.key];
  const secret = looksSecret(s.key);
  const value = s.form === 'text' ? fromText(spec, String(s.raw)) : s.form === 'toml' ? fromToml(spec, s.raw) : s.raw;
  if (value === undefined || !isValid(spec, value)) throw invalid(s.key, s.raw, s.source, `expected ${expectation(spec, s.form)}`, secret);
  const bad = extraRules[s.key]?.(value);
  if (bad !== undefined) throw invalid(bad.what, bad.value, s.source, `expected ${bad.expected}`, secret);
  return value;
}

/** Env and flag text → typed value; undefined when it does not parse. */
function fromText(spec: KeySpec, text: string): Value | undefined {
  switch (spec.type) {
    case 'integer':
      return /^[+-]?\d+$/.test(text.trim()) ? Number(text) : undefined;
    case 'number':
      return /^[+-]?(\d+(\.\d*)?|\.\d+)$/.test(text.trim()) ? Number(text) : undefined;
    case 'boolean':
      return text === 'true' || text === '1' ? true : text === 'false' || text === '0' ? false : undefined;
    case 'string[]':
      return text.split(',').map((part) => part.trim());
    default:
      return text;
  }
}

/** TOML value → typed value; TOML integers arrive as bigint, floats as number. */
function fromToml(spec: KeySpec, raw: unknown): unknown {
  if (spec.type === 'integer') return typeof raw === 'bigint' ? Number(raw) : undefined;
  if (spec.type === 'number') return typeof raw === 'bigint' ? Number(raw) : raw;
  return raw;
}

function isValid(spec: KeySpec, v: unknown): v is Value {
  const inRange = (n: number) => (spec.min === undefined || n >= spec.min) && (spec.max === undefined || n <= spec.max);
  const nonEmpty = (x: unknown) => typeof x === 'string' && x.trim() !== '';
  switch (spec.type) {
    case 'integer':
      return typeof v === 'number' && Number.isSafeInteger(v) && inRange(v);
    case 'number':
      return typeof v === 'number' && Number.isFinite(v) && inRange(v);
    case 'boolean':
      return typeof v === 'boolean';
    case 'enum':
      return typeof v === 'string' && (spec.values ?? []).includes(v);
    case 'string':
      if (spec.allowEmpty && v === '') return true;
      return nonEmpty(v) && (spec.pattern === undefined || spec.pattern.test(v as string));
    case 'string[]':
      return Array.isArray(v) && v.length > 0 && v.every(nonEmpty);
  }
}

/** What a key accepts, in words; the same text for a wrong type and an out-of-range value. */
function expectation(spec: KeySpec, form: Setting['form']): string {
  switch (spec.type) {
    case 'integer':
    case 'number': {
      const unit = spec.unit !== undefined && spec.unit !== 'count' ? ` (${spec.unit})` : '';
      const range =
        spec.min !== undefined && spec.max !== undefined ? ` from ${spec.min} to ${spec.max}`
        : spec.min !== undefined ? ` of at least ${spec.min}`
        : spec.max !== undefined ? ` of at most ${spec.max}`
        : '';
      return `${spec.type === 'integer' ? 'an integer' : 'a number'}${unit}${range}`;
    }
    case 'boolean':
      return form === 'text' ? 'true, false, 1 or 0' : 'true or false';
    case 'enum':
      return `one of ${(spec.values ?? []).map((v) => `"${v}"`).join(', ')}`;
    case 'string':
      return spec.patternDoc !== undefined ? `a string of ${spec.patternDoc}` : 'a non-empty string';
    case 'string[]':
      return form === 'text' ? 'a comma-separated list of non-empty strings' : 'a non-empty array of non-empty strings';
  }
}

/** Per-key rules beyond the schema's type and range. */
const extraRules: Partial<Record<ConfigKey, (v: Value) => { what: string; value: unknown; expected: string } | undefined>> = {
  'nats.servers': (v) => {
    const list = v as readonly string[];
    const i = list.findIndex((s) => !isNatsUrl(s));
    return i === -1 ? undefined : { what: `nats.servers[${i}]`, value: list[i], expected: 'a nats://host:port URL' };
  },
  ...integrationRules,
};

function isNatsUrl(s: string): boolean {
  let u: URL;
  try {
    u = new URL(s.trim());
  } catch {
    return false;
  }
  return u.protocol === 'nats:' && u.hostname !== '' && u.port !== '' && u.port !== '0'
    && u.username === '' && u.password === '' && (u.pathname === '' || u.pathname === '/') && u.search === '' && u.hash === '';
}

/** A host is suspect before it is down, and both take more than one missed heartbeat. */
function checkHeartbeatOrder(values: ReadonlyMap<ConfigKey, Value>, sources: Record<string, string>): void {
  const chain = ['cluster.heartbeatMs', 'cluster.suspectAfterMs', 'cluster.downAfterMs'] as const;
  for (let i = 1; i < chain.length; i++) {
    const lo = chain[i - 1];
    const hi = chain[i];
    const [l, h] = [values.get(lo) as number, values.get(hi) as number];
    if (!(h > l)) throw invalid(hi, h, sources[hi], `expected more than ${lo} = ${l} (from ${sources[lo]})`);
  }
  // A master cut off from the cluster must stop acting before the others
  // promote its shards: its last lease or heartbeat may be up to one
  // heartbeat older than what the others last heard (docs/architecture.md, fencing).
  const [fence, beat, down] = [values.get('cluster.selfFenceMs') as number, values.get('cluster.heartbeatMs') as number, values.get('cluster.downAfterMs') as number];
  if (!(fence + beat < down)) {
    throw invalid('cluster.selfFenceMs', fence, sources['cluster.selfFenceMs'], `expected less than cluster.downAfterMs - cluster.heartbeatMs = ${down - beat} (cluster.downAfterMs = ${down} from ${sources['cluster.downAfterMs']}, cluster.heartbeatMs = ${beat} from ${sources['cluster.heartbeatMs']})`);
  }
}

/** Keys that only mean something together: one set without the other is a mistake, not a default. */
const PAIRS: readonly (readonly [ConfigKey, ConfigKey])[] = [
  ['nats.user', 'nats.pass'],
  ['nats.tlsCertFile', 'nats.tlsKeyFile'],
  ['http.tlsCertFile', 'http.tlsKeyFile'],
];

function checkPairs(values: ReadonlyMap<ConfigKey, Value>, sources: Record<string, string>): void {
  for (const [a, b] of PAIRS) {
    for (const [set, unset] of [[a, b], [b, a]] as const) {
      if (values.has(set) && !values.has(unset)) throw invalid(set, values.get(set), sources[set], `expected ${unset} to be set as well`, looksSecret(set));
    }
  }
  if (values.has('nats.credsFile') && values.has('nats.user')) {
    throw invalid('nats.credsFile', values.get('nats.credsFile'), sources['nats.credsFile'], 'expected either nats.credsFile or nats.user/nats.pass, not both');
  }
}

/** The internal listener needs a port of its own (both listeners are opened by every worker). */
function checkPorts(values: ReadonlyMap<ConfigKey, Value>, sources: Record<string, string>): void {
  const port = values.get('admin.port') as number;
  const http = values.get('http.port') as number;
  if (values.get('admin.listener') === 'internal' && port !== 0 && port === http) {
    throw invalid('admin.port', port, sources['admin.port'], `expected a port other than http.port = ${http} (from ${sources['http.port']}): the internal listener has its own; for one port, set admin.listener = "public"`);
  }
}

// ---------------------------------------------------------------- result

/** Fills in the values whose default depends on the machine. */
function derive(values: Map<ConfigKey, Value>, sources: Record<string, string>): void {
  if (!values.has('hostId')) {
    // Hostnames may hold dots and other characters the hostId pattern (and NATS subjects) forbid.
    values.set('hostId', os.hostname().replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 64) || 'localhost');
    sources.hostId = 'default';
  }
  if (values.get('cluster.workers') === 0) values.set('cluster.workers', os.availableParallelism());
}

/** Env var names of the table keys, which only a file can give. */
const tableEnv: ReadonlyMap<string, string> = new Map(Object.keys(tableKeys).map((k) => [envNameOf(k), k]));

/** TOML integers arrive as bigint (see readFile); table entries want plain numbers. */
function bigintsToNumbers(v: unknown): unknown {
  if (typeof v === 'bigint') return Number(v);
  if (Array.isArray(v)) return v.map(bigintsToNumbers);
  if (isTable(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, bigintsToNumbers(x)]));
  return v;
}

/** Dotted keys → the nested, deeply frozen {@link SandbarConfig}. */
function build(values: ReadonlyMap<ConfigKey, Value>, tableValues: Record<TableKey, unknown>): SandbarConfig {
  const root: Record<string, unknown> = {};
  for (const [key, value] of [...values, ...Object.entries(tableValues)] as [string, unknown][]) {
    const path = key.split('.');
    let node = root;
    for (const seg of path.slice(0, -1)) node = (node[seg] ??= {}) as Record<string, unknown>;
    node[path[path.length - 1]] = Array.isArray(value) ? Object.freeze([...value]) : value;
  }
  // The one place the nested shape is built from the dotted keys; types.ts derives its type from the same keys.
  return deepFreeze(root) as SandbarConfig;
}

function deepFreeze<T extends object>(obj: T): T {
  for (const v of Object.values(obj)) if (typeof v === 'object' && v !== null) deepFreeze(v);
  return Object.freeze(obj);
}

// ---------------------------------------------------------------- messages

/** `config: <what> = <value> (from <source>): <problem>`, on one line. */
function invalid(what: string, value: unknown, source: string, problem: string, secret = false): SandbarError {
  const shown = value === undefined ? '' : ` = ${secret ? hidden(value) : show(value)}`;
  return Errors.CONFIG_INVALID(`config: ${what}${shown} (from ${source}): ${problem}`);
}

/** A value as the user wrote it, on one line and not too long. */
function show(v: unknown): string {
  const text =
    typeof v === 'string' ? JSON.stringify(v)
    : Array.isArray(v) ? `[${v.map(show).join(', ')}]`
    : v instanceof Date ? v.toISOString()
    : typeof v === 'object' && v !== null ? '{ table }'
    : String(v);
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

/** Secrets never reach a log line; their length still tells "empty" from "set". */
function hidden(v: unknown): string {
  return typeof v === 'string' ? `(hidden, ${v.length} characters)` : `(hidden ${typeof v})`;
}

function looksSecret(name: string): boolean {
  return /secret|pass|^admin\.token$|^api\.keys$|^authz\.proxyToken$/i.test(name);
}

/** "unknown key" plus, when one is close, the likely intended name. */
function unknown(name: string, raw: unknown, source: string, known: readonly string[], kind: string): SandbarError {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = editDistance(name.toLowerCase(), k.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  // Only a near miss is worth suggesting; a far one would mislead.
  const close = best !== undefined && bestDistance <= Math.min(3, Math.max(1, Math.floor(name.length / 4)));
  const problem = close ? `unknown ${kind}; did you mean ${best}?` : `unknown ${kind} (see docs/configuration.md for the known ones)`;
  // A misspelt secret is still a secret.
  return invalid(name, raw, source, problem, looksSecret(name) || (close && looksSecret(best ?? '')));
}

/** Levenshtein distance, one row at a time. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length];
}

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0].trim();
}
