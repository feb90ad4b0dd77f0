/**
 * One NATS connection per process (the primary and each worker): reconnects
 * forever, and every status change is logged once so an operator sees a
 * partition or a NATS restart in the host's log.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../observability/logger.js';

export type { NatsConnection };

/** NATS reconnects of this process (a metric). */
export let natsReconnects = 0;

export async function connectBus(opts: { servers: readonly string[]; name: string; timeoutMs: number; logger: Logger; onStatus?: (s: 'disconnect' | 'reconnect') => void }): Promise<NatsConnection> {
  const nc = await connect({
    servers: [...opts.servers],
    name: opts.name,
    timeout: opts.timeoutMs,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    pingInterval: 10000,
    // Keep the configured order: a host lists its own NATS node first.
    noRandomize: true,
  });
  void (async () => {
    for await (const s of nc.status()) {
      switch (s.type) {
        case 'disconnect': opts.logger.warn({ nats: s.server }, 'NATS disconnected; reconnecting'); opts.onStatus?.('disconnect'); break;
        case 'reconnect': natsReconnects++; opts.logger.info({ nats: s.server }, 'NATS reconnected'); opts.onStatus?.('reconnect'); break;
        case 'error': opts.logger.error({ err: s.error }, 'NATS error'); break;
        case 'slowConsumer': opts.logger.warn({ sub: s.sub.getSubject() }, 'NATS slow consumer: messages dropped on a subscription'); break;
        default: break;
      }
    }
  })().catch(() => {});
  return nc;
}
