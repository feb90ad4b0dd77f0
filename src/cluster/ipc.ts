import type { HostView } from '../placement/rendezvous.js';
import type { ApiToPrimary, ApiToWorker } from '../api/nats-endpoints.js';
import type { StorageStats } from '../storage/index.js';

/**
 * Messages between the primary and its workers over node:cluster IPC.
 * Small and few: pings for liveness (carrying the worker's stats back),
 * readiness, shutdown, and metrics aggregation.
 */

/** What each worker reports with every pong; the primary aggregates /metrics from these (storage counters: docs/storage.md). */
export interface WorkerStats extends StorageStats {
  sessions: number;
  heapUsed: number;
  rss: number;
  framesIn: number;
  framesOut: number;
  bytesOut: number;
  crashes: number;
  natsConnected: boolean;
  /** Event-loop delay, mean over the last ping interval, in ms. */
  loopDelayMs: number;
  masterShards: number;
  replicaShards: number;
  promotions: number;
  handoffs: number;
  /** Requests to user/room actors waiting for their reply. */
  pendingRequests: number;
  /** Frames written to room members from room broadcasts. */
  roomDeliveries: number;
  natsReconnects: number;
  /** Events out (src/events/publisher.ts) and webhooks (worker 0), server API refusals; 0 when off. */
  eventsPublished?: number;
  eventsDropped?: number;
  eventsPending?: number;
  webhookDeliveries?: number;
  webhookFailures?: number;
  webhookDeadLetters?: number;
  apiUnauthorized?: number;
  /** Shards whose snapshot and log this worker is loading from JetStream now. */
  restoring: number;
  /** The worker's V8 heap limit (bytes). */
  heapLimit: number;
}

export type ToWorker =
  | { t: 'ping'; n: number }
  /** The live cluster view (hosts and their live workers); placement follows it. */
  | { t: 'view'; hosts: HostView[] }
  /** The host may act as master until this time (Date.now()); see cluster/lease.ts. */
  | { t: 'lease'; okUntil: number }
  /** Stop; hand mastered shards over according to `view` (the cluster without this host) first. */
  | { t: 'shutdown'; view: HostView[] }
  | { t: 'loglevel'; level: string }
  | { t: 'metrics'; id: number; text: string }
  /** A server API request that came over NATS (the primary's micro service): run it (src/api/nats-endpoints.ts). */
  | ApiToWorker;

export type ToPrimary =
  | { t: 'pong'; n: number; stats: WorkerStats }
  | { t: 'listening'; port: number }
  /** The worker took up its roles for the first view: it serves its shards. */
  | { t: 'serving'; master: number; replica: number }
  /** Sent when restores from JetStream start and when the last one ends: the primary tells a restoring worker from a hung one. */
  | { t: 'restoring'; shards: number }
  | { t: 'metrics?'; id: number }
  | ApiToPrimary;

/** Environment variables the primary passes to a forked worker (SANDBAR__ names are not config keys). */
export const WORKER_ENV = {
  config: 'SANDBAR__WORKER_CONFIG',
  index: 'SANDBAR__WORKER_INDEX',
} as const;
