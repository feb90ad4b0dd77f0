/**
 * How full the durable log stream is, as one worker sees it, so that a
 * master refuses new writes (SANDBAR_ERR_JETSTREAM_FULL) before JetStream
 * does: a write JetStream refuses has been applied already, and its `ok`
 * waits for an append that cannot happen until a snapshot trims the log.
 *
 * With persistence.logMaxBytes set, the stream's size is read once a second
 * and every append of this worker since is added on; past the high-water
 * mark (max_bytes less an eighth) the log counts as full. Other workers'
 * appends are seen at the next read, so a burst may still reach the hard
 * limit: then JetStream's own refusal (a PubAck error) also counts as full,
 * until an append is stored again.
 */
import type { JetStreamManager } from '@nats-io/jetstream';

/** Bytes a log entry costs in the stream beyond its data (subject, headers, index): an estimate. */
const ENTRY_OVERHEAD = 96;
const PROBE_MS = 1000;

export class LogFill {
  /** JetStream refused an append for lack of room, and none was stored since. */
  refused = false;
  private base = 0;
  private since = 0;
  private readonly highWater: number;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly maxBytes: number) {
    this.highWater = maxBytes > 0 ? maxBytes - Math.floor(maxBytes / 8) : Infinity;
  }

  /** Reads the stream's size once a second (only with a limit of ours). */
  start(jsm: JetStreamManager, stream: string): void {
    if (this.maxBytes <= 0) return;
    const probe = () => jsm.streams.info(stream).then((i) => { this.base = i.state.bytes; this.since = 0; }, () => {});
    void probe();
    this.timer = setInterval(probe, PROBE_MS);
    this.timer.unref();
  }

  stop(): void { if (this.timer) clearInterval(this.timer); }

  appended(bytes: number): void { this.since += bytes + ENTRY_OVERHEAD; }

  get full(): boolean { return this.refused || this.base + this.since >= this.highWater; }
}
