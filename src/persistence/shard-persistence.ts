/**
 * Durability beyond the in-memory replicas (docs/durability.md):
 * one per worker, it writes the snapshots of the shards the worker masters
 * (periodically, only those that changed, and on a graceful stop with no
 * live successor), owns the durable log in mode "log", and loads a shard's
 * last state (snapshot + log tail) for a master that has no copy of it.
 */
import { whileJetStreamElects } from '../placement/ownership.js';
import type { NatsConnection } from '@nats-io/transport-node';
import type { SandbarConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import type { Subjects } from '../bus/subjects.js';
import type { ShardSnapshot } from '../actors/replication.js';
import { SandbarError } from '../errors.js';
import { SnapshotStore, ensureSnapshotBucket, type LoadedSnapshot, type SaveResult } from './snapshot-store.js';
import { ThrottledLog } from '../storage/throttled-log.js';
import { ShardLog, chainFrom, ensureLogStream, type LogEntry } from './shard-log.js';

/** What a worker's shard host offers to persistence. */
export interface PersistedShards {
  /** Shards this worker serves as master, with their last seq. */
  served(): { n: number; seq: number }[];
  /** Shard n's state now, with its epoch and seq at this instant; null when it is no longer here (handed off meanwhile). */
  capture(n: number): { epoch: number; seq: number; snap: ShardSnapshot } | null;
}

export interface Restored { epoch: number; seq: number; snap: ShardSnapshot | null; chain: LogEntry[] }

/** Snapshots written at once during a graceful stop. */
const STOP_PARALLEL = 8;

/** The primary creates the bucket (and the stream in mode log) once, before workers claim shards. */
export async function ensurePersistence(nc: NatsConnection, config: SandbarConfig, subjects: Subjects, logger?: Logger): Promise<void> {
  if (config.persistence.mode === 'none') return;
  const p = config.persistence;
  await whileJetStreamElects(() => ensureSnapshotBucket(nc, config.cluster.name, p.snapshotStoreMaxBytes), 'snapshot bucket', logger);
  if (p.mode === 'log') await whileJetStreamElects(() => ensureLogStream(nc, config.cluster.name, subjects, p.logMaxBytes), 'log stream', logger);
}

export class ShardPersistence {
  /** Last seq written per shard (only changed shards are written again). */
  private readonly saved = new Map<number, number>();
  private timer: NodeJS.Timeout | null = null;
  private periodic: Promise<void> | null = null;
  private stopped = false;
  /** Shards being loaded from JetStream now (reported to the primary: restoring is not hung). */
  restoring = 0;
  /** Told when restoring goes from 0 to more, and back to 0. */
  onRestoring: (shards: number) => void = () => {};
  /** Snapshots not written because their store was full (SANDBAR_ERR_JETSTREAM_FULL). */
  storeFull = 0;
  private readonly fullLog = new ThrottledLog(10_000);

  private constructor(
    private readonly store: SnapshotStore,
    readonly log: ShardLog | null,
    private readonly config: SandbarConfig,
    private readonly logger: Logger,
  ) {}

  static async open(nc: NatsConnection, config: SandbarConfig, subjects: Subjects, worker: number, logger: Logger, onLogged: (n: number) => void): Promise<ShardPersistence> {
    const store = await SnapshotStore.open(nc, config.cluster.name);
    const log = config.persistence.mode === 'log' ? new ShardLog(nc, subjects, config.hostId, worker, logger, onLogged, config.persistence.logMaxBytes) : null;
    await log?.start();
    return new ShardPersistence(store, log, config, logger);
  }

  /** Periodic snapshots of the shards that changed. */
  start(shards: PersistedShards): void {
    this.timer = setInterval(() => {
      if (this.periodic || this.stopped) return;
      this.periodic = this.saveChanged(shards, false).catch((err) => this.logger.error({ err }, 'periodic snapshots failed')).finally(() => { this.periodic = null; });
    }, this.config.persistence.snapshotIntervalMs);
    this.timer.unref();
  }

  /**
   * Graceful stop with no live successor: every changed shard is written
   * (STOP_PARALLEL at a time) within budgetMs. The caller stopped serving
   * the shards first, so nothing changes after its snapshot.
   */
  async stop(shards: PersistedShards, budgetMs: number): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    const t0 = Date.now();
    await this.periodic;
    const all = await Promise.race([
      this.saveChanged(shards, true).then(() => true),
      new Promise<false>((r) => setTimeout(() => r(false), Math.max(0, budgetMs - (Date.now() - t0))).unref()),
    ]);
    if (!all) this.logger.error({ budgetMs }, 'not every shard snapshot was written within the stop budget (cluster.shutdownTimeoutMs): the missing shards come back from their previous snapshot');
    else this.logger.info({ ms: Date.now() - t0 }, 'shard snapshots written before stop');
    this.log?.stop();
  }

  private async saveChanged(shards: PersistedShards, final: boolean): Promise<void> {
    const todo = shards.served().filter((s) => s.seq > 0 && this.saved.get(s.n) !== s.seq);
    const parallel = final ? STOP_PARALLEL : 1;
    let next = 0;
    const run = async () => {
      // A periodic round gives way to the stop's own (which has a budget).
      while (next < todo.length && (final || !this.stopped)) {
        const s = todo[next++]!;
        const c = shards.capture(s.n);
        if (!c) continue;
        try { await this.save(s.n, c.epoch, c.seq, c.snap, final); } catch (err) {
          this.logger.error({ shard: s.n, err: (err as Error).message }, 'shard snapshot not written; retried at the next interval');
        }
      }
    };
    await Promise.all(Array.from({ length: parallel }, run));
  }

  /**
   * Writes shard n's snapshot at (epoch, seq), a chunk at a time, then trims
   * the log it covers. A shard past persistence.maxSnapshotBytes stops being
   * written at that point (the storage budget keeps shards below it, so this
   * is rare); a full bucket is an error naming the store, at once.
   */
  async save(n: number, epoch: number, seq: number, snap: ShardSnapshot, final: boolean): Promise<void> {
    const max = this.config.persistence.maxSnapshotBytes;
    const trimTo = this.log?.streamSeqAt(n, seq) ?? 0;
    let r: SaveResult;
    try { r = await this.store.save(n, epoch, seq, snap, final, max); } catch (err) {
      if (!(err instanceof SandbarError) || err.code !== 'SANDBAR_ERR_JETSTREAM_FULL') throw err;
      this.storeFull++;
      if (this.fullLog.hit(Date.now())) this.logger.error({ shard: n, code: err.code, notWritten: this.fullLog.take(), err: err.message }, 'shard snapshot not written: the snapshot bucket is full; its previous snapshot (and, in mode log, its log) stays (persistence.snapshotStoreMaxBytes)');
      return;
    }
    if (!r.ok && r.why === 'too-big') {
      this.logger.error({ shard: n, bytes: r.bytes, maxSnapshotBytes: max }, 'shard snapshot exceeds persistence.maxSnapshotBytes: not written; its previous snapshot (and, in mode log, its log) stays');
      return;
    }
    if (!r.ok) {
      this.logger.warn({ shard: n, epoch }, 'a newer master wrote this shard\'s snapshot; ours is dropped');
      return;
    }
    this.saved.set(n, seq);
    if (trimTo > 0) await this.log!.trim(n, trimTo).catch((err) => this.logger.warn({ shard: n, err: (err as Error).message }, 'durable log not trimmed; the next snapshot trims it'));
  }

  /**
   * Shard n's last state: its snapshot, then the log entries that follow it.
   * A corrupt snapshot is never used: the shard comes back from the log
   * alone when the log reaches back to seq 1, else empty, with an error
   * naming the shard either way. Throws when JetStream cannot be read (the
   * caller retries rather than start the shard empty).
   */
  async load(n: number): Promise<Restored | null> {
    if (this.restoring++ === 0) this.onRestoring(1);
    try { return await this.loadShard(n); } finally {
      if (--this.restoring === 0) this.onRestoring(0);
    }
  }

  private async loadShard(n: number): Promise<Restored | null> {
    let loaded: LoadedSnapshot | null = null;
    let corrupt: string | null = null;
    try { loaded = await this.store.load(n); } catch (err) {
      if (!(err instanceof SandbarError) || err.code !== 'SANDBAR_ERR_SNAPSHOT_CORRUPT') throw err;
      corrupt = err.message;
    }
    const entries = this.log ? await this.log.read(n) : [];
    const epoch = loaded?.head.epoch ?? 0;
    const seq = loaded?.head.seq ?? 0;
    const { chain, dropped } = chainFrom(entries, epoch, seq);
    if (dropped > 0) this.logger.error({ shard: n, afterSeq: seq + chain.length, dropped }, 'durable log has a gap: the entries after it are not restored');
    if (corrupt) {
      if (chain.length > 0) {
        this.logger.error({ shard: n, code: 'SANDBAR_ERR_SNAPSHOT_CORRUPT', reason: corrupt, entries: chain.length }, 'shard snapshot is corrupt: restoring the shard from its durable log alone');
      } else {
        this.logger.error({ shard: n, code: 'SANDBAR_ERR_SNAPSHOT_CORRUPT', reason: corrupt }, 'shard snapshot is corrupt and no durable log covers the shard: it STARTS EMPTY (its users\' inboxes and rooms\' histories are lost)');
        return null;
      }
    }
    if (!loaded && chain.length === 0) return null;
    if (loaded && !loaded.head.final && !this.log) {
      this.logger.warn({ shard: n, snapshotAt: new Date(loaded.head.at).toISOString(), seq }, 'shard restored from a periodic snapshot (its host did not stop cleanly): writes acknowledged after it are lost, and their seqs will be given to new messages (mode snapshots; see docs/durability.md)');
    }
    this.saved.set(n, seq + chain.length);
    return { epoch, seq, snap: loaded?.snap ?? null, chain };
  }

  /** Mode log: whether shard n's writes must wait for the log (and how far it is durable). */
  loggedUpTo(n: number): number { return this.log?.loggedUpTo(n) ?? Infinity; }
}
