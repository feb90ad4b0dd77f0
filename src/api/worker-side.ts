/**
 * What a worker runs for applications: the events publisher (events.enabled),
 * the webhook dispatcher (worker 0 of each host, with webhooks.urls), the
 * user control subject (disconnect, unsubscribe), the server API service and
 * its HTTP listener (api.port), and the server API requests the primary hands
 * over from NATS. Kept out of worker.ts, which calls in at a few points.
 */
import type { FastifyInstance } from 'fastify';
import type { NatsConnection } from '@nats-io/transport-node';
import type { SessionActor } from '../actors/session.js';
import type { StopReason } from '../actors/actor.js';
import type { WorkerBus } from '../bus/worker-bus.js';
import { Subjects } from '../bus/subjects.js';
import { UserControl, type UserCtlHandler, type UserCtlMsg } from '../bus/user-control.js';
import type { SandbarConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import { EventPublisher } from '../events/publisher.js';
import { WebhookDispatcher } from '../events/webhooks.js';
import { sessionEvent } from '../events/schema.js';
import { ApiService } from './service.js';
import { createApiServer, type ApiHttpCounters } from './http.js';
import type { ApiToPrimary, ApiToWorker } from './nats-endpoints.js';
import { Errors, SandbarError, httpError } from '../errors.js';
import type { WorkerStats } from '../cluster/ipc.js';

export interface WorkerSide {
  readonly config: SandbarConfig;
  readonly logger: Logger;
  readonly index: number;
  readonly sessions: ReadonlyMap<string, SessionActor>;
}

export class WorkerIntegration implements UserCtlHandler {
  events: EventPublisher | null = null;
  private webhooks: WebhookDispatcher | null = null;
  private userControl: UserControl | null = null;
  private service: ApiService | null = null;
  private http: FastifyInstance | null = null;
  private httpCounters: ApiHttpCounters | null = null;

  constructor(private readonly w: WorkerSide) {}

  /** Before the shard host serves anything: the events publisher it emits to (null when events are off). */
  startEvents(nc: NatsConnection): EventPublisher | null {
    const c = this.w.config;
    if (!c.events.enabled) return null;
    this.events = new EventPublisher(nc, new Subjects(c.cluster.name), c, c.hostId, this.w.index, this.w.logger);
    this.events.start();
    return this.events;
  }

  /** With the worker bus up: user control, the API service, webhooks (worker 0). */
  async start(nc: NatsConnection, bus: WorkerBus): Promise<void> {
    const c = this.w.config;
    const subjects = new Subjects(c.cluster.name);
    this.userControl = new UserControl(nc, subjects, this.w.logger);
    await this.userControl.start(this);
    this.service = new ApiService({ bus, nc, subjects, config: c, logger: this.w.logger, userControl: this.userControl, events: this.events });
    if (this.w.index === 0 && c.events.enabled && (c.webhooks.urls?.length ?? 0) > 0) {
      this.webhooks = new WebhookDispatcher(nc, subjects, c, this.w.logger);
      // A stream or consumer missing at start (JetStream not ready) must not stop the worker: log it.
      this.webhooks.start().catch((err: unknown) => this.w.logger.error({ err }, 'webhook dispatcher did not start'));
    }
  }

  /** The HTTP API listener, when api.port is set; returns its port. */
  async listen(): Promise<number | null> {
    const c = this.w.config;
    if (c.api.port === undefined) return null;
    const { app, counters } = await createApiServer({ config: c, logger: this.w.logger, call: (op, body) => this.call(op, body) });
    this.http = app;
    this.httpCounters = counters;
    await app.listen({ host: c.api.host, port: c.api.port });
    const addr = app.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : c.api.port;
    this.w.logger.info({ port, host: c.api.host }, 'api listening');
    return port;
  }

  private call(op: string, body: unknown): Promise<unknown> {
    if (!this.service) return Promise.reject(Errors.UNAVAILABLE('the worker is starting'));
    return this.service.call(op, body);
  }

  /** A server API request from NATS, handed over by the primary. */
  onIpc(msg: ApiToWorker, send: (m: ApiToPrimary) => void): void {
    let body: unknown;
    try {
      body = msg.body === '' ? undefined : JSON.parse(msg.body);
    } catch {
      send({ t: 'api', id: msg.id, ok: false, err: httpError(Errors.BAD_PAYLOAD('the request is not valid JSON')).body.error });
      return;
    }
    this.call(msg.op, body).then(
      (res) => send({ t: 'api', id: msg.id, ok: true, res }),
      (err: unknown) => {
        if (!(err instanceof SandbarError)) this.w.logger.error({ err, op: msg.op }, 'server API request failed');
        send({ t: 'api', id: msg.id, ok: false, err: httpError(err).body.error });
      },
    );
  }

  /**
   * Closes or unsubscribes the local sessions of a user. Scans this worker's
   * sessions: these are rare operator and backend calls, not worth an index
   * per user on every session.
   */
  onUserCtl(msg: UserCtlMsg): void {
    let n = 0;
    for (const s of this.w.sessions.values()) {
      if (s.userId !== msg.user) continue;
      n++;
      if (msg.t === 'disconnect') s.post({ run: (x) => x.disconnect(msg.code, msg.reason) });
      else s.post({ run: (x) => { x.closeChannel(`room:${msg.room}`); } });
    }
    if (n > 0) this.w.logger.info({ user: msg.user, op: msg.t, sessions: n }, 'user control: local sessions');
  }

  sessionStarted(s: SessionActor, transport: string): void {
    const ev = this.events;
    if (ev?.wants('session.connected')) ev.publish(sessionEvent('session.connected', s.userId, s.id, Date.now(), { transport }), s.userId);
  }

  sessionEnded(s: SessionActor, reason: StopReason): void {
    const ev = this.events;
    if (!ev?.wants('session.disconnected')) return;
    const why = reason.kind === 'other' ? reason.code : reason.kind === 'crash' ? Errors.SESSION_CRASHED.code : reason.kind;
    ev.publish(sessionEvent('session.disconnected', s.userId, s.id, Date.now(), { reason: why }), s.userId);
  }

  /** For the worker's stats (metrics). */
  stats(): Pick<WorkerStats, 'eventsPublished' | 'eventsDropped' | 'eventsPending' | 'webhookDeliveries' | 'webhookFailures' | 'webhookDeadLetters' | 'apiUnauthorized'> {
    return {
      eventsPublished: this.events?.counters.published ?? 0,
      eventsDropped: this.events?.counters.dropped ?? 0,
      eventsPending: this.events?.pendingCount ?? 0,
      webhookDeliveries: this.webhooks?.counters.delivered ?? 0,
      webhookFailures: this.webhooks?.counters.failed ?? 0,
      webhookDeadLetters: this.webhooks?.counters.dead ?? 0,
      apiUnauthorized: this.httpCounters?.unauthorized ?? 0,
    };
  }

  async stop(): Promise<void> {
    await this.http?.close().catch(() => undefined);
    await this.webhooks?.stop();
    this.userControl?.stop();
    this.events?.stop();
  }
}
