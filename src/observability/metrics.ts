/**
 * Sandbar's own metrics, by Prometheus conventions: base units (seconds,
 * bytes), `_total` on counters, histograms for latencies, one series per
 * worker (labels `host` and `worker`, added by the primary when it gathers).
 *
 * Two sources, both read once per scrape:
 *
 * - **the worker's stats** (`WorkerStats`, what `WorkerHost.stats()` reports
 *   as plain numbers): {@link STAT_METRICS} maps every field, by name, to its
 *   metric, or to null when another metric already says it. The map is typed
 *   over the fields, so a field added to WorkerStats (a refusal counter of
 *   the storage quotas, say) does not compile until it is given a metric
 *   here: one line.
 * - **counters and histograms that call sites write directly**
 *   ({@link metrics}, one per process): a counter is a number increment, a
 *   keyed counter a Map update of a key that exists after its first use, a
 *   histogram three writes into arrays made at start (histogram.ts). Nothing
 *   allocates per message. `metrics.histograms = false`
 *   (`metrics.histograms` in the configuration) stops every timing, so its
 *   cost can be measured (docs/benchmarks.md).
 *
 * Node and process metrics (`process_*`, `nodejs_*`) come from prom-client's
 * default collectors (runtime-metrics.ts), with the names stock dashboards read.
 */
import type { WorkerStats } from '../cluster/ipc.js';
import { histogramFamily, type Family, type MetricType } from './exposition.js';
import { Histogram, LATENCY_BUCKETS_S, TAKEOVER_BUCKETS_S } from './histogram.js';

/** A counter per key (an error code, a reason). Keys listed at construction are exported from the start, at 0. */
export class KeyedCounter {
  private readonly counts = new Map<string, number>();
  constructor(initial: readonly string[] = []) {
    for (const k of initial) this.counts.set(k, 0);
  }
  inc(key: string, by = 1): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + by);
  }
  get(key: string): number { return this.counts.get(key) ?? 0; }
  entries(): IterableIterator<[string, number]> { return this.counts.entries(); }
}

/** What a request to a user or room actor was, for its latency histogram and counter. */
export type RequestKind = 'dm' | 'room_msg' | 'user_join' | 'room_join' | 'ack' | 'other';
const REQUEST_KINDS: readonly RequestKind[] = ['dm', 'room_msg', 'user_join', 'room_join', 'ack', 'other'];
/** The kinds that are timed ('other' is only counted: no request of another kind exists today). */
const TIMED_KINDS = REQUEST_KINDS.filter((k) => k !== 'other');

/** A command's op → its kind; a switch, so no string is built per request. */
export function requestKind(op: string): RequestKind {
  switch (op) {
    case 'u.dm': return 'dm';
    case 'r.msg': return 'room_msg';
    case 'u.join': return 'user_join';
    case 'r.join': return 'room_join';
    case 'u.ack': return 'ack';
    default: return 'other';
  }
}

/** Session stop reasons exported from the start (more appear as they happen: any SANDBAR_ERR_* close code). */
const CLOSE_REASONS = ['client', 'shutdown', 'crash', 'SANDBAR_ERR_SLOW_CONSUMER', 'SANDBAR_ERR_IDLE_TIMEOUT', 'SANDBAR_ERR_RATE_ABUSE', 'SANDBAR_ERR_KICKED', 'SANDBAR_ERR_FRAME_MALFORMED', 'SANDBAR_ERR_FRAME_TOO_LARGE'];
/** Error replies to client frames exported from the start. */
const REFUSAL_CODES = ['SANDBAR_ERR_RATE_LIMITED', 'SANDBAR_ERR_INBOX_FULL', 'SANDBAR_ERR_ROOM_FULL', 'SANDBAR_ERR_TOO_LARGE', 'SANDBAR_ERR_TOO_MANY_CHANNELS', 'SANDBAR_ERR_FORBIDDEN', 'SANDBAR_ERR_UNAVAILABLE'];
/** Why an upgrade was refused before it happened (src/http/limits.ts). */
export type UpgradeRefusal = 'ip_sessions' | 'ip_rate' | 'accept_rate';

/** The per-process counters and histograms that call sites write. */
export class ProcessMetrics {
  /** Time requests and takeovers (metrics.histograms); counters count either way. */
  histograms = true;

  private readonly requestTime = new Map<RequestKind, Histogram>(TIMED_KINDS.map((k) => [k, new Histogram(LATENCY_BUCKETS_S)]));
  private readonly requestCount = new KeyedCounter(REQUEST_KINDS);
  private readonly takeoverTime = { failover: new Histogram(TAKEOVER_BUCKETS_S), handoff: new Histogram(TAKEOVER_BUCKETS_S) };
  /** Requests sent again: after no reply within the resend interval, or at once to a shard's new master. */
  readonly resends = new KeyedCounter(['timeout', 'new_master']);
  /** Requests that got no reply by request.timeoutMs (the client got SANDBAR_ERR_UNAVAILABLE). */
  requestTimeouts = 0;
  /** Error replies to client frames, by code (rate limit, full inbox, forbidden join, ...). */
  readonly refusals = new KeyedCounter(REFUSAL_CODES);
  /** WebSocket and LongPoll handshakes refused by the connection limits. */
  readonly upgradesRefused = new KeyedCounter(['ip_sessions', 'ip_rate', 'accept_rate']);
  /** Sessions ended, by reason: the client, a shutdown, a crash, or the SANDBAR_ERR_* code they were closed with. */
  readonly sessionCloses = new KeyedCounter(CLOSE_REASONS);
  /** Times this worker stopped serving as master on its own (self-fencing), by reason. */
  readonly fences = new KeyedCounter(['lease', 'nats']);

  /**
   * A reply came for a request of command `op`, `ms` after it was first
   * sent (pass 0 when `histograms` is off: the caller then reads no clock).
   */
  reply(op: string, ms: number): void {
    const kind = requestKind(op);
    this.requestCount.inc(kind);
    if (this.histograms) this.requestTime.get(kind)?.observeMs(ms);
  }

  /** Replies so far to requests of one kind. */
  requests(kind: RequestKind): number { return this.requestCount.get(kind); }

  /** A shard this worker claimed, `ms` after the view change that moved it. */
  takeover(kind: 'failover' | 'handoff', ms: number): void {
    if (this.histograms) this.takeoverTime[kind].observeMs(ms);
  }

  /** The families of these counters and histograms. */
  families(): Family[] {
    return [
      keyed('sandbar_requests_total', 'Replies to requests to user and room actors, by kind.', 'kind', this.requestCount),
      histogramFamily('sandbar_request_duration_seconds', 'Time from a request to a user or room actor to its reply, as its worker sees it: for a dm or room msg, until it is stored and replicated (the ok the client gets); for a join, until the join is accepted.',
        TIMED_KINDS.map((kind) => ({ labels: { kind }, hist: this.requestTime.get(kind)! }))),
      keyed('sandbar_request_resends_total', 'Requests sent again: after no reply within the resend interval (reason timeout) or at once to a shard\'s new master (reason new_master).', 'reason', this.resends),
      counter('sandbar_request_timeouts_total', 'Requests with no reply by request.timeoutMs (the client got SANDBAR_ERR_UNAVAILABLE).', this.requestTimeouts),
      histogramFamily('sandbar_shard_takeover_duration_seconds', 'Per shard this worker claimed: time from the view change that moved it (for a failover, when the old master left the view) to its ownership record naming this worker.',
        [{ labels: { kind: 'failover' }, hist: this.takeoverTime.failover }, { labels: { kind: 'handoff' }, hist: this.takeoverTime.handoff }]),
      keyed('sandbar_refusals_total', 'Error replies to client frames, by SANDBAR_ERR_* code (rate limit, full inbox, forbidden join, ...).', 'code', this.refusals),
      keyed('sandbar_upgrades_refused_total', 'Connections refused before the upgrade by the connection limits: ip_sessions (http.ipMaxSessions), ip_rate (http.ipConnectRate), accept_rate (http.acceptRate).', 'reason', this.upgradesRefused),
      keyed('sandbar_session_closes_total', 'Sessions ended, by reason: client (closed by the client), shutdown, crash, or the SANDBAR_ERR_* code the server closed it with (SANDBAR_ERR_SLOW_CONSUMER: a slow consumer).', 'reason', this.sessionCloses),
      keyed('sandbar_fences_total', 'Times this worker stopped serving as master on its own (self-fencing): reason lease (the host lost its cluster lease) or nats (its NATS connection was down for cluster.selfFenceMs).', 'reason', this.fences),
    ];
  }
}

/** This process's metrics (each worker has its own; the primary gathers them). */
export const metrics = new ProcessMetrics();

function counter(name: string, help: string, value: number): Family {
  return { name, help, type: 'counter', samples: [{ labels: {}, value }] };
}

function keyed(name: string, help: string, label: string, c: KeyedCounter): Family {
  return { name, help, type: 'counter', samples: [...c.entries()].map(([k, value]) => ({ labels: { [label]: k }, value })) };
}

interface StatMetric {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
}

/**
 * Every WorkerStats field → its metric, or null where another metric says it
 * already (heap and RSS: nodejs_heap_size_used_bytes and
 * process_resident_memory_bytes; event-loop delay: nodejs_eventloop_lag_*).
 */
export const STAT_METRICS: { readonly [K in keyof WorkerStats]-?: StatMetric | null } = {
  sessions: { name: 'sandbar_sessions', type: 'gauge', help: 'Open sessions (WebSocket and LongPoll).' },
  longpollSessions: { name: 'sandbar_longpoll_sessions', type: 'gauge', help: 'Open LongPoll sessions (included in sandbar_sessions).' },
  heapUsed: null,
  rss: null,
  framesIn: { name: 'sandbar_frames_in_total', type: 'counter', help: 'Frames received from clients.' },
  framesOut: { name: 'sandbar_frames_out_total', type: 'counter', help: 'Frames written to clients.' },
  bytesOut: { name: 'sandbar_sent_bytes_total', type: 'counter', help: 'Bytes of frames written to clients.' },
  crashes: { name: 'sandbar_session_crashes_total', type: 'counter', help: 'Sessions stopped by a fault in their own code (each closed with 1011; every other session goes on).' },
  natsConnected: { name: 'sandbar_nats_connected', type: 'gauge', help: '1 while the worker is connected to NATS.' },
  loopDelayMs: null,
  masterShards: { name: 'sandbar_shards_master', type: 'gauge', help: 'Shards this worker serves as master.' },
  replicaShards: { name: 'sandbar_shards_replica', type: 'gauge', help: 'Shards this worker holds a replica of.' },
  promotions: { name: 'sandbar_promotions_total', type: 'counter', help: 'Shards this worker took over as master from a master that left the view (failovers).' },
  handoffs: { name: 'sandbar_handoffs_total', type: 'counter', help: 'Shards this worker handed to a new master (planned).' },
  pendingRequests: { name: 'sandbar_requests_pending', type: 'gauge', help: 'Requests to user and room actors waiting for their reply (replication lag and unserved shards show here).' },
  roomDeliveries: { name: 'sandbar_room_deliveries_total', type: 'counter', help: 'Room broadcast frames written to member sockets.' },
  natsReconnects: { name: 'sandbar_nats_reconnects_total', type: 'counter', help: 'NATS reconnects of this worker.' },
  fenced: { name: 'sandbar_fenced', type: 'gauge', help: '1 while this worker has stopped serving as master on its own (lost cluster lease, or NATS down for cluster.selfFenceMs).' },
  shardsWithoutMaster: { name: 'sandbar_shards_without_master', type: 'gauge', help: 'Shards whose ownership record is missing or names a worker outside the cluster view, as this worker sees them (every worker reports the whole cluster: use max).' },
  eventsPublished: { name: 'sandbar_events_published_total', type: 'counter', help: 'Events published to the events stream (events.enabled).' },
  eventsDropped: { name: 'sandbar_events_dropped_total', type: 'counter', help: 'Events lost: over events.maxPending, or not stored after every retry.' },
  eventsPending: { name: 'sandbar_events_pending', type: 'gauge', help: 'Events waiting for their PubAck from JetStream.' },
  webhookDeliveries: { name: 'sandbar_webhook_deliveries_total', type: 'counter', help: 'Events a webhook answered 2xx to (worker 0).' },
  webhookFailures: { name: 'sandbar_webhook_failures_total', type: 'counter', help: 'Failed webhook attempts (retried with backoff).' },
  webhookDeadLetters: { name: 'sandbar_webhook_dead_letters_total', type: 'counter', help: 'Events given up after webhooks.maxAttempts (sent to the dead-letter subject).' },
  apiUnauthorized: { name: 'sandbar_api_unauthorized_total', type: 'counter', help: 'Server API requests refused for a missing or unknown API key.' },
  restoring: { name: 'sandbar_shards_restoring', type: 'gauge', help: 'Shards this worker is loading from JetStream now (snapshot and log).' },
  heapLimit: { name: 'sandbar_worker_heap_limit_bytes', type: 'gauge', help: 'The worker\'s V8 heap limit (cluster.workerHeapMb); the storage budget is set below it.' },
  storageBytes: { name: 'sandbar_storage_bytes', type: 'gauge', help: 'Stored state counted into the worker\'s storage budget: inbox and history entries, dedup ids, user and room actors, master and replica copies (docs/storage.md).' },
  storageBudgetBytes: { name: 'sandbar_storage_budget_bytes', type: 'gauge', help: 'The worker\'s storage budget (storage.budgetMb, or 40 % of its heap limit): past it new writes are refused with SANDBAR_ERR_STORAGE_FULL.' },
  storageWarnings: { name: 'sandbar_storage_warnings_total', type: 'counter', help: 'Times the stored state passed storage.warnPercent of the budget.' },
  storageRefusedFull: { name: 'sandbar_storage_refused_full_total', type: 'counter', help: 'Writes refused with SANDBAR_ERR_STORAGE_FULL because the worker\'s budget is full.' },
  storageRefusedShare: { name: 'sandbar_storage_refused_share_total', type: 'counter', help: 'Writes refused with SANDBAR_ERR_STORAGE_FULL past the warning mark because their sender holds more than storage.senderSharePercent of the budget.' },
  storageRefusedShard: { name: 'sandbar_storage_refused_shard_total', type: 'counter', help: 'Writes refused with SANDBAR_ERR_STORAGE_FULL because their shard holds its most (persistence.maxSnapshotBytes, or what one NATS message carries).' },
  storageRefusedLog: { name: 'sandbar_storage_refused_log_full_total', type: 'counter', help: 'Writes refused with SANDBAR_ERR_JETSTREAM_FULL because the durable log is full (persistence.logMaxBytes).' },
  storageSenders: { name: 'sandbar_storage_senders', type: 'gauge', help: 'Senders whose stored messages the worker counts (for storage.senderSharePercent).' },
  sendQuotaRefused: { name: 'sandbar_send_quota_refused_total', type: 'counter', help: 'Messages refused with SANDBAR_ERR_SEND_QUOTA (sender.newRecipientsPerMin, sender.newRoomsPerMin, sender.bytesPerMin).' },
  inboxFull: { name: 'sandbar_inbox_full_total', type: 'counter', help: 'Dms refused with SANDBAR_ERR_INBOX_FULL (user.inboxMax, user.inboxMaxBytes).' },
  inboxExpired: { name: 'sandbar_inbox_expired_total', type: 'counter', help: 'Unacknowledged messages dropped from inboxes past user.inboxTtlMs.' },
  historyTrimmed: { name: 'sandbar_room_history_trimmed_total', type: 'counter', help: 'Room messages dropped from history past room.historyMax or room.historyMaxBytes.' },
};

/** The families of a worker's stats, by STAT_METRICS. */
export function statFamilies(stats: WorkerStats): Family[] {
  const out: Family[] = [];
  for (const key of Object.keys(STAT_METRICS) as (keyof WorkerStats)[]) {
    const m = STAT_METRICS[key];
    if (m === null) continue;
    // Optional fields (a feature that is off) are exported as 0, so the series exist from the start.
    const v = stats[key] ?? 0;
    out.push({ name: m.name, help: m.help, type: m.type, samples: [{ labels: {}, value: typeof v === 'boolean' ? (v ? 1 : 0) : v }] });
  }
  return out;
}
