/**
 * A Prometheus histogram with fixed buckets, for hot paths: `observe` is a
 * short loop over the bucket bounds and three number writes into arrays made
 * once at construction. No label hashing, no allocation per observation
 * (prom-client's Histogram hashes its label object on every observe; this
 * one is chosen per label set once, where the call site is written).
 *
 * Values are observed in milliseconds (what `performance.now()` differences
 * give) and exported in seconds, the Prometheus base unit.
 */

/** Request latencies: 0.5 ms to 10 s. */
export const LATENCY_BUCKETS_S: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Shard takeovers (a failover or a planned handoff, per shard): 50 ms to 60 s. */
export const TAKEOVER_BUCKETS_S: readonly number[] = [0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60];

export class Histogram {
  /** Upper bounds in ms, ascending; the +Inf bucket is implicit (index bounds.length). */
  private readonly boundsMs: Float64Array;
  /** Observations per bucket (not cumulative: cumulated when read). */
  private readonly counts: Float64Array;
  private sumMs = 0;
  private n = 0;

  constructor(readonly boundsS: readonly number[]) {
    for (let i = 1; i < boundsS.length; i++) {
      if (!(boundsS[i] > boundsS[i - 1])) throw new Error(`histogram bounds must ascend: ${boundsS.join(', ')}`);
    }
    this.boundsMs = Float64Array.from(boundsS, (s) => s * 1000);
    this.counts = new Float64Array(boundsS.length + 1);
  }

  observeMs(ms: number): void {
    const b = this.boundsMs;
    let i = 0;
    // Linear: 12-14 bounds, and most observations land in the first few.
    while (i < b.length && ms > b[i]) i++;
    this.counts[i]++;
    this.sumMs += ms;
    this.n++;
  }

  get count(): number { return this.n; }

  /** Sum of the observations, in seconds. */
  get sumS(): number { return this.sumMs / 1000; }

  /** Cumulative counts per bound, the last one for +Inf (equal to count). */
  cumulative(): number[] {
    const out: number[] = [];
    let acc = 0;
    for (let i = 0; i < this.counts.length; i++) out.push((acc += this.counts[i]));
    return out;
  }
}
