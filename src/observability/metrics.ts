/**
 * Prometheus text exposition of every worker's stats, aggregated by the
 * primary (a scrape lands on one worker, which asks the primary). One line per
 * worker, labelled `worker="<index>"`, so sums and spreads are both visible.
 */
import type { WorkerStats } from '../cluster/ipc.js';

interface MetricDef { name: string; help: string; type: 'gauge' | 'counter'; pick: (s: WorkerStats) => number }

const METRICS: MetricDef[] = [
  { name: 'sandbar_sessions', help: 'Open sessions (WebSocket connections) per worker.', type: 'gauge', pick: (s) => s.sessions },
  { name: 'sandbar_frames_in_total', help: 'Frames received from clients.', type: 'counter', pick: (s) => s.framesIn },
  { name: 'sandbar_frames_out_total', help: 'Frames written to clients.', type: 'counter', pick: (s) => s.framesOut },
  { name: 'sandbar_bytes_out_total', help: 'Bytes written to clients (frame payloads).', type: 'counter', pick: (s) => s.bytesOut },
  { name: 'sandbar_session_crashes_total', help: 'Sessions stopped by a fault in their own code.', type: 'counter', pick: (s) => s.crashes },
  { name: 'sandbar_nats_connected', help: '1 when the worker is connected to NATS.', type: 'gauge', pick: (s) => (s.natsConnected ? 1 : 0) },
  { name: 'sandbar_event_loop_delay_ms', help: 'Mean event-loop delay over the last ping interval.', type: 'gauge', pick: (s) => s.loopDelayMs },
  { name: 'sandbar_shards_master', help: 'Shards this worker serves as master.', type: 'gauge', pick: (s) => s.masterShards },
  { name: 'sandbar_shards_replica', help: 'Shards this worker holds a synced replica of.', type: 'gauge', pick: (s) => s.replicaShards },
  { name: 'sandbar_promotions_total', help: 'Shards this worker took over from a dead master (failovers).', type: 'counter', pick: (s) => s.promotions },
  { name: 'sandbar_handoffs_total', help: 'Shards this worker handed to a new master (planned).', type: 'counter', pick: (s) => s.handoffs },
  { name: 'sandbar_requests_pending', help: 'Requests to user/room actors waiting for a reply (replication lag shows here).', type: 'gauge', pick: (s) => s.pendingRequests },
  { name: 'sandbar_room_deliveries_total', help: 'Room broadcast frames written to member sockets.', type: 'counter', pick: (s) => s.roomDeliveries },
  { name: 'sandbar_nats_reconnects_total', help: 'NATS reconnects of this worker.', type: 'counter', pick: (s) => s.natsReconnects },
  { name: 'sandbar_events_published_total', help: 'Events published to the events stream (events.enabled).', type: 'counter', pick: (s) => s.eventsPublished ?? 0 },
  { name: 'sandbar_events_dropped_total', help: 'Events lost: over events.maxPending, or not stored after every retry.', type: 'counter', pick: (s) => s.eventsDropped ?? 0 },
  { name: 'sandbar_events_pending', help: 'Events waiting for their PubAck from JetStream.', type: 'gauge', pick: (s) => s.eventsPending ?? 0 },
  { name: 'sandbar_webhook_deliveries_total', help: 'Events a webhook answered 2xx to (worker 0).', type: 'counter', pick: (s) => s.webhookDeliveries ?? 0 },
  { name: 'sandbar_webhook_failures_total', help: 'Failed webhook attempts (retried with backoff).', type: 'counter', pick: (s) => s.webhookFailures ?? 0 },
  { name: 'sandbar_webhook_dead_letters_total', help: 'Events given up after webhooks.maxAttempts (sent to the dead-letter subject).', type: 'counter', pick: (s) => s.webhookDeadLetters ?? 0 },
  { name: 'sandbar_api_unauthorized_total', help: 'Server API requests refused for a missing or unknown API key.', type: 'counter', pick: (s) => s.apiUnauthorized ?? 0 },
  { name: 'sandbar_process_heap_used_bytes', help: 'V8 heap in use.', type: 'gauge', pick: (s) => s.heapUsed },
  { name: 'sandbar_process_resident_memory_bytes', help: 'Resident set size.', type: 'gauge', pick: (s) => s.rss },
];

export function renderMetrics(hostId: string, workers: ReadonlyMap<number, WorkerStats>, extra: { restarts: number }): string {
  const out: string[] = [];
  const host = JSON.stringify(hostId);
  for (const m of METRICS) {
    out.push(`# HELP ${m.name} ${m.help}`, `# TYPE ${m.name} ${m.type}`);
    for (const [i, s] of workers) out.push(`${m.name}{host=${host},worker="${i}"} ${m.pick(s)}`);
  }
  out.push('# HELP sandbar_worker_restarts_total Workers restarted by the supervisor.', '# TYPE sandbar_worker_restarts_total counter', `sandbar_worker_restarts_total{host=${host}} ${extra.restarts}`);
  return out.join('\n') + '\n';
}
