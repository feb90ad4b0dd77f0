/**
 * The primary: the host's supervisor. It makes sure NATS is there (starting
 * an embedded nats-server when allowed), forks the workers, restarts crashed
 * ones within the restart intensity, kills hung ones, aggregates their stats
 * for /metrics, and on SIGTERM/SIGINT stops them gracefully within the budget.
 */
import cluster, { type Worker } from 'node:cluster';
import { accessSync, constants } from 'node:fs';
import type { SandbarConfig } from '../config/types.js';
import { Errors, ErrorCodes } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { MetricsGatherer } from '../observability/gather.js';
import { hostFamilies } from '../observability/host-metrics.js';
import { runtimeFamilies, startRuntimeMetrics } from '../observability/runtime-metrics.js';
import { natsReachable, startEmbeddedNats, type EmbeddedNats } from '../bus/embedded.js';
import { connectBus, natsAuthOptions, type NatsConnection } from '../bus/connection.js';
import { ExitStreaks, RESTORE_HANG_FACTOR, RestartPolicy, SAME_EXIT_IN_A_ROW, classifyExit } from './supervisor.js';
import { workerExecArgv, workerHeapMb } from './heap.js';
import { Subjects } from '../bus/subjects.js';
import { ensureBucket, Ownership } from '../placement/ownership.js';
import { ensurePersistence } from '../persistence/index.js';
import { startMicroService, type MicroService } from '../admin/micro.js';
import { adminEndpoints } from '../admin/endpoints.js';
import { ApiForwarder, apiEndpoints } from '../api/nats-endpoints.js';
import { ensureEvents } from '../events/stream.js';
import type { HostView } from '../placement/rendezvous.js';
import { Lease } from './lease.js';
import { Membership } from './membership.js';
import { VERSION } from '../version.js';
import { randomBytes } from 'node:crypto';
import { notifyReady, notifyStopping, startWatchdog } from '../observability/sd-notify.js';
import { WORKER_ENV, type ToPrimary, type ToWorker, type WorkerStats } from './ipc.js';

interface Slot {
  index: number;
  worker: Worker | null;
  lastPong: number;
  listening: boolean;
  serving: boolean;
  stats: WorkerStats | null;
  /** The worker said it is restoring shards from JetStream (it gets more time to answer pings). */
  restoring: boolean;
  /** The primary killed it for not answering pings (read when it exits). */
  killedAsHung: boolean;
  /** A late pong while restoring was logged (once per restore). */
  lateLogged: boolean;
  /** A pong came since the fork: the worker's code is loaded and its loop runs. */
  answered: boolean;
}

/** How long a scrape waits for the workers' metrics (the worker that took it waits 3 s for the primary). */
const SCRAPE_TIMEOUT_MS = 1500;

export const EXIT = { ok: 0, software: 70, unavailable: 69, config: 78, gaveUp: 1 } as const;

export class Primary {
  private readonly slots: Slot[] = [];
  private readonly policy: RestartPolicy;
  private embedded: EmbeddedNats | null = null;
  private nc: NatsConnection | null = null;
  private stopping: Promise<never> | null = null;
  private pinger: NodeJS.Timeout | null = null;
  private readyLogged = false;
  private port = 0;
  private adminPort: number | null = null;
  /** Asks the workers for their metrics at each scrape (src/observability/gather.ts). */
  private readonly gatherer: MetricsGatherer;
  /** Times the cluster lease was lost, and whether the host acts as master now. */
  private leaseLost = 0;
  private acting = true;
  private pingSeq = 0;
  /** When pingAll last ran (0: never), to tell the primary's own stalls from a worker's. */
  private lastPingAt = 0;
  private membership: Membership | null = null;
  private lease: Lease | null = null;
  private ownership: Ownership | null = null;
  private micro: MicroService | null = null;
  /** Server API requests that came over NATS, handed to the workers (src/api/nats-endpoints.ts). */
  private readonly api: ApiForwarder;
  private view: HostView[] = [];
  private readonly incarnation = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  private readonly streaks = new ExitStreaks();
  private readonly heapMb: number;

  constructor(private readonly config: SandbarConfig, private readonly logger: Logger) {
    const c = config.cluster;
    this.policy = new RestartPolicy({ maxRestarts: c.maxRestarts, windowMs: c.restartWindowMs, backoffMs: c.restartBackoffMs });
    this.api = new ApiForwarder(() => this.slots.filter((s) => s.serving && s.worker?.isConnected()).map((s) => s.worker!), config.request.timeoutMs + 2000);
    this.heapMb = workerHeapMb(config);
    this.gatherer = new MetricsGatherer({
      hostId: config.hostId,
      workers: () => this.slots.filter((s) => s.worker?.isConnected()).map((s) => ({ index: s.index, ask: (id: number) => s.worker!.send({ t: 'scrape', id } satisfies ToWorker) })),
      own: async () => ({ host: hostFamilies(this.hostState()), process: await runtimeFamilies() }),
    }, SCRAPE_TIMEOUT_MS);
  }

  /** What the host-level metrics say now. */
  private hostState(): Parameters<typeof hostFamilies>[0] {
    const members = this.membership?.members() ?? [];
    return {
      version: VERSION, node: process.version, nats: this.nc?.info?.version ?? '',
      restarts: this.policy.total, workers: this.config.cluster.workers, workersUp: this.slots.filter((s) => s.listening).length,
      hosts: members.length, suspectHosts: members.filter((m) => m.suspect).length,
      natsConnected: this.nc !== null && !this.nc.isClosed(),
      leaseValid: this.lease ? Date.now() < this.lease.okUntil() : null, leaseLost: this.leaseLost,
    };
  }

  async start(): Promise<void> {
    const { config, logger } = this;
    // systemd's watchdog (WatchdogSec) is fed while the primary's loop runs; a no-op outside systemd.
    startWatchdog();
    startRuntimeMetrics();
    process.on('SIGTERM', () => void this.stop(EXIT.ok, 'SIGTERM'));
    process.on('SIGINT', () => void this.stop(EXIT.ok, 'SIGINT'));

    checkFiles(config);
    await this.ensureNats();
    this.nc = await connectBus({ servers: config.nats.servers, auth: natsAuthOptions(config.nats), name: `sandbar ${config.hostId} primary`, timeoutMs: config.nats.connectTimeoutMs, logger });
    // The shard ownership bucket exists before any worker claims a shard.
    try {
      await ensureBucket(this.nc, config.cluster.name, logger);
      await ensurePersistence(this.nc, config, new Subjects(config.cluster.name), logger);
      await ensureEvents(this.nc, config, new Subjects(config.cluster.name), logger);
    } catch (err) {
      // A store limit JetStream cannot reserve is a configuration error, named as such (exit 78).
      if (Errors.CONFIG_INVALID.is(err)) throw err;
      throw Errors.JETSTREAM_UNAVAILABLE(`NATS at ${config.nats.servers.join(', ')} has no JetStream (${(err as Error).message}): run nats-server with -js (or "jetstream {}" in its config); Sandbar keeps shard ownership in a JetStream KV bucket`, { cause: err });
    }
    this.ownership = await Ownership.open(this.nc, config.cluster.name, logger);

    // Must be set before the first fork; see docs/benchmarks.md for why "none" is the default.
    cluster.schedulingPolicy = config.cluster.schedulingPolicy === 'rr' ? cluster.SCHED_RR : cluster.SCHED_NONE;
    // The workers' heap limit: the storage budget is a share of it (docs/storage.md).
    cluster.setupPrimary({ execArgv: workerExecArgv(process.execArgv, this.heapMb) });
    logger.info({ workerHeapMb: this.heapMb, derived: config.cluster.workerHeapMb === 0 }, 'worker heap limit');
    cluster.on('exit', (w, code, signal) => this.onExit(w, code, signal));
    cluster.on('message', (w, msg: ToPrimary) => this.onMessage(w, msg));
    for (let i = 0; i < config.cluster.workers; i++) {
      this.slots.push({ index: i, worker: null, lastPong: 0, listening: false, serving: false, stats: null, restoring: false, killedAsHung: false, lateLogged: false, answered: false });
      this.fork(i);
    }
    this.pinger = setInterval(() => this.pingAll(), config.cluster.workerPingMs);
    logger.info({ workers: config.cluster.workers, policy: config.cluster.schedulingPolicy, nats: config.nats.servers }, 'primary started');
  }

  private async ensureNats(): Promise<void> {
    const { config, logger } = this;
    if (await natsReachable(config.nats.servers, config.nats.connectTimeoutMs, natsAuthOptions(config.nats))) return;
    if (!config.nats.embedded) {
      throw Errors.NATS_UNAVAILABLE(`no NATS server answers at ${config.nats.servers.join(', ')} (nats.embedded = false): start NATS there or set nats.embedded = true with nats-server installed (apt install nats-server)`);
    }
    this.embedded = await startEmbeddedNats(config.nats.servers, config.dataDir, logger);
  }

  private fork(index: number): void {
    const slot = this.slots[index]!;
    const worker = cluster.fork({ [WORKER_ENV.config]: JSON.stringify(this.config), [WORKER_ENV.index]: String(index) });
    slot.worker = worker;
    slot.listening = false;
    slot.restoring = false;
    slot.killedAsHung = false;
    slot.answered = false;
    slot.lastPong = performance.now();
    this.logger.info({ workerIndex: index, workerPid: worker.process.pid }, 'worker forked');
  }

  private slotOf(w: Worker): Slot | undefined {
    return this.slots.find((s) => s.worker === w);
  }

  private onMessage(w: Worker, msg: ToPrimary): void {
    const slot = this.slotOf(w);
    if (!slot) return;
    switch (msg.t) {
      case 'pong':
        slot.lastPong = performance.now();
        if (!slot.answered) slot.lateLogged = false;
        slot.answered = true;
        slot.stats = msg.stats;
        slot.restoring = msg.stats.restoring > 0;
        break;
      case 'restoring':
        // Sent before a restore starts its work: a silence from now on may be that work.
        slot.restoring = msg.shards > 0;
        if (!slot.restoring) slot.lateLogged = false;
        break;
      case 'listening':
        slot.listening = true;
        slot.lastPong = performance.now();
        this.port = msg.port;
        this.adminPort = msg.adminPort;
        if (!this.membership && this.slots.every((s) => s.listening)) {
          // Join the cluster only with every worker up, so shards are not
          // first placed on one worker and then moved.
          this.startMembership();
        } else if (this.membership) {
          // A restarted worker: it gets the lease and the view now, and the cluster hears of it.
          if (this.lease) w.send({ t: 'lease', okUntil: this.lease.okUntil() } satisfies ToWorker);
          w.send({ t: 'view', hosts: this.view } satisfies ToWorker);
          this.membership.publish();
        }
        break;
      case 'serving':
        slot.serving = true;
        if (!this.readyLogged && this.slots.every((s) => s.serving)) {
          this.readyLogged = true;
          this.logger.info({ port: this.port, adminPort: this.adminPort, workers: this.slots.length, hostId: this.config.hostId }, 'host ready');
          void notifyReady(`host ready: ${this.slots.length} workers on port ${this.port} (${this.config.hostId})`);
        }
        break;
      case 'api':
        this.api.onReply(msg);
        break;
      case 'metrics?':
        void this.gatherer.gather()
          .catch((err: Error) => ({ status: 503 as const, text: `# metrics unavailable: ${err.message}\n` }))
          .then((r) => { if (w.isConnected()) w.send({ t: 'metrics', id: msg.id, status: r.status, text: r.text } satisfies ToWorker); });
        break;
      case 'scraped':
        this.gatherer.onFamilies(slot.index, msg.id, msg.families);
        break;
    }
  }

  private startMembership(): void {
    const c = this.config;
    this.membership = new Membership(this.nc!, new Subjects(c.cluster.name), () => ({
      t: 'hb',
      hostId: c.hostId,
      incarnation: this.incarnation,
      workers: this.slots.filter((s) => s.listening).map((s) => s.index),
      load: this.slots.reduce((a, s) => a + (s.stats?.sessions ?? 0), 0),
      version: VERSION,
    }), { heartbeatMs: c.cluster.heartbeatMs, suspectAfterMs: c.cluster.suspectAfterMs, downAfterMs: c.cluster.downAfterMs }, this.logger, (view) => {
      this.view = view;
      this.logger.info({ view: view.map((h) => `${h.hostId}[${(h.alive ?? []).join(',')}]`) }, 'cluster view changed');
      for (const s of this.slots) if (s.listening && s.worker?.isConnected()) s.worker.send({ t: 'view', hosts: view } satisfies ToWorker);
    });
    const membership = this.membership;
    this.lease = new Lease(this.ownership!, c.hostId, this.incarnation, { heartbeatMs: c.cluster.heartbeatMs, selfFenceMs: c.cluster.selfFenceMs },
      () => membership.majorityHeardAt(),
      (okUntil, acting) => {
        if (this.acting && !acting) this.leaseLost++;
        this.acting = acting;
        membership.setActing(acting);
        for (const s of this.slots) if (s.listening && s.worker?.isConnected()) s.worker.send({ t: 'lease', okUntil } satisfies ToWorker);
      },
      this.logger);
    this.lease.start();
    this.membership.start();
    this.startAdmin();
  }

  /** The NATS micro service operators inspect with `nats micro` and `nats req` (docs/operations.md). */
  private startAdmin(): void {
    const c = this.config;
    const subjects = new Subjects(c.cluster.name);
    this.micro = startMicroService(this.nc!, {
      name: 'sandbar',
      version: VERSION,
      description: 'Sandbar chat and presence host',
      metadata: { hostId: c.hostId, cluster: c.cluster.name },
      endpoints: [...apiEndpoints(subjects, this.api), ...adminEndpoints({
        nc: this.nc!,
        subjects,
        config: c,
        ownership: this.ownership!,
        status: () => this.status(),
        sessions: () => ({
          host: c.hostId,
          workers: this.slots.map((s) => ({ index: s.index, sessions: s.stats?.sessions ?? 0 })),
          hosts: (this.membership?.members() ?? []).map((p) => ({ hostId: p.hostId, sessions: p.load })),
        }),
        setLogLevel: (level) => {
          this.logger.level = level;
          for (const s of this.slots) if (s.worker?.isConnected()) s.worker.send({ t: 'loglevel', level } satisfies ToWorker);
          this.logger.info({ level }, 'log level changed by an operator');
        },
      })],
      // The operator who asked gets the error; nothing is lost.
      onError: (err, endpoint) => this.logger.warn({ err, endpoint }, 'admin endpoint failed'),
    });
  }

  status(): unknown {
    const c = this.config;
    return {
      cluster: c.cluster.name,
      host: c.hostId,
      version: VERSION,
      shards: c.shards,
      replicas: c.replication.replicas,
      hosts: this.membership?.members() ?? [],
      workers: this.slots.map((s) => ({
        index: s.index,
        pid: s.worker?.process.pid ?? null,
        listening: s.listening,
        serving: s.serving,
        sessions: s.stats?.sessions ?? 0,
        masterShards: s.stats?.masterShards ?? 0,
        replicaShards: s.stats?.replicaShards ?? 0,
        heapUsed: s.stats?.heapUsed ?? 0,
        rss: s.stats?.rss ?? 0,
      })),
      sessions: this.slots.reduce((a, s) => a + (s.stats?.sessions ?? 0), 0),
      restarts: this.policy.total,
    };
  }

  private pingAll(): void {
    const now = performance.now();
    // A timer that fires late means the primary itself was stalled (a burst
    // of accepts to hand out, a starved CPU): the workers' pongs waited in its
    // queue too, so that stall is not counted as their silence.
    const late = this.lastPingAt === 0 ? 0 : Math.max(0, now - this.lastPingAt - this.config.cluster.workerPingMs);
    this.lastPingAt = now;
    const n = ++this.pingSeq;
    const ping = this.pingMsg(n);
    const suspects: Slot[] = [];
    for (const slot of this.slots) {
      const w = slot.worker;
      if (!w || w.isDead()) continue;
      if (late > 0) slot.lastPong = Math.min(now, slot.lastPong + late);
      if (now - slot.lastPong > this.config.cluster.workerHangMs) suspects.push(slot);
      else if (w.isConnected()) w.send(ping);
    }
    // Decide after this turn's I/O: pongs already in the IPC pipe are read
    // first, so a worker whose answer was queued behind the primary's own
    // work is not killed for it.
    if (suspects.length > 0) setImmediate(() => this.killSilent(suspects, n));
  }

  private pingMsg(n: number): ToWorker {
    return { t: 'ping', n, restarts: this.policy.total, suspect: (this.membership?.members() ?? []).filter((m) => m.suspect).map((m) => m.hostId) };
  }

  private killSilent(suspects: readonly Slot[], n: number): void {
    const now = performance.now();
    for (const slot of suspects) {
      const w = slot.worker;
      if (!w || w.isDead()) continue;
      const silent = now - slot.lastPong;
      const hangMs = this.config.cluster.workerHangMs;
      const state = !slot.answered ? 'starting' : slot.restoring ? 'restoring shards' : null;
      if (state && silent > hangMs && silent <= hangMs * RESTORE_HANG_FACTOR) {
        if (!slot.lateLogged) {
          slot.lateLogged = true;
          this.logger.warn({ workerIndex: slot.index, pid: w.process.pid, silentMs: Math.round(silent), waitUpToMs: hangMs * RESTORE_HANG_FACTOR }, `worker is ${state} and late answering pings; not killed yet`);
        }
        if (w.isConnected()) w.send(this.pingMsg(n));
      } else if (silent > hangMs) {
        slot.killedAsHung = true;
        this.logger.error({ workerIndex: slot.index, pid: w.process.pid, silentMs: Math.round(silent), restoring: slot.restoring, starting: !slot.answered },
          `worker stopped answering pings${state ? ` while ${state}` : ''}; killing it (SIGKILL)`);
        w.process.kill('SIGKILL');
      } else if (w.isConnected()) {
        w.send(this.pingMsg(n));
      }
    }
  }

  private onExit(w: Worker, code: number | null, signal: string | null): void {
    const slot = this.slotOf(w);
    if (!slot) return;
    const stats = slot.stats;
    const cause = classifyExit({
      code, signal, killedAsHung: slot.killedAsHung, restoring: slot.restoring, answered: slot.answered, started: slot.listening,
      heapShare: stats && stats.heapLimit > 0 ? stats.heapUsed / stats.heapLimit : 0,
    }, { workerHangMs: this.config.cluster.workerHangMs, workerHeapMb: this.heapMb, budgetMb: this.config.storage.budgetMb });
    slot.worker = null;
    slot.listening = false;
    slot.serving = false;
    slot.stats = null;
    slot.restoring = false;
    this.gatherer.onWorkerGone(slot.index);
    if (this.stopping) return;
    // The cluster (and our own workers) see the worker gone from the view: its
    // sessions leave every user and room, its shards are promoted.
    this.membership?.publish();
    const inARow = this.streaks.record(slot.index, cause);
    if (inARow === SAME_EXIT_IN_A_ROW) {
      // One line for a loop, not one per turn of it: what it is and what to do.
      this.logger.error({ workerIndex: slot.index, exitKind: cause.kind, inARow }, `worker ${slot.index} died the same way ${inARow} times in a row: ${cause.why}. What to do: ${cause.todo}`);
    }
    const delay = this.policy.onCrash(Date.now());
    if (delay === null) {
      const c = this.config.cluster;
      this.logger.fatal({ workerIndex: slot.index, exitCode: code, signal, exitKind: cause.kind, code: ErrorCodes.SANDBAR_ERR_SUPERVISOR_INTENSITY.code },
        `worker ${slot.index} died (code ${code}, signal ${signal}) and workers were already restarted ${c.maxRestarts} times within ${c.restartWindowMs} ms (cluster.maxRestarts): giving up, host exits; ${this.streaks.givingUp(cause)}`);
      void this.stop(EXIT.gaveUp, 'restart intensity exceeded');
      return;
    }
    // A worker that exits 0 was stopped on purpose (SIGTERM to recycle it); any other exit dropped its sessions and is a fault to look into.
    const detail = { workerIndex: slot.index, exitCode: code, signal, exitKind: cause.kind, restartInMs: delay, restartsInWindow: this.policy.inWindow };
    if (code === 0) this.logger.info(detail, 'worker exited; restarting');
    else this.logger.error(detail, 'worker died; restarting');
    setTimeout(() => { if (!this.stopping) this.fork(slot.index); }, delay);
  }

  /** Graceful stop: workers close their sessions (1012), then NATS, then exit. */
  stop(exitCode: number, why: string): Promise<never> {
    return (this.stopping ??= this.doStop(exitCode, why));
  }

  private async doStop(exitCode: number, why: string): Promise<never> {
    const budget = this.config.cluster.shutdownTimeoutMs;
    this.logger.info({ why, budgetMs: budget }, 'host stopping');
    void notifyStopping(`stopping: ${why}`);
    if (this.pinger) clearInterval(this.pinger);
    const live = this.slots.map((s) => s.worker).filter((w): w is Worker => !!w && !w.isDead());
    const exited = Promise.all(live.map((w) => new Promise<void>((r) => { if (w.isDead()) r(); else w.once('exit', () => r()); })));
    // Leave first: the other hosts take our shards (their replicas are
    // promoted, or our workers hand the shards over) before our sessions close.
    this.membership?.leave();
    await this.micro?.stop();
    const rest = this.view.filter((h) => h.hostId !== this.config.hostId);
    for (const w of live) if (w.isConnected()) w.send({ t: 'shutdown', view: rest } satisfies ToWorker);
    const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), budget).unref());
    if ((await Promise.race([exited, timer])) === 'timeout') {
      this.logger.error({ budgetMs: budget }, 'workers did not stop within cluster.shutdownTimeoutMs; killing them');
      for (const w of live) if (!w.isDead()) w.process.kill('SIGKILL');
      await exited;
    }
    await this.nc?.drain().catch(() => {});
    await this.embedded?.stop();
    this.logger.info({ exitCode }, 'host stopped');
    // Let pino flush its last line before exiting.
    await new Promise((r) => setImmediate(r));
    process.exit(exitCode);
  }

  get listeningPort(): number { return this.port; }
}

/** Files the configuration names must be readable before anything starts (exit 78 otherwise, naming the key). */
function checkFiles(config: SandbarConfig): void {
  const files: [string, string | undefined][] = [
    ['http.tlsCertFile', config.http.tlsCertFile], ['http.tlsKeyFile', config.http.tlsKeyFile],
    ['nats.credsFile', config.nats.credsFile], ['nats.tlsCaFile', config.nats.tlsCaFile],
    ['nats.tlsCertFile', config.nats.tlsCertFile], ['nats.tlsKeyFile', config.nats.tlsKeyFile],
  ];
  for (const [key, file] of files) {
    if (file === undefined) continue;
    try {
      accessSync(file, constants.R_OK);
    } catch (err) {
      throw Errors.CONFIG_INVALID(`config: ${key} = ${JSON.stringify(file)}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  }
}
