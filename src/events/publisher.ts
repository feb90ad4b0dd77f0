/**
 * A worker's side of the events stream: publishes each event to
 * `sandbar.<c>.events.<partition>.<type>` with `Nats-Msg-Id` = the event's
 * id, so the stream keeps one copy of a fact published twice (a promoted
 * master re-sends what its dead predecessor may not have).
 *
 * Never on the message path's critical path: `publish` encodes, publishes and
 * returns; nothing waits for JetStream. The PubAck comes back on one
 * subscription per worker (`evack.<host>.<worker>.<n>`, as the durable log
 * does), and an event whose PubAck is an error or late is published again
 * (same id: stored once). What waits for its PubAck is bounded by
 * `events.maxPending`: past it an event is dropped, counted and logged (at
 * most once a second), never held in memory without bound. An event still
 * not stored after MAX_TRIES publishes is dropped the same way.
 */
import { headers, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import type { Subjects } from '../bus/subjects.js';
import type { SandbarConfig } from '../config/types.js';
import type { EventType } from '../config/integration-rules.js';
import type { Logger } from '../observability/logger.js';
import { shardOf } from '../placement/shard.js';
import type { EventSink, SandbarEvent } from './schema.js';

/** A PubAck later than this gets its event published again. */
const RESEND_AFTER_MS = 2000;
/** Publishes of one event before it is given up (about a minute with the backoff below). */
const MAX_TRIES = 8;

interface Pending { subject: string; data: string; id: string; at: number; tries: number }

export interface EventCounters { published: number; stored: number; duplicates: number; retried: number; dropped: number }

export class EventPublisher implements EventSink {
  private readonly pending = new Map<number, Pending>();
  private next = 0;
  private readonly ackPrefix: string;
  private readonly all: boolean;
  private readonly types: ReadonlySet<string>;
  private sub: Subscription | null = null;
  private timer: NodeJS.Timeout | null = null;
  readonly counters: EventCounters = { published: 0, stored: 0, duplicates: 0, retried: 0, dropped: 0 };
  /** Drops since the last warn line (logged at most once a second). */
  private droppedSinceLog = 0;
  private lastDropLog = 0;
  private lastDropWhy = '';

  constructor(
    private readonly nc: NatsConnection,
    private readonly subjects: Subjects,
    private readonly config: SandbarConfig,
    hostId: string,
    worker: number,
    private readonly logger: Logger,
  ) {
    this.ackPrefix = subjects.eventAckPrefix(hostId, worker);
    this.all = config.events.types.includes('*');
    this.types = new Set(config.events.types);
  }

  start(): void {
    this.sub = this.nc.subscribe(`${this.ackPrefix}>`, { callback: (err, msg) => { if (!err) this.onAck(msg); } });
    this.timer = setInterval(() => this.resendLate(), 500);
    this.timer.unref();
  }

  stop(): void {
    this.sub?.unsubscribe();
    if (this.timer) clearInterval(this.timer);
  }

  get pendingCount(): number { return this.pending.size; }

  wants(type: EventType): boolean { return this.all || this.types.has(type); }

  publish(event: SandbarEvent, key: string): void {
    if (this.pending.size >= this.config.events.maxPending) {
      this.drop(1, 'events.maxPending events wait for their PubAck (JetStream slow or unavailable)');
      return;
    }
    const partition = shardOf(key, this.config.shards) % this.config.events.partitions;
    const p: Pending = { subject: this.subjects.events(partition, event.type), data: JSON.stringify(event), id: event.id, at: Date.now(), tries: 0 };
    const n = ++this.next;
    this.pending.set(n, p);
    this.counters.published++;
    this.send(n, p);
  }

  private send(n: number, p: Pending): void {
    p.tries++;
    p.at = Date.now();
    const h = headers();
    h.set('Nats-Msg-Id', p.id);
    try {
      this.nc.publish(p.subject, p.data, { headers: h, reply: `${this.ackPrefix}${n}` });
    } catch (err) {
      // Closed or draining: the resend timer tries again while the worker lives.
      this.logger.debug({ err: (err as Error).message }, 'event not published');
    }
  }

  private onAck(msg: Msg): void {
    const n = Number(msg.subject.slice(this.ackPrefix.length));
    const p = this.pending.get(n);
    if (!p) return;
    let ack: { seq?: number; duplicate?: boolean; error?: { description?: string } };
    try { ack = msg.json(); } catch { return; }
    if (ack.error || typeof ack.seq !== 'number') {
      // Not stored (stream unavailable, or full with discard new): the timer publishes it again.
      p.at = 0;
      return;
    }
    this.pending.delete(n);
    if (ack.duplicate) this.counters.duplicates++;
    else this.counters.stored++;
  }

  private resendLate(): void {
    if (this.pending.size === 0) return;
    const now = Date.now();
    let gaveUp = 0;
    for (const [n, p] of this.pending) {
      // Backs off with each try: a stream that is down is not flooded.
      if (now - p.at < RESEND_AFTER_MS * Math.min(8, 2 ** (p.tries - 1)) && p.at !== 0) continue;
      if (p.tries >= MAX_TRIES) {
        this.pending.delete(n);
        gaveUp++;
        continue;
      }
      this.counters.retried++;
      this.send(n, p);
    }
    if (gaveUp > 0) this.drop(gaveUp, `not stored after ${MAX_TRIES} publishes`);
  }

  private drop(count: number, why: string): void {
    this.counters.dropped += count;
    this.droppedSinceLog += count;
    this.lastDropWhy = why;
    const now = Date.now();
    if (now - this.lastDropLog < 1000) return;
    this.lastDropLog = now;
    this.logger.error({ dropped: this.droppedSinceLog, droppedTotal: this.counters.dropped, pending: this.pending.size, why: this.lastDropWhy }, 'events dropped: the events stream did not take them');
    this.droppedSinceLog = 0;
  }
}
