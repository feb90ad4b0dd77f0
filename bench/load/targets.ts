/**
 * The servers the message benches run against, each started fresh in its own
 * process group (bench/lib/servers.ts) and stopped with its whole tree:
 *
 *   sandbar   nats-server -a 127.0.0.1 -p -1 -js (Sandbar keeps shard ownership
 *             in a JetStream KV bucket), then node dist/src/main.js start with
 *             the bench flags (bench/lib/servers.ts); wire: phoenix.
 *   socketio  bench/peers/socketio-server.ts (Socket.IO 4 + cluster adapter); wire: socketio.
 *   ws        bench/peers/ws-server.ts --broadcast (bare ws, primary relays broadcasts); wire: phoenix.
 *
 * cpuMicros() is utime+stime of the server's process tree, plus nats-server's
 * for Sandbar (nats-server routes every message between Sandbar's workers, so
 * it is part of Sandbar's cost), reported separately as natsCpuMicros().
 */
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SandbarHost } from '../../test/support/host.js';
import { treeCpuMicros } from '../lib/proc.js';
import { startBenchHost, startBenchNats, startPeer, type BenchServer } from '../lib/servers.js';
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
  /** Start the server's node processes with --cpu-prof, profiles into <run dir>/prof (written when each process exits normally). */
  readonly cpuProf?: boolean;
}

export interface RunningTarget {
  readonly name: TargetName;
  readonly proto: WireProto;
  readonly url: string;
  readonly port: number;
  readonly server: BenchServer;
  readonly nats?: BenchServer;
  readonly dir: string;
  /** CPU of the server tree (and nats-server for Sandbar), µs. */
  cpuMicros(): number;
  natsCpuMicros(): number;
  stop(): Promise<void>;
}

const here = (rel: string) => fileURLToPath(new URL(rel, import.meta.url));

/** node flags that make the server's processes write CPU profiles (node:cluster workers inherit the primary's execArgv; NODE_OPTIONS may not carry --cpu-prof). */
function profArgs(o: TargetOptions, dir: string): string[] {
  return o.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${join(dir, 'prof')}`] : [];
}

export async function startTarget(name: TargetName, o: TargetOptions, tag: string): Promise<RunningTarget> {
  const dir = mkdtempSync(join(o.logDir, `${name}-${tag}-`));
  if (name === 'sandbar') {
    const nats = await startBenchNats(dir);
    let server: SandbarHost;
    try {
      server = await startBenchHost({
        nats, dir, workers: o.workers, secret: o.secret, main: o.sandbarMain, nodeArgs: profArgs(o, dir),
        flags: { 'cluster.schedulingPolicy': o.policy }, args: o.sandbarArgs ?? [],
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
  const args = ['--workers', String(o.workers), '--policy', o.policy, '--port', '0'];
  if (name === 'socketio') args.push('--secret', o.secret);
  else args.push('--broadcast');
  const server = await startPeer({ name: `${name}-peer`, script, args, dir, nodeArgs: profArgs(o, dir) });
  return {
    name,
    proto: name === 'socketio' ? 'socketio' : 'phoenix',
    url: name === 'socketio' ? `ws://127.0.0.1:${server.port}/socket.io/?EIO=4&transport=websocket` : `ws://127.0.0.1:${server.port}/socket/websocket?vsn=2.0.0`,
    port: server.port,
    server,
    dir,
    cpuMicros: () => treeCpuMicros(server.pid),
    natsCpuMicros: () => 0,
    stop: async () => { await server.stop(5000); },
  };
}

