/**
 * The servers the message benches run against, each started fresh in its own
 * process group (bench/lib/proc.ts) and stopped with its whole tree:
 *
 *   sandbar   nats-server -a 127.0.0.1 -p -1 -js (bench/lib/proc.ts startNats;
 *             Sandbar keeps shard ownership in a JetStream KV bucket), then
 *             node dist/src/main.js start --http.port=0 --cluster.workers=W ...
 *             (as bench/idle-sessions.ts starts it); wire: phoenix.
 *   socketio  bench/peers/socketio-server.ts (Socket.IO 4 + cluster adapter); wire: socketio.
 *   ws        bench/peers/ws-server.ts --broadcast (bare ws, primary relays broadcasts); wire: phoenix.
 *
 * cpuMicros() is utime+stime of the server's process tree, plus nats-server's
 * for Sandbar (nats-server routes every message between Sandbar's workers, so
 * it is part of Sandbar's cost), reported separately as natsCpuMicros().
 */
import { mkdirSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnServer, startNats, treeCpuMicros, type ServerHandle } from '../lib/proc.js';
import type { WireProto } from './workload-protocol.js';

export type TargetName = 'sandbar' | 'socketio' | 'ws';

export interface TargetOptions {
  readonly workers: number;
  readonly policy: 'none' | 'rr';
  /** Token secret (Sandbar's auth.secret; the Socket.IO peer verifies the same tokens). */
  readonly secret: string;
  /** A directory for this run's logs (a subdirectory is made per start). */
  readonly logDir: string;
  readonly sandbarMain: string;
  /** Extra `--key=value` flags for `sandbar start`. */
  readonly sandbarArgs?: readonly string[];
  /** Start the server's node processes with --cpu-prof, profiles into <run dir>/<cpuProfDir> (written when each process exits normally). */
  readonly cpuProfDir?: string;
}

export interface RunningTarget {
  readonly name: TargetName;
  readonly proto: WireProto;
  readonly url: string;
  readonly port: number;
  readonly server: ServerHandle;
  readonly nats?: ServerHandle;
  readonly dir: string;
  /** CPU of the server tree (and nats-server for Sandbar), µs. */
  cpuMicros(): number;
  natsCpuMicros(): number;
  stop(): Promise<void>;
}

const here = (rel: string) => fileURLToPath(new URL(rel, import.meta.url));

/** node flags that make the server's processes write CPU profiles (node:cluster workers inherit the primary's execArgv; NODE_OPTIONS may not carry --cpu-prof). */
function profArgs(o: TargetOptions, dir: string): string[] {
  return o.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${join(dir, o.cpuProfDir)}`] : [];
}

export async function startTarget(name: TargetName, o: TargetOptions, tag: string): Promise<RunningTarget> {
  const dir = mkdtempSync(join(o.logDir, `${name}-${tag}-`));
  if (name === 'sandbar') {
    const natsDir = join(dir, 'nats');
    mkdirSync(natsDir);
    const nats = await startNats(natsDir, join(dir, 'nats.log'));
    let server: ServerHandle;
    try {
      server = await spawnServer({
        name: 'sandbar',
        command: process.execPath,
        args: [
          ...profArgs(o, dir),
          o.sandbarMain, 'start',
          '--http.port=0', '--admin.listener=public',
          `--cluster.workers=${o.workers}`,
          `--cluster.schedulingPolicy=${o.policy}`,
          `--nats.servers=nats://127.0.0.1:${nats.port}`,
          '--nats.embedded=false',
          `--auth.secret=${o.secret}`, '--authz.default=public',
          '--log.level=info',
          '--session.idleTimeoutMs=600000',
          // Every client runs from a few loopback addresses at full speed: the per-IP,
          // admission and per-session rate limits would measure themselves, not the server.
          '--http.ipConnectRate=0', '--http.ipMaxSessions=0', '--http.acceptRate=0', '--session.ratePerSecond=0',
          ...(o.sandbarArgs ?? []),
        ],
        logPath: join(dir, 'server.log'),
        readyTimeoutMs: 60000,
        readyMsg: 'host ready',
      });
    } catch (err) {
      await nats.stop();
      throw err;
    }
    return {
      name, proto: 'phoenix', url: `ws://127.0.0.1:${server.port}/socket/websocket?vsn=2.0.0`, port: server.port, server, nats, dir,
      cpuMicros: () => treeCpuMicros(server.pid) + treeCpuMicros(nats.pid),
      natsCpuMicros: () => treeCpuMicros(nats.pid),
      stop: async () => {
        await server.stop();
        await nats.stop();
      },
    };
  }
  const script = name === 'socketio' ? here('../peers/socketio-server.js') : here('../peers/ws-server.js');
  const args = [...profArgs(o, dir), script, '--workers', String(o.workers), '--policy', o.policy, '--port', '0'];
  if (name === 'socketio') args.push('--secret', o.secret);
  else args.push('--broadcast');
  const server = await spawnServer({ name: `${name}-peer`, command: process.execPath, args, logPath: join(dir, 'server.log'), readyTimeoutMs: 30000, readyMsg: 'host ready' });
  return {
    name,
    proto: name === 'socketio' ? 'socketio' : 'phoenix',
    url: name === 'socketio' ? `ws://127.0.0.1:${server.port}/socket.io/?EIO=4&transport=websocket` : `ws://127.0.0.1:${server.port}/socket/websocket?vsn=2.0.0`,
    port: server.port,
    server,
    dir,
    cpuMicros: () => treeCpuMicros(server.pid),
    natsCpuMicros: () => 0,
    stop: () => server.stop(),
  };
}

export function median(xs: readonly number[]): number | undefined {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return undefined;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1]! + v[m]!) / 2;
}

/** A ratio for a table: x1.23, or - when there is none. */
export const times = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '-' : `x${x.toFixed(2)}`);

/** What pairedRatio needs of a run: which target, which repeat, and a variant where the bench has them (dm --persistence). */
export interface PairedRun { readonly target: TargetName; readonly repeat: number; readonly error?: string; readonly variant?: string }

/**
 * Median over repeats of a_r / b_r: each run of target a (variant va) is
 * paired with the run of target b (variant vb) of the same repeat; runs that
 * failed or have no positive figure are left out.
 */
export function pairedRatio<R extends PairedRun>(runs: readonly R[], a: TargetName, b: TargetName, f: (r: R) => number | undefined, va?: string, vb?: string): number | undefined {
  const out: number[] = [];
  for (const x of runs.filter((r) => r.target === a && r.variant === va && !r.error)) {
    const y = runs.find((r) => r.target === b && r.variant === vb && r.repeat === x.repeat && !r.error);
    const u = f(x);
    const v = y ? f(y) : undefined;
    if (u !== undefined && v !== undefined && u > 0 && v > 0) out.push(u / v);
  }
  return median(out);
}

/** Left-aligned first `left` columns, right-aligned others. */
export function table(headers: string[], body: string[][], left = 1): string {
  const w = headers.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < left ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  return [line(headers), line(w.map((x) => '-'.repeat(x))), ...body.map(line)].join('\n');
}

export function log(msg: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}
