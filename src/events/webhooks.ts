/**
 * Webhooks: every event of the stream POSTed, signed, to each URL of
 * webhooks.urls. One dispatcher per host (in its worker 0) pulls from the
 * webhook's durable consumers, one per partition of the stream
 * (stream.ts): each consumer lets one event out at a time
 * (max_ack_pending 1), so the events of a room (one partition) arrive in
 * order, and several hosts pulling the same consumer keep that order.
 *
 * A failed delivery (no 2xx within webhooks.timeoutMs) is negatively
 * acknowledged with a delay that doubles from webhooks.backoffMs up to
 * webhooks.maxBackoffMs; JetStream redelivers it then (to whichever host
 * pulls first) and counts the deliveries. After webhooks.maxAttempts the
 * event goes to the dead-letter subject sandbar.<c>.webhooks.dead.<webhook>
 * and the partition moves on. A receiver that is down therefore costs its
 * events' delay, never memory here: a dispatcher holds at most one event per
 * URL and partition (urls × events.partitions events), the rest wait in the
 * stream. Nothing here touches the message path.
 */
import { jetstream, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Subjects } from '../bus/subjects.js';
import type { SandbarConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import { SIGNATURE_HEADER, sign } from './sign.js';
import { eventsStream, webhookConsumer, webhookName } from './stream.js';

export interface WebhookCounters { delivered: number; failed: number; dead: number }

/** The delay before delivery n+1 of an event whose n-th delivery failed. */
export function backoffMs(config: SandbarConfig, deliveries: number): number {
  const { backoffMs: first, maxBackoffMs } = config.webhooks;
  return Math.min(maxBackoffMs, first * 2 ** Math.min(30, Math.max(0, deliveries - 1)));
}

export class WebhookDispatcher {
  private readonly running: ConsumerMessages[] = [];
  private stopped = false;
  readonly counters: WebhookCounters = { delivered: 0, failed: 0, dead: 0 };
  /** Failures since the last warn line (a receiver that is down is logged once every 10 s, not per event). */
  private failedSinceLog = 0;
  private lastFailLog = 0;

  constructor(
    private readonly nc: NatsConnection,
    private readonly subjects: Subjects,
    private readonly config: SandbarConfig,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    const js = jetstream(this.nc);
    const stream = eventsStream(this.config.cluster.name);
    for (const url of this.config.webhooks.urls ?? []) {
      for (let p = 0; p < this.config.events.partitions; p++) {
        const consumer = await js.consumers.get(stream, webhookConsumer(url, p));
        const msgs = await consumer.consume({ max_messages: 1 });
        this.running.push(msgs);
        void this.loop(url, msgs);
      }
    }
    this.logger.info({ webhooks: (this.config.webhooks.urls ?? []).map(webhookName), partitions: this.config.events.partitions }, 'webhook dispatcher started');
  }

  private async loop(url: string, msgs: ConsumerMessages): Promise<void> {
    try {
      for await (const m of msgs) {
        if (this.stopped) break;
        await this.deliver(url, m);
      }
    } catch (err) {
      if (!this.stopped) this.logger.error({ err, webhook: webhookName(url) }, 'webhook consumer stopped');
    }
  }

  private async deliver(url: string, m: JsMsg): Promise<void> {
    const body = m.string();
    let status = 0;
    let why = '';
    try {
      const t = Date.now();
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: sign(this.config.webhooks.secret!, body, t), 'sandbar-delivery': String(m.info.deliveryCount) },
        body,
        signal: AbortSignal.timeout(this.config.webhooks.timeoutMs),
      });
      status = res.status;
      // The body is not needed; reading it frees the connection for the next request.
      await res.arrayBuffer().catch(() => undefined);
    } catch (err) {
      why = (err as Error).name === 'TimeoutError' ? `no answer within ${this.config.webhooks.timeoutMs} ms` : (err as Error).message;
    }
    if (status >= 200 && status < 300) {
      this.counters.delivered++;
      m.ack();
      return;
    }
    this.counters.failed++;
    const n = m.info.deliveryCount;
    if (n >= this.config.webhooks.maxAttempts) {
      this.counters.dead++;
      this.nc.publish(this.subjects.webhookDead(webhookName(url)), body);
      m.term(`webhook failed ${n} times`);
      this.logger.error({ webhook: webhookName(url), url, attempts: n, status, why, subject: this.subjects.webhookDead(webhookName(url)) }, 'webhook event given up: sent to the dead-letter subject');
      return;
    }
    m.nak(backoffMs(this.config, n));
    this.failedSinceLog++;
    const now = Date.now();
    if (now - this.lastFailLog >= 10_000) {
      this.logger.warn({ webhook: webhookName(url), url, status, why, failures: this.failedSinceLog }, 'webhook delivery failed; retrying with backoff');
      this.lastFailLog = now;
      this.failedSinceLog = 0;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.running.map((r) => r.close().catch(() => undefined)));
  }
}
