/**
 * The storage budget of one worker: every byte of stored state its user and
 * room actors hold (inbox and history entries, dedup ids, the actors
 * themselves), counted as it is stored and uncounted as it goes, for master
 * and replica copies alike, in total and per shard.
 *
 * Only a master decides whether a new write fits ({@link StorageBudget.admit});
 * it stamps the answer into the command, and every copy (replicas, a restore
 * from the log) applies the stamp, never its own budget: two workers' budgets
 * differ, and a replica that refused on its own would no longer hold the
 * master's state (docs/storage.md).
 *
 * Past the high-water mark (the budget) new writes are refused with
 * SANDBAR_ERR_STORAGE_FULL; past the warning mark a warning is logged (at
 * most one a minute while above it) and counted. Reads, acks, deliveries and
 * leaves never ask: they are what lets the pressure drain.
 */
import type { SandbarConfig } from '../config/types.js';
import { SandbarError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { ThrottledLog } from './throttled-log.js';

const MiB = 1024 * 1024;
/** Share of the worker's heap limit the budget takes when storage.budgetMb is 0 (docs/storage.md says why). */
export const DEFAULT_HEAP_SHARE = 0.4;
/** One line per this many ms for refusals of one kind. */
const REFUSAL_LOG_MS = 10_000;
/** One warning per this many ms while above the warning mark. */
const WARN_LOG_MS = 60_000;

/**
 * Why a master refuses a write: `full`, the worker's budget; `share`, the
 * sender's share of it while the worker is past its warning mark; `shard`, the
 * shard's (persistence.maxSnapshotBytes, so its snapshot always fits);
 * `log`, the durable log in JetStream is full.
 */
export type Refusal = 'full' | 'share' | 'shard' | 'log';

export interface BudgetLimits {
  /** High-water mark: the budget, bytes. */
  readonly budget: number;
  /** Warning mark, bytes. */
  readonly warnAt: number;
  /** Most bytes one shard may hold (Infinity: no bound). */
  readonly perShard: number;
  /** Past warnAt, most bytes one sender's messages may hold on this worker (storage.senderSharePercent of the budget). */
  readonly perSender: number;
  readonly shards: number;
}

/** The budget's limits from the configuration and the worker's V8 heap limit (bytes). */
export function budgetLimits(config: SandbarConfig, heapLimit: number): BudgetLimits {
  const budget = config.storage.budgetMb > 0 ? config.storage.budgetMb * MiB : Math.floor(heapLimit * DEFAULT_HEAP_SHARE);
  return {
    budget,
    warnAt: Math.floor(budget * config.storage.warnPercent / 100),
    perSender: Math.floor(budget * config.storage.senderSharePercent / 100),
    perShard: config.persistence.mode === 'none' ? Infinity : config.persistence.maxSnapshotBytes,
    shards: config.shards,
  };
}

export class StorageBudget {
  /** Bytes counted now, master and replica copies. */
  bytes = 0;
  /** Writes refused because the worker was full, the shard was full, or the log was. */
  refusedFull = 0;
  refusedShare = 0;
  refusedShard = 0;
  refusedLog = 0;
  /** Warnings logged for passing the warning mark. */
  warnings = 0;
  /** Set by persistence in mode log: whether the durable log refuses appends (JetStream full). */
  logFull: () => boolean = () => false;
  private readonly perShard: Float64Array;
  /** Bytes of stored messages per sender (user id), master and replica copies on this worker. */
  private readonly bySender = new Map<string, number>();
  /** Most bytes one shard may hold: limits.perShard (persistence.maxSnapshotBytes). */
  readonly shardCap: number;
  private above = false;
  private lastWarn = -Infinity;
  private readonly logs = { full: new ThrottledLog(REFUSAL_LOG_MS), share: new ThrottledLog(REFUSAL_LOG_MS), shard: new ThrottledLog(REFUSAL_LOG_MS), log: new ThrottledLog(REFUSAL_LOG_MS) };

  constructor(readonly limits: BudgetLimits, private readonly logger: Logger | null = null, private readonly now: () => number = Date.now) {
    this.perShard = new Float64Array(limits.shards);
    this.shardCap = limits.perShard;
  }

  /** Counts delta bytes (negative: freed) in shard n. */
  add(n: number, delta: number): void {
    this.bytes += delta;
    this.perShard[n] += delta;
    if (delta > 0) {
      if (this.bytes >= this.limits.warnAt) this.high();
    } else if (this.above && this.bytes < this.limits.warnAt * 0.95) {
      this.above = false;
    }
  }

  /** Counts a stored message (delta > 0) or its removal (delta < 0) in shard n, as its sender's too. */
  entry(n: number, from: string, delta: number): void {
    const had = this.bySender.get(from) ?? 0;
    const now = had + delta;
    if (now > 0.5) this.bySender.set(from, now); else this.bySender.delete(from);
    this.add(n, delta);
  }

  shardBytes(n: number): number { return this.perShard[n] ?? 0; }

  senderBytes(from: string): number { return this.bySender.get(from) ?? 0; }

  /** Senders with stored messages on this worker. */
  get senders(): number { return this.bySender.size; }

  /**
   * Master only: whether `bytes` more from sender `from` fit in shard n; the
   * reason when not (counted and logged, at most one line per kind every
   * 10 s). Past the warning mark, a sender that already holds its share
   * (limits.perSender) is refused while the others still get in: the last
   * part of the budget is kept for those who did not fill the rest.
   */
  admit(n: number, bytes: number, from: string): Refusal | undefined {
    if (this.bytes + bytes > this.limits.budget) return this.refuse('full');
    if (this.bytes >= this.limits.warnAt && (this.bySender.get(from) ?? 0) + bytes > this.limits.perSender) return this.refuse('share', undefined, from);
    if (this.perShard[n]! + bytes > this.shardCap) return this.refuse('shard', n);
    if (this.logFull()) return this.refuse('log');
    return undefined;
  }

  private refuse(why: Refusal, shard?: number, from?: string): Refusal {
    if (why === 'full') this.refusedFull++;
    else if (why === 'share') this.refusedShare++;
    else if (why === 'shard') this.refusedShard++;
    else this.refusedLog++;
    const log = this.logs[why];
    if (this.logger && log.hit(this.now())) {
      const refused = log.take();
      if (why === 'full') {
        this.logger.error({ code: 'SANDBAR_ERR_STORAGE_FULL', storedBytes: Math.round(this.bytes), budgetBytes: this.limits.budget, refused }, 'storage budget full: new writes on this worker\'s shards are refused until acks, expiry or trimming free room (storage.budgetMb)');
      } else if (why === 'share') {
        this.logger.warn({ code: 'SANDBAR_ERR_STORAGE_FULL', sender: from, senderBytes: Math.round(this.bySender.get(from!) ?? 0), senderShareBytes: this.limits.perSender, storedBytes: Math.round(this.bytes), refused }, 'storage past its warning mark: senders holding more than storage.senderSharePercent of the budget are refused, others still get in');
      } else if (why === 'shard') {
        this.logger.error({ code: 'SANDBAR_ERR_STORAGE_FULL', shard, shardBytes: Math.round(this.perShard[shard!]!), shardCapBytes: this.shardCap, refused }, 'shard holds the most one shard may (persistence.maxSnapshotBytes): new writes to it are refused');
      } else {
        this.logger.error({ code: 'SANDBAR_ERR_JETSTREAM_FULL', refused }, 'the durable log in JetStream is full: new writes are refused until snapshots trim it (persistence.logMaxBytes)');
      }
    }
    return why;
  }

  private high(): void {
    const now = this.now();
    if (this.above && now - this.lastWarn < WARN_LOG_MS) return;
    this.above = true;
    this.lastWarn = now;
    this.warnings++;
    this.logger?.warn({ storedBytes: Math.round(this.bytes), warnBytes: this.limits.warnAt, budgetBytes: this.limits.budget }, 'stored state passed storage.warnPercent of this worker\'s budget');
  }
}

/** The error a refused write's sender gets (a reply, never a crash or a silent drop). */
export function refusalError(why: Refusal, where: string): SandbarError {
  if (why === 'log') return new SandbarError('SANDBAR_ERR_JETSTREAM_FULL', `not stored: the durable log in JetStream is full (persistence.logMaxBytes); retry later`);
  if (why === 'share') return new SandbarError('SANDBAR_ERR_STORAGE_FULL', `not stored: the worker that holds ${where} is short of room and this sender's messages there hold more than their share (storage.senderSharePercent); retry after they are acknowledged`);
  if (why === 'shard') return new SandbarError('SANDBAR_ERR_STORAGE_FULL', `not stored: the shard of ${where} holds the most one shard may; retry after messages are acknowledged`);
  return new SandbarError('SANDBAR_ERR_STORAGE_FULL', `not stored: the worker that holds ${where} is at its storage budget (storage.budgetMb); retry later`);
}
