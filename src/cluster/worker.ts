/**
 * A worker process: fastify (HTTP + WebSocket), the session actors of the
 * connections it accepted, its own NATS connection. It takes its frozen
 * configuration from the primary, answers the primary's pings with its stats,
 * and on shutdown closes every session with 1012 before exiting.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { randomBytes } from 'node:crypto';
import type { SandbarConfig } from '../config/types.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { connectBus, natsAuthOptions, natsReconnects, type NatsConnection } from '../bus/connection.js';
import { systemClock, TimerWheel, type StopReason } from '../actors/index.js';
import { SessionActor, SessionSocket, type SessionHost, type SessionTransport } from '../actors/session.js';
import { rate } from '../actors/rate-limit.js';
import { ChannelRegistry } from '../protocol/channel-registry.js';
import { echoChannel } from '../protocol/echo-channel.js';
import { createListeners } from '../http/listeners.js';
import type { FastifyInstance } from 'fastify';
import type { Family } from '../observability/exposition.js';
import { Subjects } from '../bus/subjects.js';
import { WorkerBus } from '../bus/worker-bus.js';
import type { CtlMsg, Cmd, HistoryQuery, Meta } from '../bus/messages.js';
import type { ReplyTarget, WorkerQuery } from '../bus/worker-bus.js';
import type { JoinedChannel } from '../protocol/channel-registry.js';
import { Errors, type SandbarError } from '../errors.js';
import { ShardHost } from '../actors/shard-host.js';
import { historyOf } from '../api/history.js';
import { WorkerIntegration } from '../api/worker-side.js';
import { shardOf, type HostView } from '../placement/index.js';
import { Ownership } from '../placement/ownership.js';
import { ShardPersistence } from '../persistence/index.js';
import { LocalRooms, type ChatServices } from '../protocol/chat-services.js';
import { WorkerAuth } from '../auth/worker-auth.js';
import { sessionIdentity, type Identity } from '../auth/verifier.js';
import { sessionChannel } from '../protocol/session-channel.js';
import { HIDDEN } from '../auth/room-authorizer.js';
import { WorkerStorage, attachStorage } from '../storage/index.js';
import { userChannel } from '../protocol/user-channel.js';
import { roomChannel } from '../protocol/room-channel.js';
import { LongPollRegistry } from '../http/longpoll.js';
import { longPollBus } from '../http/longpoll-route.js';
import { ClusterEvents } from '../web/cluster-events.js';
import { clusterChannel } from '../web/cluster-channel.js';
import { metrics, statFamilies } from '../observability/metrics.js';
import { runtimeFamilies, startRuntimeMetrics } from '../observability/runtime-metrics.js';
import { authFamilies } from '../observability/auth-metrics.js';
import type { ScrapeResult } from '../observability/gather.js';
import { WORKER_ENV, type ToPrimary, type ToWorker, type WorkerStats } from './ipc.js';
import { goneWorkers, joinsToResync } from './view-changes.js';

export class WorkerHost implements SessionHost {
  readonly wheel: TimerWheel;
  /** Tens of ms: request resends and deadlines, presence batching. */
  readonly fastWheel: TimerWheel;
  readonly channels = new ChannelRegistry();
  readonly sessions = new Map<string, SessionActor>();
  readonly counters = { framesIn: 0, framesOut: 0, bytesOut: 0 };
  readonly limits: SessionHost['limits'];
  crashes = 0;
  shuttingDown = false;
  nc: NatsConnection | null = null;
  private nextSession = 0;

  /** The storage budget, the per-sender budgets and their counters (docs/storage.md). */
  readonly storage: WorkerStorage;
  /** V8's heap limit of this process (cluster.workerHeapMb, set by the primary). */
  readonly heapLimit = getHeapStatistics().heap_size_limit;

  constructor(readonly config: SandbarConfig, readonly index: number, readonly logger: Logger) {
    this.storage = WorkerStorage.create(config, this.heapLimit, logger);
    const b = this.storage.budget.limits;
    logger.info({ heapLimitMb: Math.round(this.heapLimit / 1048576), budgetMb: Math.round(b.budget / 1048576), warnMb: Math.round(b.warnAt / 1048576) }, 'storage budget');
    const s = config.session;
    this.limits = {
      idleTimeoutMs: s.idleTimeoutMs, maxBufferedBytes: s.maxBufferedBytes, maxChannels: s.maxChannels,
      rate: s.ratePerSecond > 0 ? rate(s.ratePerSecond, s.rateBurst) : null, rateMaxRefused: s.rateMaxRefused,
      expiryWarningMs: config.auth.expiryWarningMs,
    };
    this.auth = new WorkerAuth(config, logger);
    // A session keeps only the claim its room policies read (auth/verifier.ts, sessionIdentity).
    const roomsClaim = config.authz.roomsClaim;
    this.verifyToken = (t) => this.auth.verifier.verify(t).then((id) => sessionIdentity(id, roomsClaim));
    // Idle deadlines need no better than a tenth of the timeout; 1 s at most keeps the sweep cheap.
    this.wheel = new TimerWheel(systemClock, Math.max(20, Math.min(1000, Math.floor(s.idleTimeoutMs / 10))));
    this.wheel.onError = (err) => logger.error({ err }, 'timer entry failed');
    this.fastWheel = new TimerWheel(systemClock, 25);
    this.fastWheel.onError = this.wheel.onError;
    this.channels.register('echo', echoChannel({ faultInjection: config.debug.faultInjection }));
    this.channels.register('sandbar', sessionChannel());
    this.clusterEvents = new ClusterEvents(`${config.hostId}.${index}`, (kind, ms) => metrics.takeover(kind, ms));
  }

  /** Tokens, revocation and room authorization of this worker (auth/worker-auth.ts). */
  readonly auth: WorkerAuth;
  readonly verifyToken: (token: unknown) => Promise<Identity>;

  bus: WorkerBus | null = null;
  shardHost: ShardHost | null = null;
  rooms: LocalRooms | null = null;
  view: HostView[] = [];
  /** Shard map and recent failovers/handoffs for the cluster page; the takeover histogram for the shards this worker claims. */
  readonly clusterEvents: ClusterEvents;
  longpoll: LongPollRegistry | null = null;
  /** Roles of the first view taken up: ready to serve. */
  serving = false;
  /** Events out, webhooks, the server API and user control (src/api/worker-side.ts). */
  readonly apps = new WorkerIntegration(this);

  /** Subscribes this worker's subjects, starts its shard host and the user/room channels. */
  async startChat(nc: NatsConnection): Promise<void> {
    const c = this.config;
    const bus = new WorkerBus(nc, new Subjects(c.cluster.name), c.hostId, this.index, {
      onCmd: (cmd: Cmd) => this.shardHost!.onCmd(cmd),
      onInfo: (q) => (q.op === 'u.info' || q.op === 'r.info' ? this.shardHost!.info(q) : historyOf(q as HistoryQuery, this.shardHost!.users, this.shardHost!.rooms)),
      onQuery: (q) => this.onQuery(q),
      onHolds: (q) => this.shardHost?.holds(q.n) ?? { holds: false },
      onDeliver: (sids, frame) => this.deliver(sids, frame),
      onCtl: (msg) => this.onCtl(msg),
      onRepl: (msg) => this.shardHost!.onRepl(msg),
      onShardMsg: (msg) => this.shardHost!.onShardMsg(msg),
    }, this.fastWheel, this.logger, { timeoutMs: c.request.timeoutMs, resendMs: Math.min(500, Math.max(50, c.request.timeoutMs >> 2)) });
    this.bus = bus;
    // Before any actor or channel exists: they find it through the bus.
    attachStorage(bus, this.storage);
    const ownership = await Ownership.open(nc, c.cluster.name, this.logger);
    this.shardHost = new ShardHost(bus, c, this.wheel, this.fastWheel, this.logger, ownership);
    this.shardHost.events = this.apps.startEvents(nc);
    if (this.leaseUntil > 0) this.shardHost.leaseUntil = this.leaseUntil;
    if (c.persistence.mode !== 'none') {
      const sh = this.shardHost;
      const p = sh.persistence = await ShardPersistence.open(nc, c, new Subjects(c.cluster.name), this.index, this.logger, (n) => sh.onLogged(n));
      p.onRestoring = (shards) => send({ t: 'restoring', shards });
      this.storage.budget.logFull = () => p.log?.full ?? false;
      p.start(sh);
    }
    await ownership.watch((n, rec) => { this.shardHost!.onOwnership(n, rec); this.clusterEvents.onOwnership(n, rec); bus.resendShard(n); });
    this.rooms = new LocalRooms(bus);
    const svc: ChatServices = { bus, config: c, logger: this.logger, shardOf: (id) => shardOf(id, c.shards), authorizer: this.auth.rooms, rooms: this.rooms };
    this.auth.listen(nc, new Subjects(c.cluster.name), (user, reason) => this.revokeSessions(user, reason));
    this.channels.register('user', userChannel(svc));
    this.channels.register('room', roomChannel(svc));
    this.channels.register('cluster', clusterChannel({
      nc, subjects: new Subjects(c.cluster.name), adminToken: c.admin.token, shards: c.shards, replicas: c.replication.replicas,
      self: bus.addr, events: this.clusterEvents, view: () => this.view, suspects: () => this.hostInfo.suspect,
    }));
    const lpBus = longPollBus(nc, new Subjects(c.cluster.name), c.hostId, this.index, this.logger);
    // A held poll must not outlast the idle deadline that polls keep pushing back.
    const windowMs = Math.min(c.longpoll.windowMs, c.session.idleTimeoutMs >> 1);
    this.longpoll = new LongPollRegistry({
      hostId: c.hostId, worker: this.index, windowMs,
      verifyToken: this.verifyToken, onRefused: (code, reason) => this.auth.refusals.note(code, reason, undefined, 'longpoll'),
      maxFrameBytes: c.session.maxFrameBytes, wheel: this.fastWheel, logger: this.logger,
      maxForwardBytes: Math.floor(((nc.info?.max_payload ?? 1048576) - 1024) / 2),
      startSession: (t, identity) => this.startSession(t, identity), forward: lpBus.forward(windowMs),
    });
    lpBus.serve(this.longpoll);
    await bus.start();
    await this.apps.start(nc, bus);
  }

  private leaseUntil = 0;
  /** When the last lease message came (for the fencing log line). */
  private leaseAt = 0;
  private leaseCheck: NodeJS.Timeout | null = null;

  /**
   * The primary says until when the host may act as master (cluster/lease.ts).
   * Checked here every 50 ms against the clock, so a primary that stops
   * renewing (stuck, or its messages late) fences the worker too.
   */
  setLease(okUntil: number): void {
    this.leaseUntil = okUntil;
    this.leaseAt = Date.now();
    if (this.shardHost) this.shardHost.leaseUntil = okUntil;
    if (Date.now() < okUntil) this.shardHost?.setFence('lease', false);
    else this.fence('lease'); // the primary itself says it is lost
    if (!this.leaseCheck) {
      // Outputs are checked against leaseUntil when they would go out (ShardHost).
      // Fencing (stop serving, drop what is held) waits one more turn of the
      // event loop: a worker whose loop lagged may have a newer lease queued
      // behind this timer, and fencing it for nothing costs every client a resend.
      this.leaseCheck = setInterval(() => {
        if (Date.now() < this.leaseUntil) return;
        setImmediate(() => {
          if (Date.now() < this.leaseUntil || this.shardHost?.isFenced) return;
          this.logger.warn({ leaseUntil: new Date(this.leaseUntil).toISOString(), lastLeaseMessageMsAgo: Date.now() - this.leaseAt }, 'lease expired in this worker');
          this.fence('lease');
        });
      }, 50);
      this.leaseCheck.unref();
    }
  }

  /** Stops serving as master on our own (self-fencing), counted once per fencing. */
  fence(reason: 'lease' | 'nats'): void {
    if (this.shardHost && !this.shardHost.isFenced) metrics.fences.inc(reason);
    this.shardHost?.setFence(reason, true);
  }

  /** The primary's live view of the cluster: recompute which shards this worker masters and replicates. */
  applyView(view: HostView[]): void {
    const first = this.view.length === 0;
    // Workers that were in the view and are not any more are dead (a host or
    // a worker): their sessions leave every user and room here.
    for (const a of goneWorkers(this.view, view)) this.shardHost?.purge(a);
    this.view = view;
    this.shardHost?.applyView(view);
    this.clusterEvents.onView(view);
    if (first && this.shardHost) {
      // Report serving once every role of the first view is taken up.
      const sh = this.shardHost;
      const poll = setInterval(() => {
        if (sh.pendingRoles() > 0) return;
        clearInterval(poll);
        this.serving = true;
        const r = sh.roles();
        this.logger.info({ master: r.master.length, replica: r.replica.length }, 'worker serves its shards');
        send({ t: 'serving', master: r.master.length, replica: r.replica.length });
      }, 25);
      poll.unref();
    }
    if (first && this.bus) {
      // Shards this worker takes over without state (replicas off, or none
      // alive): the sessions of the other workers re-announce their joins, so
      // presence is rebuilt.
      this.bus.publishCtl({ t: 'resync', w: this.bus.addr });
      this.logger.info({ hosts: view.map((h) => h.hostId) }, 'worker has the cluster view');
    }
  }

  /** Operator requests addressed to this worker. */
  private onQuery(q: WorkerQuery): unknown {
    if (q.t === 'kick') {
      const s = this.sessions.get(q.sid);
      if (!s) return { error: { code: Errors.NOT_FOUND.code, message: `no session ${q.sid} on ${this.config.hostId}.${this.index}` } };
      s.kick();
      return { kicked: q.sid, user: s.userId };
    }
    if (q.t === 'stats') {
      const st = this.stats(this.loopDelayMs);
      return {
        sessions: st.sessions, longpoll: st.longpollSessions, framesIn: st.framesIn, framesOut: st.framesOut, masterShards: st.masterShards, replicaShards: st.replicaShards, heapUsed: st.heapUsed, rss: st.rss, restoring: st.restoring,
        dms: metrics.requests('dm'), loopDelayMs: st.loopDelayMs, nats: { connected: st.natsConnected, server: this.nc?.getServer() ?? null, reconnects: st.natsReconnects }, fenced: st.fenced, hostRestarts: this.hostInfo.restarts,
        auth: this.auth.stats(), ...this.storage.stats(),
      };
    }
    this.logger.level = q.level;
    return { level: q.level };
  }

  private deliver(sids: string[], frame: string): void {
    const buf = sids.length > 1 ? Buffer.from(frame) : frame;
    for (const sid of sids) this.sessions.get(sid)?.write(buf, true);
  }

  private onCtl(msg: CtlMsg): void {
    if (msg.t === 'resync' && msg.w !== this.bus?.addr) this.resync(msg.w);
  }

  /** Re-sends the joins of local sessions whose user or room the (re)started worker masters. */
  private resync(w: string): void {
    const bus = this.bus!;
    let n = 0;
    for (const s of this.sessions.values()) {
      for (const { ch, kind, shard } of joinsToResync(s.joinedChannels(), w, this.view, this.config.shards)) {
        const meta = ch.state as Meta;
        const cmd: Cmd = kind === 'u'
          ? { op: 'u.join', id: ch.id, sid: s.id, w: bus.addr, meta, last: null, cid: 0, rw: '' }
          : { op: 'r.join', id: ch.id, sid: s.id, w: bus.addr, uid: s.userId, meta, last: null, state: true, cid: 0, rw: '', ...((ch.grant & HIDDEN) !== 0 ? { hidden: true as const } : {}) };
        bus.request(shard, cmd, new ResyncReply(s, ch));
        n++;
      }
    }
    if (n) this.logger.info({ worker: w, joins: n }, 're-announced joins to a restarted worker');
  }

  /** Distinguishes this run of the worker from earlier ones at the same address. */
  private readonly incarnation = randomBytes(3).toString('hex');

  /** Session ids are unique in the cluster and across restarts: host, worker, incarnation, counter (base 36). */
  startSession(socket: SessionTransport, identity: Identity): boolean {
    if (this.shuttingDown) {
      socket.close(1012, 'server restarting');
      return false;
    }
    const id = `${this.config.hostId}.${this.index}.${this.incarnation}.${(this.nextSession++).toString(36)}`;
    const session = new SessionActor(this, id, identity, socket);
    this.sessions.set(id, session);
    this.apps.sessionStarted(session, socket instanceof SessionSocket ? 'websocket' : 'longpoll');
    return true;
  }

  /** A revocation: every local session of the user is closed with 4403; returns how many. */
  revokeSessions(user: string, reason: string): number {
    let n = 0;
    for (const s of [...this.sessions.values()]) if (s.userId === user) { s.revoke(reason); n++; }
    return n;
  }

  onActorExit(actor: any, reason: StopReason): void {
    if (actor instanceof SessionActor) {
      this.sessions.delete(actor.id);
      metrics.sessionCloses.inc(reason.kind === 'other' ? reason.code : reason.kind === 'normal' ? 'client' : reason.kind);
      this.apps.sessionEnded(actor, reason);
    }
    if (reason.kind === 'crash') {
      this.crashes++;
      this.logger.error({ err: reason.error, session: actor.id, user: actor.userId }, 'session crashed; only this session is closed');
    } else if (reason.kind === 'other') {
      this.logger.info({ session: actor.id, user: actor.userId, code: reason.code }, reason.message);
    }
  }

  closeAllSessions(): void {
    this.shuttingDown = true;
    for (const s of [...this.sessions.values()]) s.shutdown();
  }

  stats(loopDelayMs: number): WorkerStats {
    const mem = process.memoryUsage();
    const roles = this.shardHost?.roles();
    return {
      sessions: this.sessions.size,
      heapUsed: mem.heapUsed,
      rss: mem.rss,
      framesIn: this.counters.framesIn,
      framesOut: this.counters.framesOut,
      bytesOut: this.counters.bytesOut,
      crashes: this.crashes,
      natsConnected: this.nc !== null && !this.nc.isClosed(),
      loopDelayMs,
      masterShards: roles?.master.length ?? 0,
      replicaShards: roles?.replica.length ?? 0,
      promotions: this.shardHost?.promotions ?? 0,
      handoffs: this.shardHost?.handoffs ?? 0,
      pendingRequests: this.bus?.pendingCount ?? 0,
      roomDeliveries: this.rooms?.deliveries ?? 0,
      natsReconnects,
      longpollSessions: this.longpoll?.size ?? 0,
      fenced: this.shardHost?.isFenced ?? false,
      shardsWithoutMaster: this.clusterEvents.shardsWithoutMaster(this.config.shards, this.view),
      ...this.apps.stats(),
      restoring: this.shardHost?.persistence?.restoring ?? 0,
      heapLimit: this.heapLimit,
      ...this.storage.stats(),
    };
  }

  /** Mean event-loop delay over the last ping interval (ms), as the last pong reported it. */
  loopDelayMs = 0;
  /** What the primary's last ping said of the host: worker restarts, hosts it finds suspect. */
  hostInfo: { restarts: number; suspect: readonly string[] } = { restarts: 0, suspect: [] };
}

/**
 * A re-announced join came back from the restarted master: the client gets a
 * fresh presence_state, which drops the ghosts of the dead worker's sessions
 * (the phoenix Presence class diffs a new state against the old one).
 */
class ResyncReply implements ReplyTarget {
  constructor(readonly session: SessionActor, readonly ch: JoinedChannel) {}
  onReply(ok: boolean, res: unknown, _err: SandbarError | null): void {
    if (!ok) return;
    this.session.post({ run: (s) => {
      if (s.channel(this.ch.topic) === this.ch) s.push(this.ch, 'presence_state', (res as { presence: unknown }).presence);
    } });
  }
}

/** This worker's metric families for a scrape: its stats, its counters and histograms, Node's. */
async function scrapeFamilies(host: WorkerHost): Promise<Family[]> {
  return [...statFamilies(host.stats(host.loopDelayMs)), ...metrics.families(), ...authFamilies(host.auth.stats()), ...await runtimeFamilies()];
}

/** The event-loop monitor's timer interval (ms). */
const LOOP_RESOLUTION_MS = 20;

function send(msg: ToPrimary): void {
  process.send?.(msg);
}

export async function runWorker(): Promise<void> {
  const config = JSON.parse(process.env[WORKER_ENV.config] ?? 'null') as SandbarConfig;
  const index = Number(process.env[WORKER_ENV.index]);
  const logger = createLogger({ level: config.log.level, hostId: config.hostId, worker: index, syslogPrefix: config.log.syslogPrefix });
  const host = new WorkerHost(config, index, logger);

  process.on('uncaughtException', (err) => {
    // A fault that escaped every actor guard: this worker is no longer
    // trustworthy. Log, exit, and let the supervisor restart it.
    logger.fatal({ err }, 'uncaught exception escaped the actor guards; worker exits');
    process.exit(70);
  });

  metrics.histograms = config.metrics.histograms;
  startRuntimeMetrics();
  // Answer pings from the first moment so a slow start is not taken for a hang.
  const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  loop.enable();
  const pendingMetrics = new Map<number, (r: ScrapeResult) => void>();
  let nextMetrics = 0;
  let stopping: Promise<void> | null = null;
  const stop = (handoffView: HostView[] = []) => (stopping ??= gracefulStop(handoffView));
  process.on('message', (msg: ToWorker) => {
    if (msg.t === 'ping') {
      // The histogram records the time between its timer's runs: the resolution itself is not delay.
      const delay = loop.count > 0 ? Math.max(0, loop.mean / 1e6 - LOOP_RESOLUTION_MS) : 0;
      loop.reset();
      host.loopDelayMs = Math.round(delay * 100) / 100;
      host.hostInfo = { restarts: msg.restarts, suspect: msg.suspect };
      send({ t: 'pong', n: msg.n, stats: host.stats(host.loopDelayMs) });
    } else if (msg.t === 'metrics') {
      pendingMetrics.get(msg.id)?.({ status: msg.status, text: msg.text });
      pendingMetrics.delete(msg.id);
    } else if (msg.t === 'scrape') {
      void scrapeFamilies(host).then((families) => send({ t: 'scraped', id: msg.id, families }), (err) => logger.warn({ err }, 'cannot collect this worker\'s metrics (the scrape answers 503)'));
    } else if (msg.t === 'loglevel') {
      logger.level = msg.level;
    } else if (msg.t === 'lease') {
      host.setLease(msg.okUntil);
    } else if (msg.t === 'view') {
      host.applyView(msg.hosts);
    } else if (msg.t === 'shutdown') {
      void stop(msg.view);
    } else if (msg.t === 'api') {
      host.apps.onIpc(msg, send);
    }
  });
  // A terminal's Ctrl-C (or a group-wide SIGTERM) reaches the workers too;
  // the primary leads the stop and sends the cluster view for the handoff,
  // so wait a moment for it before stopping on our own.
  const onSignal = () => { setTimeout(() => void stop(), 1000).unref(); };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  let apps: readonly FastifyInstance[] = [];
  try {
    let fenceTimer: NodeJS.Timeout | null = null;
    host.nc = await connectBus({
      servers: config.nats.servers, auth: natsAuthOptions(config.nats), name: `sandbar ${config.hostId} w${index}`, timeoutMs: config.nats.connectTimeoutMs, logger,
      onStatus: (st) => {
        if (st === 'disconnect' && !fenceTimer) {
          fenceTimer = setTimeout(() => host.fence('nats'), config.cluster.selfFenceMs);
          fenceTimer.unref();
        } else if (st === 'reconnect' && fenceTimer) {
          clearTimeout(fenceTimer);
          fenceTimer = null;
          host.shardHost?.setFence('nats', false);
        }
      },
    });
    // The HTTP side and the shard side start side by side: a restarted worker is back sooner.
    const chat = host.startChat(host.nc);
    const listeners = await createListeners(config, logger, {
      verifyToken: host.verifyToken,
      onRefused: (code, reason, ip, transport) => host.auth.refusals.note(code, reason, ip, transport),
      onSocket: (socket, identity) => { host.startSession(socket as unknown as SessionTransport, identity); },
      closeAllSessions: () => host.closeAllSessions(),
      ready: () => {
        if (host.shuttingDown) return { ok: false, reason: 'shutting down' };
        if (!host.nc || host.nc.isClosed()) return { ok: false, reason: 'NATS not connected' };
        if (!host.serving) return { ok: false, reason: 'shards not yet served' };
        return { ok: true };
      },
      longpoll: () => host.longpoll,
      scrape: () => new Promise<ScrapeResult>((resolve) => {
        const id = nextMetrics++;
        pendingMetrics.set(id, resolve);
        send({ t: 'metrics?', id });
        setTimeout(() => { if (pendingMetrics.delete(id)) resolve({ status: 503, text: '# metrics unavailable: the primary did not answer within 3000 ms\n' }); }, 3000).unref();
      }),
    });
    apps = listeners.apps;
    await chat;
    const { port, adminPort } = await listeners.listen();
    await host.apps.listen();
    logger.info({ port, adminPort }, 'worker listening');
    send({ t: 'listening', port, adminPort });
  } catch (err) {
    // Start-up failed (NATS, a taken port): exit non-zero; the supervisor's
    // restart intensity decides whether to try again or give up.
    logger.fatal({ err }, 'worker failed to start');
    process.exit(1);
  }

  async function gracefulStop(handoffView: HostView[]): Promise<void> {
    const deadline = Date.now() + Math.max(100, config.cluster.shutdownTimeoutMs - 500);
    host.shuttingDown = true;
    if (host.shardHost) host.shardHost.stopping = true;
    // Planned handoff first: the next owners take our shards before our sessions go.
    if (host.shardHost && handoffView.length > 0) {
      const t0 = Date.now();
      await host.shardHost.handOffAll(handoffView, Math.min(3000, Math.max(0, deadline - Date.now()) / 2));
      logger.info({ ms: Date.now() - t0 }, 'shards handed off');
    }
    // What nobody took (a single host, the last one, every host stopping at once): snapshot to JetStream.
    await host.shardHost?.persistAll(Math.max(0, deadline - Date.now()) / 2);
    logger.info({ sessions: host.sessions.size }, 'worker stopping: closing sessions with 1012');
    const closing = Promise.all(apps.map((a) => a.close())).catch((err) => logger.warn({ err }, 'http close failed'));
    host.closeAllSessions();
    // Sockets finish their closing handshake; wait for them, within the budget.
    await Promise.race([closing, new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())))]);
    await host.apps.stop();
    await host.nc?.drain().catch(() => {});
    host.bus?.stop();
    host.wheel.stop();
    host.fastWheel.stop();
    host.auth.stop();
    logger.info('worker stopped');
    process.exit(0);
  }
}
