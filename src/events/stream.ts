/**
 * The events stream `sandbar_<cluster>_events` and the webhooks' durable
 * consumers, created (or brought in line with the configuration) by each
 * primary at start, before its workers publish anything: events stored after
 * a host started are never missed by a webhook configured on it.
 */
import { createHash } from 'node:crypto';
import { AckPolicy, DeliverPolicy, DiscardPolicy, StorageType, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Subjects } from '../bus/subjects.js';
import type { SandbarConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import { natsReplicas } from '../persistence/snapshot-store.js';

export function eventsStream(cluster: string): string {
  return `sandbar_${cluster}_events`;
}

/** How long the stream remembers a Nats-Msg-Id: a promoted master re-sends within seconds of a failure. */
export const DUPLICATE_WINDOW_MS = 120_000;

/** A webhook's name: stable for its URL (consumer names, the dead-letter subject, logs). */
export function webhookName(url: string): string {
  return `wh${createHash('sha256').update(url).digest('hex').slice(0, 12)}`;
}

export function webhookConsumer(url: string, partition: number): string {
  return `sandbar_${webhookName(url)}_p${partition}`;
}

/** How long JetStream waits for a webhook dispatcher's ack before giving the event to another one. */
export function webhookAckWaitMs(config: SandbarConfig): number {
  return config.webhooks.timeoutMs + 5000;
}

export async function ensureEvents(nc: NatsConnection, config: SandbarConfig, subjects: Subjects, logger: Logger): Promise<void> {
  if (!config.events.enabled) return;
  const jsm = await jetstreamManager(nc);
  const name = eventsStream(config.cluster.name);
  const want = {
    subjects: [subjects.eventsAll()],
    max_bytes: config.events.maxBytes,
    max_age: config.events.maxAgeMs * 1_000_000,
    duplicate_window: DUPLICATE_WINDOW_MS * 1_000_000,
    discard: DiscardPolicy.Old,
  };
  try {
    const info = await jsm.streams.info(name);
    const c = info.config;
    if (c.max_bytes !== want.max_bytes || c.max_age !== want.max_age || c.duplicate_window !== want.duplicate_window) {
      await jsm.streams.update(name, { ...c, ...want });
      logger.info({ stream: name, maxBytes: want.max_bytes, maxAgeMs: config.events.maxAgeMs }, 'events stream limits updated');
    }
  } catch {
    await jsm.streams.add({ name, ...want, storage: StorageType.File, num_replicas: natsReplicas(nc) });
    logger.info({ stream: name }, 'events stream created');
  }
  for (const url of config.webhooks.urls ?? []) {
    for (let p = 0; p < config.events.partitions; p++) {
      const durable = webhookConsumer(url, p);
      try {
        await jsm.consumers.info(name, durable);
      } catch {
        // max_ack_pending 1: one event of a partition at a time, so each room's events reach the webhook in order.
        await jsm.consumers.add(name, {
          durable_name: durable,
          filter_subject: subjects.eventsPartition(p),
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.New,
          max_ack_pending: 1,
          ack_wait: webhookAckWaitMs(config) * 1_000_000,
          description: `Sandbar webhook ${url}, partition ${p}`,
        });
      }
    }
  }
}
