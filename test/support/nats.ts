/**
 * Real nats-server processes for tests and benches, on loopback:
 *
 * - NatsServer: one node on an ephemeral client port (`-p -1`, the port read
 *   from nats-server's ports file), JetStream in its own temp dir.
 * - NatsNode: one node run from a config file at a known client URL (the
 *   nodes of a NatsCluster, the example configs of the deploy test); it can
 *   be killed and started again on the same store.
 * - NatsCluster: `size` NatsNodes routed to each other, ready when JetStream
 *   answers through every node; a partition test places nodes in network
 *   namespaces.
 *
 * Each hands out NATS connections (`connect()`) that it closes before it
 * stops, so a suite's teardown is the server's stop and nothing else.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';
import { freePort } from './ports.js';
import { sleep } from './recorder.js';
import { ServerProcess } from './server-process.js';

/** Anything a Sandbar host can be pointed at: `url` is its nats.servers (comma-separated for a cluster). */
export interface NatsEndpoint { readonly url: string }

/** The connections a server handed out, closed before it stops. */
class Connections {
  private readonly open = new Set<NatsConnection>();
  async connect(servers: string | string[], opts: Partial<ConnectionOptions>): Promise<NatsConnection> {
    const nc = await connect({ servers, ...opts });
    this.open.add(nc);
    void nc.closed().then(() => this.open.delete(nc));
    return nc;
  }
  async closeAll(): Promise<void> {
    await Promise.all([...this.open].map((nc) => nc.close().catch(() => {})));
  }
}

export interface NatsServerOptions {
  /** JetStream on (default): Sandbar keeps shard ownership in a JetStream KV bucket. */
  readonly jetstream?: boolean;
  /** More nats-server arguments (e.g. `-c auth.conf`), or a function giving them when the server starts (a file a before() wrote). */
  readonly args?: readonly string[] | (() => readonly string[]);
  /** The nats-server binary (default: nats-server on PATH). */
  readonly command?: string;
  /** Where its temp dir goes (default: the OS temp dir); kept when given, removed otherwise. */
  readonly dir?: string;
  /** Write its log to this file. */
  readonly logFile?: string;
}

export class NatsServer implements NatsEndpoint {
  private server: ServerProcess | null = null;
  private dirPath = '';
  private portNo = 0;
  private readonly conns = new Connections();

  constructor(readonly opts: NatsServerOptions = {}) {}

  /** nats://127.0.0.1:<port> */
  get url(): string { return `nats://127.0.0.1:${this.portNo}`; }
  get port(): number { return this.portNo; }
  get dir(): string { return this.dirPath; }
  get proc(): ServerProcess['proc'] { return this.started().proc; }
  get pid(): number { return this.started().pid; }
  stderr(): string { return this.server?.log.stderr() ?? ''; }

  async start(): Promise<this> {
    this.dirPath = this.opts.dir ? join(this.opts.dir, 'nats') : mkdtempSync(join(tmpdir(), 'sandbar-nats-'));
    mkdirSync(this.dirPath, { recursive: true });
    const args = ['-a', '127.0.0.1', '-p', '-1', '--ports_file_dir', this.dirPath];
    if (this.opts.jetstream !== false) args.push('-js', '-sd', join(this.dirPath, 'js'));
    const more = this.opts.args;
    args.push(...(typeof more === 'function' ? more() : more ?? []));
    const server = await ServerProcess.launch({ name: 'nats-server', command: this.opts.command ?? 'nats-server', args, logFile: this.opts.logFile });
    this.server = server;
    const deadline = Date.now() + 10000;
    while (!this.portNo) {
      if (!server.running) throw new Error(`nats-server exited ${server.proc.exitCode}: ${server.log.stderr()}`);
      if (Date.now() > deadline) {
        await server.stop();
        throw new Error(`nats-server did not write its ports file: ${server.log.stderr()}`);
      }
      this.portNo = readPortsFile(this.dirPath);
      if (!this.portNo) await sleep(20);
    }
    return this;
  }

  /** A client connection, closed by stop() if the test did not close it. */
  connect(opts: Partial<ConnectionOptions> = {}): Promise<NatsConnection> { return this.conns.connect(this.url, opts); }

  async stop(): Promise<void> {
    await this.conns.closeAll();
    if (this.server) await this.server.stop(3000);
    if (this.dirPath && !this.opts.dir) rmSync(this.dirPath, { recursive: true, force: true });
  }

  private started(): ServerProcess {
    if (!this.server) throw new Error('nats-server is not started');
    return this.server;
  }
}

function readPortsFile(dir: string): number {
  const f = readdirSync(dir).find((n) => n.endsWith('.ports'));
  if (!f) return 0;
  try {
    const u = (JSON.parse(readFileSync(join(dir, f), 'utf8')) as { nats?: string[] }).nats?.[0];
    return u ? Number(new URL(u).port) : 0;
  } catch {
    return 0; // partly written; read again
  }
}

/** A single nats-server, started (the entry point tests have always used). */
export function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServer> {
  return new NatsServer(opts).start();
}

/** @deprecated name kept for tests written before test/support: a started NatsServer. */
export type NatsServerHandle = NatsServer;

/** Waits until JetStream answers through this URL (a meta leader is known). */
export async function jetStreamReady(url: string, deadline: number): Promise<void> {
  for (;;) {
    try {
      const nc = await connect({ servers: url, timeout: 500 });
      try {
        const info = (await nc.request('$JS.API.INFO', undefined, { timeout: 1000 })).json<{ error?: unknown }>();
        if (!info.error) return;
      } finally {
        await nc.close();
      }
    } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error(`NATS at ${url} has no JetStream answering`);
    await sleep(200);
  }
}

/** One nats-server run from a config file, reached at `url`. */
export class NatsNode {
  private server: ServerProcess | null = null;

  constructor(readonly name: string, readonly conf: string, readonly url: string, private readonly o: { wrap?: readonly string[]; command?: string; logFile?: string } = {}) {}

  get port(): number { return Number(new URL(this.url).port); }
  get proc(): ServerProcess['proc'] { return this.started().proc; }
  get pid(): number { return this.started().pid; }
  get running(): boolean { return this.server?.running ?? false; }
  stderr(): string { return this.server?.log.stderr() ?? ''; }

  /** Spawns the node; it is ready once the caller saw its JetStream answer (jetStreamReady). */
  async start(): Promise<this> {
    await this.server?.stop(); // what is left of a killed run
    this.server = await ServerProcess.launch({ name: this.name, command: this.o.command ?? 'nats-server', args: ['-c', this.conf], wrap: this.o.wrap, logFile: this.o.logFile });
    return this;
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void { this.server?.kill(signal); }

  /** Starts the node again (same config and store) after a kill; resolves when its JetStream answers. */
  async restart(): Promise<void> {
    await this.start();
    await jetStreamReady(this.url, Date.now() + 20000);
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    this.server.kill('SIGKILL');
    await this.server.stop();
  }

  private started(): ServerProcess {
    if (!this.server) throw new Error(`${this.name} is not started`);
    return this.server;
  }
}

/** Where one cluster node listens and how it is run (a partition test puts a node in a network namespace). */
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

export interface NatsClusterOptions {
  /** nats-server binary (default: nats-server on PATH). */
  readonly command?: string;
  /** Where the nodes' configs, stores and logs go (kept when given; a temp dir removed at stop otherwise). */
  readonly dir?: string;
  /** Write each node's log to <dir>/<name>.log. */
  readonly logs?: boolean;
  /** Longest wait for JetStream through every node (default 20 s). */
  readonly readyTimeoutMs?: number;
}

/** A NATS cluster with JetStream on loopback ports (each node with its own store), for cluster tests and the failover bench. */
export class NatsCluster implements NatsEndpoint {
  readonly nodes: NatsNode[] = [];
  private dirPath = '';
  private readonly conns = new Connections();

  constructor(readonly size = 3, private readonly placement: (i: number) => NodePlacement = () => ({}), private readonly opts: NatsClusterOptions = {}) {}

  /** All client URLs, comma separated, for nats.servers. */
  get urls(): string { return this.nodes.map((n) => n.url).join(','); }
  get url(): string { return this.urls; }
  get dir(): string { return this.dirPath; }

  async start(): Promise<this> {
    this.dirPath = this.opts.dir ?? mkdtempSync(join(tmpdir(), 'sandbar-natsc-'));
    mkdirSync(this.dirPath, { recursive: true });
    const ports = await Promise.all(Array.from({ length: this.size }, async () => ({ client: await freePort(), cluster: await freePort() })));
    const at = (j: number) => this.placement(j).clusterHost ?? '127.0.0.1';
    for (let i = 0; i < this.size; i++) {
      const name = `n${i + 1}`;
      const routes = ports.flatMap((p, j) => (j === i ? [] : [`nats-route://${at(j)}:${p.cluster}`])).join(', ');
      const pl = this.placement(i);
      const conf = join(this.dirPath, `${name}.conf`);
      writeFileSync(conf, `server_name: ${name}
listen: ${pl.clientListen ?? '127.0.0.1'}:${ports[i]!.client}
jetstream { store_dir: "${join(this.dirPath, name)}" }
cluster { name: sandbar-test, listen: ${at(i)}:${ports[i]!.cluster}, routes: [${routes}] }
`);
      const node = new NatsNode(name, conf, `nats://${pl.reachHost ?? '127.0.0.1'}:${ports[i]!.client}`, {
        wrap: pl.wrap, command: this.opts.command, logFile: this.opts.logs ? join(this.dirPath, `${name}.log`) : undefined,
      });
      this.nodes.push(node);
      await node.start();
    }
    // Ready when JetStream answers with a meta leader through every node.
    const deadline = Date.now() + (this.opts.readyTimeoutMs ?? 20000);
    for (const n of this.nodes) await jetStreamReady(n.url, deadline).catch(() => { throw new Error(`NATS cluster did not form; ${n.name}: ${n.stderr().slice(-2000)}`); });
    return this;
  }

  /** A client connection through every node, closed by stop() if the test did not close it. */
  connect(opts: Partial<ConnectionOptions> = {}): Promise<NatsConnection> { return this.conns.connect(this.nodes.map((n) => n.url), opts); }

  /** nats.servers for host i: node i first, then the others (each host talks to its own node first and knows the rest). */
  serversFor(i: number): string {
    const k = i % this.nodes.length;
    return [...this.nodes.slice(k), ...this.nodes.slice(0, k)].map((n) => n.url).join(',');
  }

  async stop(): Promise<void> {
    await this.conns.closeAll();
    await Promise.all(this.nodes.map((n) => n.stop()));
    if (this.dirPath && !this.opts.dir) rmSync(this.dirPath, { recursive: true, force: true });
  }
}

/** A NATS cluster of `size` nodes, started (the entry point tests have always used). */
export function startNatsCluster(size = 3, placement: (i: number) => NodePlacement = () => ({}), opts: NatsClusterOptions = {}): Promise<NatsCluster> {
  return new NatsCluster(size, placement, opts).start();
}
