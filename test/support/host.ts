/**
 * Real Sandbar hosts (the compiled `dist/src/main.js start`) for tests and
 * benches, followed through their pino log lines so that a caller waits on
 * events ("host ready", "worker listening") instead of sleeping.
 *
 * - SandbarHost: a host from `--key=value` flags, each run in a fresh temp
 *   dataDir (removed at stop); start(), stop(), restart(), kill -9.
 * - startHostFromConfig: a host from a config file and nothing else, the way
 *   an operator (or sandbar.service) starts one.
 * - runSandbar: one CLI command (check-config, token, status, ...) to its exit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { mintToken } from '../../src/auth/token.js';
import type { LogLine } from './log-follower.js';
import type { NatsEndpoint } from './nats.js';
import { MAIN } from './paths.js';
import { sleep } from './recorder.js';
import { ServerProcess, type Exit } from './server-process.js';

export { MAIN } from './paths.js';
export type { LogLine } from './log-follower.js';

/** auth.secret of every test host; token() signs with it. */
export const SECRET = 'test-secret';

export function token(userId: string, ttlS = 3600): string {
  return mintToken(SECRET, userId, ttlS);
}

export type Flags = Record<string, string | number | boolean>;

export interface HostOptions {
  /** nats.servers: a URL list, or a started NatsServer / NatsCluster (read when the host starts). */
  nats: string | NatsEndpoint;
  /** cluster.workers (default 2). */
  workers?: number;
  /** Extra `--key=value` flags; they win over the defaults below. */
  flags?: Flags;
  /** Added to this process's environment. */
  env?: Record<string, string>;
  /** Resolve as soon as the process started, without waiting for "host ready". */
  noWait?: boolean;
  /** Command prefix, e.g. ['ip', 'netns', 'exec', name] (it must exec, keeping the pid). */
  wrap?: string[];
  /** Address clients reach the host on (default 127.0.0.1). */
  reachHost?: string;
  /** Longest wait for "host ready" (default 20 s). */
  readyTimeoutMs?: number;
  /** The Sandbar entry point (default dist/src/main.js of this checkout). */
  main?: string;
  /** node flags before the entry point (a bench's --cpu-prof). */
  nodeArgs?: string[];
  /** Write the host's log to this file (benches). */
  logFile?: string;
  /**
   * Benches that run an older build (`main`) beside this one: leave out the
   * flags it does not know (each named by its `check-config`), so the same
   * bench settings start both; what was left out is logged.
   */
  dropUnknownFlags?: boolean;
  /** Log lines kept in memory at most (default: all). */
  maxLines?: number;
  /** dataDir to use and keep (default: a temp dir per run, removed at stop). */
  dataDir?: string;
  /** Budget of a graceful stop before SIGKILL (default 15 s). */
  stopTimeoutMs?: number;
}

/** What a test reads of a running host (its type since before test/support). */
export interface HostHandle {
  readonly proc: ChildProcess;
  readonly port: number;
  /** The internal listener's port (/metrics, /cluster): from "host ready"; equal to port with admin.listener = "public". */
  readonly adminPort: number;
  readonly url: string;
  readonly lines: LogLine[];
  /** stderr text (config errors, warnings). */
  stderr(): string;
  /** Resolves with the first log line (already seen, from index `from`, or future) matching pred. */
  waitFor(pred: (l: LogLine) => boolean, timeoutMs?: number, from?: number): Promise<LogLine>;
  /** pid of each worker index, from the latest "worker listening" line. */
  workerPids(): Map<number, number>;
  readonly exit: Promise<Exit>;
  kill(signal?: NodeJS.Signals): void;
  /** kill -9 of the whole host: primary, workers and anything else in its process group. */
  killHost(): void;
  stop(): Promise<void>;
}

/** The flags every test host starts with: loopback, an ephemeral port, the test secret, no embedded NATS, rooms open to any signed-in user. */
function defaultFlags(o: HostOptions, dataDir: string): Flags {
  return {
    'http.host': '127.0.0.1',
    'http.port': 0,
    // Every test host gets its own internal listener port (the default, 4001, is one per machine).
    'admin.port': 0,
    'cluster.workers': o.workers ?? 2,
    'nats.servers': typeof o.nats === 'string' ? o.nats : o.nats.url,
    'nats.embedded': false,
    'auth.secret': SECRET,
    // Rooms open to any signed-in user, as before room authorization (the default is deny); auth tests set their own.
    'authz.default': 'public',
    dataDir,
    hostId: 'h1',
  };
}

/** A Sandbar process and what tests read of it (shared by flag and config-file hosts). */
class Running {
  constructor(readonly server: ServerProcess, private readonly reachHost: string) {}
  get url(): string { return `ws://${this.reachHost}:${this.server.port}`; }
  workerPids(): Map<number, number> {
    const m = new Map<number, number>();
    for (const l of this.server.log.lines) if (l.msg === 'worker listening' && typeof l.worker === 'number') m.set(l.worker, l.pid as number);
    return m;
  }
}

export class SandbarHost implements HostHandle {
  private run: Running | null = null;
  private tempDataDir: string | null = null;

  constructor(private opts: HostOptions) {}

  get options(): Readonly<HostOptions> { return this.opts; }
  get hostId(): string { return String(this.opts.flags?.hostId ?? 'h1'); }
  get started(): boolean { return this.run !== null; }
  get server(): ServerProcess { return this.current().server; }
  get proc(): ChildProcess { return this.current().server.proc; }
  /** pid of the primary, the leader of the host's process group. */
  get pid(): number { return this.current().server.pid; }
  get port(): number { return this.current().server.port; }
  get adminPort(): number { return this.current().server.adminPort; }
  get url(): string { return this.current().url; }
  get lines(): LogLine[] { return this.current().server.log.lines; }
  get exit(): Promise<Exit> { return this.current().server.exit; }
  get running(): boolean { return this.run?.server.running ?? false; }
  stderr(): string { return this.current().server.log.stderr(); }
  waitFor(pred: (l: LogLine) => boolean, timeoutMs = 15000, from = 0): Promise<LogLine> { return this.current().server.log.waitFor(pred, timeoutMs, from); }
  workerPids(): Map<number, number> { return this.current().workerPids(); }
  kill(signal: NodeJS.Signals = 'SIGTERM'): void { this.current().server.kill(signal); }
  killHost(): void { this.current().server.killGroup('SIGKILL'); }

  /** Spawns the host (its own process group) and, unless noWait, waits for "host ready". */
  async start(): Promise<this> {
    if (this.run?.server.running) throw new Error(`${this.hostId} is running already`);
    const o = this.opts;
    const dataDir = o.dataDir ?? (this.tempDataDir = mkdtempSync(join(tmpdir(), 'sandbar-host-')));
    let flags = { ...defaultFlags(o, dataDir), ...o.flags };
    if (o.dropUnknownFlags) flags = await knownFlags(o.main ?? MAIN, flags);
    try {
      const server = await ServerProcess.launch({
        name: String(flags.hostId),
        command: process.execPath,
        args: [...(o.nodeArgs ?? []), o.main ?? MAIN, 'start', ...Object.entries(flags).map(([k, v]) => `--${k}=${v}`)],
        env: { ...process.env, ...o.env },
        wrap: o.wrap,
        logFile: o.logFile,
        maxLines: o.maxLines,
        ready: o.noWait ? undefined : { msg: 'host ready', timeoutMs: o.readyTimeoutMs ?? 20000 },
      });
      this.run = new Running(server, o.reachHost ?? '127.0.0.1');
    } catch (err) {
      this.removeDataDir();
      throw err;
    }
    return this;
  }

  /** SIGTERM (a graceful stop), SIGKILL after the budget, and of the process group; removes the temp dataDir. Harmless when not running. */
  async stop(): Promise<void> {
    if (this.run) await this.run.server.stop(this.opts.stopTimeoutMs ?? 15000);
    this.removeDataDir();
  }

  /** Changes options for the next start (flags are replaced, not merged). */
  configure(changes: Partial<HostOptions>): this {
    this.opts = { ...this.opts, ...changes };
    return this;
  }

  /** Stops this host (whatever is left of it) and starts it again, with `changes` to its options (flags are replaced, not merged). */
  async restart(changes: Partial<HostOptions> = {}): Promise<this> {
    await this.stop();
    return this.configure(changes).start();
  }

  private removeDataDir(): void {
    if (this.tempDataDir) rmSync(this.tempDataDir, { recursive: true, force: true });
    this.tempDataDir = null;
  }

  private current(): Running {
    if (!this.run) throw new Error(`${this.hostId} is not started`);
    return this.run;
  }
}

/** The flags `main` accepts: each one its check-config calls unknown is left out (and said so), at most 50. */
async function knownFlags(main: string, flags: Flags): Promise<Flags> {
  const out = { ...flags };
  for (let i = 0; i < 50; i++) {
    const r = await runSandbarAt(main, ['check-config', ...Object.entries(out).map(([k, v]) => `--${k}=${v}`)]);
    if (r.code === 0) return out;
    const m = /--([A-Za-z0-9_.]+) = .*unknown (?:flag|key)/.exec(r.stderr);
    if (r.code !== 78 || !m || !(m[1]! in out)) throw new Error(`${main} check-config refused the bench flags: ${r.stderr.trim()}`);
    process.stderr.write(`${main}: leaving out --${m[1]} (unknown to that build)\n`);
    delete out[m[1]!];
  }
  throw new Error(`${main}: too many unknown flags`);
}

/** A host from flags, started (the entry point tests have always used). */
export function startHost(opts: HostOptions): Promise<SandbarHost> {
  return new SandbarHost(opts).start();
}

/**
 * Starts the hosts together (one discovery window: hosts started a moment
 * apart would each claim every shard first). Every host is given its chance
 * to start before the first failure is thrown, so the caller can stop all.
 */
export async function startTogether(hosts: readonly SandbarHost[]): Promise<void> {
  const started = await Promise.allSettled(hosts.map((h) => h.start()));
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
}

/** The environment of this process without SANDBAR_* (so only the file and `env` configure a host), plus `env`. */
export function cleanEnv(env: Record<string, string> = {}): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('SANDBAR_')) out[k] = v;
  return Object.assign(out, env);
}

export interface ConfigHostHandle {
  readonly proc: ChildProcess;
  readonly config: string;
  /** Every JSON log line so far, in order. */
  readonly lines: LogLine[];
  /** The HTTP port from the "host ready" line (0 until then). */
  readonly port: number;
  /** The internal listener's port from the "host ready" line (0 until then; port with admin.listener = "public"). */
  readonly adminPort: number;
  stderr(): string;
  /** Resolves with the first log line (already seen, from index `from`, or future) matching pred. */
  waitFor(pred: (l: LogLine) => boolean, timeoutMs?: number, from?: number): Promise<LogLine>;
  readonly exit: Promise<Exit>;
  /** SIGTERM (a graceful stop), SIGKILL of what is left after timeoutMs, and of the process group. */
  stop(timeoutMs?: number): Promise<Exit>;
}

/**
 * Spawns `sandbar start --config <config>` in its own process group and,
 * unless `noWait`, waits for "host ready". `env` is added to this process's
 * environment after removing any inherited SANDBAR_* variable, so that only
 * the file and `env` configure the host. The internal listener gets a free
 * port (SANDBAR_ADMIN_PORT=0) unless `env` says otherwise: several test hosts
 * share this machine, and the files' default, 4001, is one per machine.
 */
export async function startHostFromConfig(config: string, opts: { env?: Record<string, string>; readyTimeoutMs?: number; noWait?: boolean } = {}): Promise<ConfigHostHandle> {
  const server = await ServerProcess.launch({
    name: `${basename(config, '.toml')} host`,
    command: process.execPath,
    args: [MAIN, 'start', '--config', config],
    env: cleanEnv({ SANDBAR_ADMIN_PORT: '0', ...opts.env }),
    ready: opts.noWait ? undefined : { msg: 'host ready', timeoutMs: opts.readyTimeoutMs ?? 30000 },
  });
  const log = server.log;
  return {
    proc: server.proc, config, exit: server.exit,
    get lines() { return log.lines; },
    get port() { return server.port; },
    get adminPort() { return server.adminPort; },
    stderr: () => log.stderr(),
    waitFor: (pred, timeoutMs = 15000, from = 0) => log.waitFor(pred, timeoutMs, from),
    stop: (timeoutMs = 15000) => server.stop(timeoutMs),
  };
}

/** Spawns `node dist/src/main.js <args>` (not detached unless asked), with `env` added to this process's. */
export function spawnSandbar(args: string[], env: Record<string, string> = {}, detached = false, wrap: string[] = []): ChildProcess {
  const cmd = [...wrap, process.execPath, MAIN, ...args];
  return spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env }, detached });
}

export interface CliRun { readonly code: number | null; readonly stdout: string; readonly stderr: string }

/** Runs one `sandbar` command to its exit. `clean`: without the SANDBAR_* variables of this process's environment. */
export function runSandbar(args: string[], opts: { env?: Record<string, string>; clean?: boolean } = {}): Promise<CliRun> {
  return runSandbarAt(MAIN, args, opts);
}

/** The same with another build's entry point. */
async function runSandbarAt(main: string, args: string[], opts: { env?: Record<string, string>; clean?: boolean } = {}): Promise<CliRun> {
  const p = spawn(process.execPath, [main, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: opts.clean ? cleanEnv(opts.env) : { ...process.env, ...opts.env } });
  let stdout = '';
  let stderr = '';
  p.stdout!.on('data', (d: Buffer) => { stdout += d; });
  p.stderr!.on('data', (d: Buffer) => { stderr += d; });
  const closed = once(p, 'close');
  const [code] = await once(p, 'exit');
  // The output is read to its end, unless a process it left behind holds the pipes.
  await Promise.race([closed, sleep(2000)]);
  return { code: code as number | null, stdout, stderr };
}
