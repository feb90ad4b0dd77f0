/**
 * Mocha fixtures: each registers the before() that starts what a suite needs
 * and the after() that stops it, and returns the handles at once (they are
 * started by the time the first test runs). A test file never spells out
 * process start-up or tear-down:
 *
 *   describe('chat', function () {
 *     const { host } = withHost({ workers: 2, flags: { 'message.maxBytes': 1024 } });
 *     it('...', async () => { const c = await RawClient.open(host.url, token('alice')); ... });
 *   });
 *
 * Processes a test starts on its own (a host with a bad config, a restart)
 * come from a Lab (useLab), which stops whatever is still running after the
 * suite, or after each test.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SandbarHost, startTogether, type HostOptions } from './host.js';
import { NatsCluster, NatsServer, type NatsClusterOptions, type NatsServerOptions, type NodePlacement } from './nats.js';

export type HostFixtureOptions = Omit<HostOptions, 'nats'>;

/** A nats-server for the suite. */
export function withNats(opts: NatsServerOptions = {}): NatsServer {
  const nats = new NatsServer(opts);
  before(async () => { await nats.start(); });
  after(async () => { await nats.stop(); });
  return nats;
}

async function stopAll(hosts: readonly SandbarHost[]): Promise<void> {
  await Promise.all(hosts.map((h) => h.stop()));
}

/** Options now, or a function that gives them when the suite starts (a port a before() picked). */
export type Later<T> = T | (() => T);
const now = <T>(v: Later<T>): T => (typeof v === 'function' ? (v as () => T)() : v);

/** A nats-server and one host on it for the suite. */
export function withHost(opts: Later<HostFixtureOptions> = {}, natsOpts: NatsServerOptions = {}): { nats: NatsServer; host: SandbarHost } {
  const { nats, hosts } = withHosts(['h1'], opts, natsOpts);
  return { nats, host: hosts[0]! };
}

/** A nats-server and one host per id on it, started together. */
export function withHosts(ids: readonly string[], opts: Later<HostFixtureOptions> = {}, natsOpts: NatsServerOptions = {}): { nats: NatsServer; hosts: SandbarHost[] } {
  const nats = new NatsServer(natsOpts);
  const hosts = ids.map(() => new SandbarHost({ nats }));
  before(async () => {
    const o = now(opts);
    hosts.forEach((h, i) => h.configure({ ...o, nats, flags: { hostId: ids[i]!, ...o.flags } }));
    await nats.start();
    await startTogether(hosts);
  });
  after(async () => {
    await stopAll(hosts);
    await nats.stop();
  });
  return { nats, hosts };
}

/**
 * A NATS cluster of `size` nodes and hosts h1..h<size> (one worker each),
 * host i talking to node i first and knowing the others, started together.
 * `hosts` is the suite's list: a host a test adds with `cluster.addHost()`
 * joins it and is stopped with the rest.
 */
export function withCluster(size: number, flags: HostOptions['flags'] = {}, opts: { placement?: (i: number) => NodePlacement; host?: (i: number, nats: NatsCluster) => Partial<HostOptions>; nats?: NatsClusterOptions } = {}): {
  nats: NatsCluster; hosts: SandbarHost[]; addHost(hostId: string, more?: HostOptions['flags']): Promise<SandbarHost>;
} {
  const nats = new NatsCluster(size, opts.placement, opts.nats);
  const hosts: SandbarHost[] = [];
  before(async () => {
    await nats.start();
    hosts.push(...Array.from({ length: size }, (_, i) => {
      const own = opts.host?.(i, nats) ?? {};
      return new SandbarHost({ nats: nats.serversFor(i), workers: 1, ...own, flags: { hostId: `h${i + 1}`, ...flags, ...own.flags } });
    }));
    await startTogether(hosts);
  });
  after(async () => {
    await stopAll(hosts);
    await nats.stop();
  });
  return {
    nats,
    hosts,
    async addHost(hostId, more = {}) {
      const h = new SandbarHost({ nats: nats.urls, workers: 1, flags: { hostId, ...flags, ...more } });
      hosts.push(h);
      return h.start();
    },
  };
}

/** Processes a test starts itself; what is still running is stopped after the suite (or after each test with `each`). */
export class Lab {
  /** Hosts started through this lab and not stopped yet by it, in start order (a test may pop and stop one itself). */
  readonly hosts: SandbarHost[] = [];
  readonly natsServers: NatsServer[] = [];

  /** Starts a host and keeps it for the tear-down (kept even when it fails to become ready, so its dataDir goes). */
  async startHost(opts: HostOptions): Promise<SandbarHost> {
    const h = new SandbarHost(opts);
    this.hosts.push(h);
    return h.start();
  }

  async startNats(opts: NatsServerOptions = {}): Promise<NatsServer> {
    const n = new NatsServer(opts);
    this.natsServers.push(n);
    return n.start();
  }

  async stopAll(): Promise<void> {
    await stopAll(this.hosts.splice(0));
    await Promise.all(this.natsServers.splice(0).map((n) => n.stop()));
  }
}

export function useLab(opts: { each?: boolean } = {}): Lab {
  const lab = new Lab();
  if (opts.each) afterEach(async () => { await lab.stopAll(); });
  after(async () => { await lab.stopAll(); });
  return lab;
}

/** A temp dir for the suite (`path`), removed after it. */
export function withTempDir(prefix: string): { readonly path: string } {
  const dir = { path: '' };
  before(() => { dir.path = mkdtempSync(join(tmpdir(), prefix)); });
  after(() => { if (dir.path) rmSync(dir.path, { recursive: true, force: true }); });
  return dir;
}
