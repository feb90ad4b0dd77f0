/**
 * The host's right to act as master of its shards (docs/architecture.md,
 * "Fencing"). Acting is allowed until `okUntil`:
 *
 *   okUntil = max(last quorum write sent, last time a majority of known hosts was heard) + cluster.selfFenceMs
 *
 * The quorum write is a KV put of `host.<hostId>` in the ownership bucket,
 * every cluster.heartbeatMs: JetStream acknowledges it only once a majority
 * of the bucket's NATS nodes stored it. A host on the minority side of a
 * partition can do neither, so it stops acting at most selfFenceMs after the
 * partition, before the majority, which waits cluster.downAfterMs after the
 * last heartbeat it heard (> selfFenceMs + heartbeatMs, checked at start-up),
 * promotes its shards. Heard hosts keep the lease while the KV bucket alone
 * is unreachable (its stream leader is being re-elected): nobody can claim a
 * shard then, so the masters go on serving.
 */
import type { Logger } from '../observability/logger.js';
import type { Ownership } from '../placement/ownership.js';

export class Lease {
  /** Date.now() when the last acknowledged lease write was sent. */
  private lastWrite = 0;
  private inFlight = false;
  private timer: NodeJS.Timeout | null = null;
  private acting = true;

  constructor(
    private readonly ownership: Ownership,
    private readonly hostId: string,
    private readonly incarnation: string,
    private readonly opts: { heartbeatMs: number; selfFenceMs: number },
    /** Date.now() when a majority of the known hosts was last heard (see Membership). */
    private readonly majorityHeardAt: () => number,
    /** Called every heartbeatMs / 2 with the current okUntil, and whether the host may act now. */
    private readonly onLease: (okUntil: number, acting: boolean) => void,
    private readonly logger: Logger,
  ) {}

  okUntil(): number {
    return Math.max(this.lastWrite, this.majorityHeardAt()) + this.opts.selfFenceMs;
  }

  start(): void {
    const tick = () => {
      this.renew();
      const until = this.okUntil();
      const acting = Date.now() < until;
      if (acting !== this.acting) {
        this.acting = acting;
        if (acting) this.logger.info('cluster lease renewed: this host acts as master again where nobody took over');
        else this.logger.warn({ selfFenceMs: this.opts.selfFenceMs }, 'cluster lease lost: no quorum write to the ownership bucket and no majority of hosts heard within cluster.selfFenceMs; this host stops acting as master (self-fencing)');
      }
      this.onLease(until, acting);
    };
    tick();
    this.timer = setInterval(tick, Math.max(10, Math.floor(this.opts.heartbeatMs / 2)));
    this.timer.unref();
  }

  /** When the last lease write was sent (one per cluster.heartbeatMs; the ticks come twice as often). */
  private lastSent = 0;

  private renew(): void {
    const sent = Date.now();
    if (this.inFlight || sent - this.lastSent < this.opts.heartbeatMs * 0.75) return; // a write still waiting: do not pile them up
    this.inFlight = true;
    this.lastSent = sent;
    this.ownership.renewLease(this.hostId, this.incarnation)
      .then(() => { if (sent > this.lastWrite) this.lastWrite = sent; })
      .catch((err) => this.logger.debug({ err: (err as Error).message }, 'lease write failed'))
      .finally(() => { this.inFlight = false; });
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
