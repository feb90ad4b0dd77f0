/**
 * A 3-node NATS cluster with JetStream on loopback ports, for cluster tests.
 * Each node has its own temp dir; ports are picked free by binding port 0.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';

import { freePort } from './ports.js';

export { freePort };

export interface NatsNode {
  name: string; port: number; url: string; proc: ChildProcess;
  kill(signal?: NodeJS.Signals): void;
  /** Starts the node again (same config and store) after a kill; resolves when its JetStream answers. */
  restart(): Promise<void>;
}

/** Waits until JetStream answers through this URL (a meta leader is known). */
async function jetStreamReady(url: string, deadline: number): Promise<void> {
  for (;;) {
    try {
      const nc = await connect({ servers: url, timeout: 500 });
      const r = await nc.request('$JS.API.INFO', undefined, { timeout: 1000 });
      const info = r.json<{ error?: unknown }>();
      await nc.close();
      if (!info.error) return;
    } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error(`NATS at ${url} has no JetStream answering`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export interface NatsCluster {
  nodes: NatsNode[];
  /** All client URLs, comma separated, for nats.servers. */
  urls: string;
  stop(): Promise<void>;
}

/** Where one node listens and how it is run (a partition test puts a node in a network namespace). */
export interface NodePlacement {
  /** Client listen address (default 127.0.0.1). */
  clientListen?: string;
  /** Address the test process reaches the client port on (default 127.0.0.1). */
  reachHost?: string;
  /** Cluster (route) listen address, also what the other nodes route to (default 127.0.0.1). */
  clusterHost?: string;
  /** Command prefix, e.g. ['ip', 'netns', 'exec', name]. */
  wrap?: string[];
}

export async function startNatsCluster(size = 3, placement: (i: number) => NodePlacement = () => ({})): Promise<NatsCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'sandbar-natsc-'));
  const ports = await Promise.all(Array.from({ length: size }, async () => ({ client: await freePort(), cluster: await freePort() })));
  const nodes: NatsNode[] = [];
  for (let i = 0; i < size; i++) {
    const name = `n${i + 1}`;
    const at = (j: number) => placement(j).clusterHost ?? '127.0.0.1';
    const routes = ports.flatMap((p, j) => (j === i ? [] : [`nats-route://${at(j)}:${p.cluster}`])).join(', ');
    const pl = placement(i);
    const conf = join(dir, `${name}.conf`);
    writeFileSync(conf, `server_name: ${name}
listen: ${pl.clientListen ?? '127.0.0.1'}:${ports[i]!.client}
jetstream { store_dir: "${join(dir, name)}" }
cluster { name: sandbar-test, listen: ${at(i)}:${ports[i]!.cluster}, routes: [${routes}] }
`);
    const cmd = [...(pl.wrap ?? []), 'nats-server', '-c', conf];
    const start = () => spawn(cmd[0]!, cmd.slice(1), { stdio: 'ignore' });
    const url = `nats://${pl.reachHost ?? '127.0.0.1'}:${ports[i]!.client}`;
    const node: NatsNode = {
      name, port: ports[i]!.client, url, proc: start(),
      kill: (sig = 'SIGKILL') => { node.proc.kill(sig); },
      restart: async () => { node.proc = start(); await jetStreamReady(url, Date.now() + 20000); },
    };
    nodes.push(node);
  }
  // Ready when JetStream answers with a meta leader through every node.
  const deadline = Date.now() + 20000;
  for (const n of nodes) await jetStreamReady(n.url, deadline).catch(() => { throw new Error('NATS cluster did not form'); });
  return {
    nodes,
    urls: nodes.map((n) => n.url).join(','),
    async stop() {
      for (const n of nodes) if (n.proc.exitCode === null && n.proc.signalCode === null) n.proc.kill('SIGKILL');
      await new Promise((r) => setTimeout(r, 100));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
