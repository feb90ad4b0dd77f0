import type { HostView } from '../placement/rendezvous.js';
import type { Family } from '../observability/exposition.js';
import type { ApiToPrimary, ApiToWorker } from '../api/nats-endpoints.js';
import type { StorageStats } from '../storage/index.js';

/**
 * Messages between the primary and its workers over node:cluster IPC.
 * Small and few: pings for liveness (carrying the worker's stats back),
 * readiness, shutdown, and metrics aggregation.
 */

/**
 * What each worker reports with every pong (status, heartbeat load) and with
 * every scrape (src/observability/metrics.ts maps each field to its metric;
 * storage counters: docs/storage.md).
 */
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
  /** LongPoll sessions (included in sessions). */
  longpollSessions: number;
  /** The worker has stopped serving as master on its own (lease lost, NATS down). */
  fenced: boolean;
  /** Shards with no ownership record, or one naming a worker outside the view, as this worker sees them. */
  shardsWithoutMaster: number;
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
  /** Liveness; carries what the cluster page shows of the host: its worker restarts, the hosts it finds suspect. */
  | { t: 'ping'; n: number; restarts: number; suspect: string[] }
  /** The live cluster view (hosts and their live workers); placement follows it. */
  | { t: 'view'; hosts: HostView[] }
  /** The host may act as master until this time (Date.now()); see cluster/lease.ts. */
  | { t: 'lease'; okUntil: number }
  /** Stop; hand mastered shards over according to `view` (the cluster without this host) first. */
  | { t: 'shutdown'; view: HostView[] }
  | { t: 'loglevel'; level: string }
  /** Send your metric families for scrape `id`. */
  | { t: 'scrape'; id: number }
  /** The host's metrics, answering this worker's `metrics?`. */
  | { t: 'metrics'; id: number; status: 200 | 503; text: string }
  /** A server API request that came over NATS (the primary's micro service): run it (src/api/nats-endpoints.ts). */
  | ApiToWorker;

export type ToPrimary =
  | { t: 'pong'; n: number; stats: WorkerStats }
  /** The public listener's port, and the internal one's (null: operator endpoints are on the public port). */
  | { t: 'listening'; port: number; adminPort: number | null }
  /** The worker took up its roles for the first view: it serves its shards. */
  | { t: 'serving'; master: number; replica: number }
  /** Sent when restores from JetStream start and when the last one ends: the primary tells a restoring worker from a hung one. */
  | { t: 'restoring'; shards: number }
  /** A scrape came in: the host's metrics, please. */
  | { t: 'metrics?'; id: number }
  /** This worker's metric families for the primary's scrape `id`. */
  | { t: 'scraped'; id: number; families: Family[] }
  | ApiToPrimary;

/** Environment variables the primary passes to a forked worker (SANDBAR__ names are not config keys). */
export const WORKER_ENV = {
  config: 'SANDBAR__WORKER_CONFIG',
  index: 'SANDBAR__WORKER_INDEX',
} as const;
