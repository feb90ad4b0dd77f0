/**
 * The servers of the benches, started with the launchers the tests use
 * (test/support): nats-server on an ephemeral loopback port, a Sandbar host
 * with the bench's flags, a peer server (bench/peers). Each runs in its own
 * process group, logs to a file in the run's directory, and is killed with
 * its group if the bench exits first.
 */
import { join, resolve } from 'node:path';
import { MAIN, SandbarHost, type Flags, type HostOptions } from '../../test/support/host.js';
import { NatsServer, type NatsEndpoint } from '../../test/support/nats.js';
import { ServerProcess } from '../../test/support/server-process.js';

/** What a bench needs of any server it started: its process tree (CPU, RSS, GC) and a way to stop it. */
export interface BenchServer {
  readonly pid: number;
  readonly port: number;
  stop(): Promise<unknown>;
}

/**
 * Every bench host's flags: loopback, no embedded NATS, rooms open to every
 * signed-in user, /metrics on the public port, and no per-IP, admission or per-session rate limits (the
 * clients run from a few loopback addresses at full speed: the limits would
 * measure themselves, not the server); idle sessions kept for 10 minutes.
 */
export const BENCH_HOST_FLAGS: Flags = {
  'authz.default': 'public',
  // /metrics on the host's own port, where the benches read it (docs/operations.md, the internal port).
  'admin.listener': 'public',
  'log.level': 'info',
  'session.idleTimeoutMs': 600000,
  'http.ipConnectRate': 0,
  'http.ipMaxSessions': 0,
  'http.acceptRate': 0,
  'session.ratePerSecond': 0,
};

/** Log lines a bench host keeps in memory (its log file has them all). */
const BENCH_MAX_LINES = 20000;

/** nats-server with JetStream, its store and log in `dir`. */
export function startBenchNats(dir: string, command = 'nats-server'): Promise<NatsServer> {
  return new NatsServer({ dir, command, logFile: join(dir, 'nats.log') }).start();
}

/** `--key=value` words (a bench's --sandbar-args) as flags; anything else is refused. */
export function argsToFlags(args: readonly string[]): Flags {
  const out: Flags = {};
  for (const a of args) {
    const m = /^--([^=]+)=(.*)$/s.exec(a);
    if (!m) throw new Error(`"${a}" is not a --key=value flag for sandbar start`);
    out[m[1]!] = m[2]!;
  }
  return out;
}

export interface BenchHostOptions {
  readonly nats: string | NatsEndpoint;
  /** Its data dir and log file (server.log, or `logName`) go here. */
  readonly dir: string;
  readonly workers: number;
  /** auth.secret: the bench's clients sign their tokens with it. */
  readonly secret: string;
  readonly hostId?: string;
  /** Sandbar entry point (a bench's --sandbar). */
  readonly main?: string;
  /** More flags (they win over BENCH_HOST_FLAGS), and raw `--key=value` words after them (--sandbar-args). */
  readonly flags?: Flags;
  readonly args?: readonly string[];
  readonly nodeArgs?: string[];
  readonly env?: Record<string, string>;
  readonly readyTimeoutMs?: number;
  readonly logName?: string;
}

/** A Sandbar host for a bench, not started yet (start several together with startTogether). */
export function benchHost(o: BenchHostOptions): SandbarHost {
  const hostId = o.hostId ?? 'bench';
  const opts: HostOptions = {
    nats: o.nats,
    workers: o.workers,
    flags: { ...BENCH_HOST_FLAGS, 'auth.secret': o.secret, hostId, ...o.flags, ...argsToFlags(o.args ?? []) },
    dataDir: join(o.dir, `${hostId}-data`),
    logFile: join(o.dir, o.logName ?? 'server.log'),
    maxLines: BENCH_MAX_LINES,
    readyTimeoutMs: o.readyTimeoutMs ?? 60000,
    stopTimeoutMs: 5000,
    // Another build (a bench's --base): the flags it does not know yet are left out.
    ...(o.main ? { main: o.main, dropUnknownFlags: resolve(o.main) !== resolve(MAIN) } : {}),
    ...(o.nodeArgs ? { nodeArgs: o.nodeArgs } : {}),
    ...(o.env ? { env: o.env } : {}),
  };
  return new SandbarHost(opts);
}

/** A Sandbar host for a bench, started and ready. */
export function startBenchHost(o: BenchHostOptions): Promise<SandbarHost> {
  return benchHost(o).start();
}

/** A peer server (bench/peers/*.js), ready once it printed its "host ready" line. */
export function startPeer(o: { name: string; script: string; args: readonly string[]; dir: string; nodeArgs?: readonly string[]; env?: Record<string, string> }): Promise<ServerProcess> {
  return ServerProcess.launch({
    name: o.name,
    command: process.execPath,
    args: [...(o.nodeArgs ?? []), o.script, ...o.args],
    env: { ...process.env, ...o.env },
    logFile: join(o.dir, 'server.log'),
    maxLines: BENCH_MAX_LINES,
    ready: { msg: 'host ready', timeoutMs: 30000 },
  });
}
