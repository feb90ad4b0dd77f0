/**
 * Zero set-up for one machine: when no NATS server answers at start and
 * `nats.embedded = true`, the primary runs `nats-server` from PATH on the
 * first configured address (loopback only), with JetStream in dataDir, and
 * stops it on exit.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { connect, type NodeConnectionOptions } from '@nats-io/transport-node';
import { Errors } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { natsAuthFailure } from './connection.js';

/**
 * True when some server of the list accepts a NATS connection within
 * timeoutMs. A server that answers but refuses the credentials or the TLS
 * set-up throws SANDBAR_ERR_NATS_AUTH: starting an embedded server would not help.
 */
export async function natsReachable(servers: readonly string[], timeoutMs: number, auth: Partial<NodeConnectionOptions> = {}): Promise<boolean> {
  try {
    const nc = await connect({ ...auth, servers: [...servers], timeout: timeoutMs, maxReconnectAttempts: 0, reconnect: false });
    await nc.close();
    return true;
  } catch (err) {
    const refused = natsAuthFailure(err, servers);
    if (refused) throw refused;
    return false;
  }
}

function natsServerOnPath(): boolean {
  const r = spawnSync('nats-server', ['--version'], { stdio: 'ignore' });
  return r.status === 0;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

export interface EmbeddedNats {
  readonly url: string;
  stop(): Promise<void>;
}

/** Starts nats-server on servers[0] (which must be loopback) and waits until it accepts connections. */
export async function startEmbeddedNats(servers: readonly string[], dataDir: string, logger: Logger): Promise<EmbeddedNats> {
  const url = new URL(servers[0]!.includes('://') ? servers[0]! : `nats://${servers[0]}`);
  if (!LOOPBACK.has(url.hostname)) {
    throw Errors.NATS_UNAVAILABLE(`no NATS server answers at ${servers.join(', ')}, and the embedded server only runs on a loopback address (nats.servers[0] is ${url.hostname}); start NATS there or fix nats.servers`);
  }
  if (!natsServerOnPath()) {
    throw Errors.NATS_UNAVAILABLE(`no NATS server answers at ${servers.join(', ')} and nats-server is not on PATH: install it (apt install nats-server) or point nats.servers at a running one`);
  }
  const port = url.port || '4222';
  const store = resolve(join(dataDir, 'nats'));
  mkdirSync(store, { recursive: true });
  // Its own process group: a SIGTERM to the host's group (systemd, Ctrl-C)
  // must not take NATS away before the workers have closed their sessions;
  // the primary stops it last, and kills it if the primary itself exits.
  const proc: ChildProcess = spawn('nats-server', ['-a', '127.0.0.1', '-p', port, '-js', '-sd', store], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  const killOnExit = () => { proc.kill('SIGKILL'); };
  process.once('exit', killOnExit);
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => { if (stderr.length < 8192) stderr += d.toString(); });
  const target = `nats://127.0.0.1:${port}`;
  const deadline = Date.now() + 10000;
  while (!(await natsReachable([target], 500))) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw Errors.NATS_UNAVAILABLE(`embedded nats-server did not start on ${target}: ${stderr.trim().split('\n').pop() ?? 'no output'}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  logger.info({ nats: target, store, pid: proc.pid }, 'embedded nats-server started');
  return {
    url: target,
    async stop() {
      process.removeListener('exit', killOnExit);
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    },
  };
}
