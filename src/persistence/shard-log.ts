/**
 * The durable log (`persistence.mode = "log"`): every replication entry a
 * master assigns is also appended to the JetStream stream
 * `sandbar_<cluster>_log` (file storage, subject `sandbar.<c>.log.<n>`), and
 * the entry's outputs (the client's `ok`) wait for its PubAck.
 *
 * No request per entry (as for every hot path): each append is a plain publish whose
 * reply subject names the shard and seq under this worker's one PubAck
 * subscription, so many appends are in flight at once and an ack needs no
 * lookup table beyond the per-shard queue of entries not yet acked. A
 * shared timer republishes entries whose PubAck is late (restore dedups by
 * epoch and seq).
 */
import { DiscardPolicy, StorageType, jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection, Msg, Subscription } from '@nats-io/transport-node';
import type { Subjects } from '../bus/subjects.js';
import type { ReplMsg } from '../actors/replication.js';
import type { Logger } from '../observability/logger.js';
import { natsReplicas } from './snapshot-store.js';
import { applyMaxBytes, isStoreFull } from './store-limits.js';
import { LogFill } from './log-fill.js';
import { ThrottledLog } from '../storage/throttled-log.js';

export type LogEntry = Extract<ReplMsg, { t: 'e' }>;

export function logStream(cluster: string): string {
  return `sandbar_${cluster}_log`;
}

export async function ensureLogStream(nc: NatsConnection, cluster: string, subjects: Subjects, maxBytes = 0): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const name = logStream(cluster);
  try {
    await jsm.streams.info(name);
  } catch {
    // Discard "new": a full log refuses an append (the master then refuses writes) rather than drop entries a restore needs.
    await jsm.streams.add({ name, subjects: [subjects.shardLogAll()], storage: StorageType.File, num_replicas: natsReplicas(nc), discard: DiscardPolicy.New });
  }
  await applyMaxBytes(jsm, name, maxBytes, 'persistence.logMaxBytes');
}

/**
 * How long a count of the log's entries per shard is reused. Only entries
 * written before this worker claimed the shard matter to its restore, and
 * nobody else writes that shard's log while it claims.
 */
const COUNTS_FRESH_MS = 1000;

/** A PubAck later than this gets its entry published again. */
const RESEND_AFTER_MS = 5000;
/** While the log is full, refused entries are published again this often (the first stored one ends the refusals). */
const FULL_RESEND_MS = 1000;

interface Pending { s: number; data: string; at: number; acked: boolean; streamSeq: number }

class ShardLogState {
  /** Highest seq whose entry, and every one before it, JetStream has stored. */
  logged = 0;
  /** Stream seq of the entry `logged`. */
  streamSeq = 0;
  pending: Pending[] = [];
}

export class ShardLog {
  private readonly shards = new Map<number, ShardLogState>();
  private readonly ackPrefix: string;
  private sub: Subscription | null = null;
  private timer: NodeJS.Timeout | null = null;
  private jsm: JetStreamManager | null = null;
  private readonly stream: string;
  /** How full the stream is: masters refuse new writes while it says full (storage budget, `log`). */
  private readonly fill: LogFill;
  private readonly fullLog = new ThrottledLog(10_000);
  private wasFull = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly subjects: Subjects,
    hostId: string,
    worker: number,
    private readonly logger: Logger,
    /** Called when entries of shard n became durable (loggedUpTo moved). */
    private readonly onLogged: (n: number) => void,
    /** persistence.logMaxBytes (0: none of ours). */
    maxBytes = 0,
  ) {
    this.fill = new LogFill(maxBytes);
    this.ackPrefix = subjects.logAckPrefix(hostId, worker);
    this.stream = logStream(subjects.cluster);
  }

  async start(): Promise<void> {
    this.jsm = await jetstreamManager(this.nc);
    this.fill.start(this.jsm, this.stream);
    this.sub = this.nc.subscribe(`${this.ackPrefix}>`, { callback: (err, msg) => { if (!err) this.onAck(msg); } });
    this.timer = setInterval(() => this.resendLate(), 500);
    this.timer.unref();
  }

  /**
   * Whether new writes must be refused: the log is past its high-water mark,
   * or JetStream refused an append for lack of room. Logged (at most once
   * every 10 s) when it starts, and when it ends.
   */
  get full(): boolean {
    const full = this.fill.full;
    if (full !== this.wasFull) {
      this.wasFull = full;
      if (full) {
        if (this.fullLog.hit(Date.now())) this.logger.error({ code: 'SANDBAR_ERR_JETSTREAM_FULL', times: this.fullLog.take() }, 'durable log full (persistence.logMaxBytes or the NATS server\'s storage): new writes are refused until snapshots trim it');
      } else this.logger.info('durable log has room again: writes are accepted');
    }
    return full;
  }

  stop(): void {
    this.fill.stop();
    this.sub?.unsubscribe();
    if (this.timer) clearInterval(this.timer);
  }

  /** A master starts (or restarts) logging shard n after seq. */
  reset(n: number, seq: number): void {
    const st = new ShardLogState();
    st.logged = seq;
    this.shards.set(n, st);
  }

  drop(n: number): void { this.shards.delete(n); }

  loggedUpTo(n: number): number { return this.shards.get(n)?.logged ?? 0; }

  /** The stream seq up to which shard n's log is covered by a snapshot at seq `upTo` (0: nothing known). */
  streamSeqAt(n: number, upTo: number): number {
    const st = this.shards.get(n);
    return st && st.logged <= upTo ? st.streamSeq : 0;
  }

  append(n: number, s: number, data: string): void {
    let st = this.shards.get(n);
    if (!st) { st = new ShardLogState(); st.logged = s - 1; this.shards.set(n, st); }
    st.pending.push({ s, data, at: Date.now(), acked: false, streamSeq: 0 });
    this.fill.appended(data.length);
    this.nc.publish(this.subjects.shardLog(n), data, { reply: this.subjects.logAck(this.ackPrefix, n, s) });
  }

  private onAck(msg: Msg): void {
    const rest = msg.subject.slice(this.ackPrefix.length);
    const dot = rest.indexOf('.');
    const n = Number(rest.slice(0, dot));
    const s = Number(rest.slice(dot + 1));
    const st = this.shards.get(n);
    if (!st || s <= st.logged) return;
    let ack: { seq?: number; error?: { description?: string } };
    try { ack = msg.json(); } catch { return; }
    if (ack.error || typeof ack.seq !== 'number') {
      // Not stored: the resend timer tries again.
      if (isStoreFull(ack.error)) {
        // Applied already: its ok waits for this append, published again until there is room.
        this.fill.refused = true;
      } else {
        this.logger.warn({ shard: n, seq: s, err: ack.error?.description }, 'durable log append refused by JetStream; retrying');
      }
      return;
    }
    this.fill.refused = false;
    const first = st.pending[0]?.s ?? s;
    const p = st.pending[s - first];
    if (!p || p.s !== s) return;
    p.acked = true;
    p.streamSeq = ack.seq;
    let moved = false;
    while (st.pending.length > 0 && st.pending[0]!.acked) {
      const h = st.pending.shift()!;
      st.logged = h.s;
      st.streamSeq = h.streamSeq;
      moved = true;
    }
    if (moved) this.onLogged(n);
  }

  private resendLate(): void {
    const now = Date.now();
    for (const [n, st] of this.shards) {
      const head = st.pending[0];
      if (!head || now - head.at < (this.fill.refused ? FULL_RESEND_MS : RESEND_AFTER_MS)) continue;
      if (!this.fill.refused) this.logger.warn({ shard: n, seq: head.s, waiting: st.pending.length }, 'durable log: no PubAck in time; publishing the entries again');
      for (const p of st.pending) {
        if (p.acked) continue;
        p.at = now;
        this.nc.publish(this.subjects.shardLog(n), p.data, { reply: this.subjects.logAck(this.ackPrefix, n, p.s) });
      }
    }
  }

  /** Removes shard n's entries up to stream seq `upTo` (covered by a snapshot). */
  async trim(n: number, upTo: number): Promise<void> {
    if (upTo <= 0 || !this.jsm) return;
    await this.jsm.streams.purge(this.stream, { filter: this.subjects.shardLog(n), seq: upTo + 1 });
  }

  /** Entries per shard subject, one stream-info request shared by the restores of a second (a start claims every shard at once). */
  private counts: { at: number; p: Promise<Record<string, number>> } | null = null;

  private subjectCounts(): Promise<Record<string, number>> {
    if (!this.counts || Date.now() - this.counts.at > COUNTS_FRESH_MS) {
      const p = (async () => {
        const jsm = this.jsm ?? await jetstreamManager(this.nc);
        const info = await jsm.streams.info(this.stream, { subjects_filter: this.subjects.shardLogAll() });
        return info.state.subjects ?? {};
      })();
      this.counts = { at: Date.now(), p };
      p.catch(() => { this.counts = null; });
    }
    return this.counts.p;
  }

  /** Every entry of shard n's log, in stream order (restore). */
  async read(n: number): Promise<LogEntry[]> {
    const subject = this.subjects.shardLog(n);
    const count = (await this.subjectCounts())[subject] ?? 0;
    const out: LogEntry[] = [];
    if (count === 0) return out;
    const c = await jetstream(this.nc).consumers.get(this.stream, { filter_subjects: subject });
    try {
      while (out.length < count) {
        const batch = await c.fetch({ max_messages: Math.min(1000, count - out.length), expires: 2000 });
        let got = 0;
        for await (const m of batch) {
          got++;
          try { out.push(m.json<LogEntry>()); } catch { this.logger.error({ shard: n, streamSeq: m.seq }, 'durable log entry is not JSON; skipped'); }
        }
        if (got === 0) break;
      }
    } finally {
      await c.delete().catch(() => {});
    }
    return out;
  }
}

/**
 * The entries of a log that extend a state at (epoch, seq), in order. A
 * master of a higher epoch continues from what it had, so where epochs
 * overlap the higher epoch's entries replace the lower's from its first
 * seq on (the lower's were never acknowledged). Stops at the first gap;
 * returns how many entries past it were dropped.
 */
export function chainFrom(entries: LogEntry[], epoch: number, seq: number): { chain: LogEntry[]; dropped: number } {
  const byEpoch = new Map<number, LogEntry[]>();
  for (const e of entries) {
    if (e.e < epoch || e.s <= seq) continue;
    const list = byEpoch.get(e.e);
    if (list) list.push(e); else byEpoch.set(e.e, [e]);
  }
  const bySeq = new Map<number, LogEntry>();
  for (const ep of [...byEpoch.keys()].sort((a, b) => a - b)) {
    const list = byEpoch.get(ep)!;
    let min = Infinity;
    for (const e of list) if (e.s < min) min = e.s;
    for (const s of [...bySeq.keys()]) if (s >= min) bySeq.delete(s);
    for (const e of list) bySeq.set(e.s, e);
  }
  const chain: LogEntry[] = [];
  for (let s = seq + 1; bySeq.has(s); s++) chain.push(bySeq.get(s)!);
  return { chain, dropped: bySeq.size - chain.length };
}
