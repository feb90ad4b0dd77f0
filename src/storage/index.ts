/**
 * What a worker bounds its stored state with (docs/storage.md): the storage
 * budget its user and room actors count into, the per-sender budgets its
 * channels check, and the counters of what was refused or expired, exposed
 * as plain numbers in the worker's stats.
 *
 * One per worker. The actors and channels find it through the worker's bus,
 * which both already hold ({@link storageOf}); code that attached none (unit
 * tests of other parts) gets an unbounded one.
 */
import type { SandbarConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import { StorageBudget, budgetLimits } from './budget.js';
import { SenderBudget } from './sender-budget.js';
import { ThrottledLog } from './throttled-log.js';

export { StorageBudget, budgetLimits, refusalError, DEFAULT_HEAP_SHARE, type BudgetLimits, type Refusal } from './budget.js';
export { SenderBudget, MAX_SENDERS, type SenderLimits } from './sender-budget.js';
export { ENTRY_OVERHEAD, DEDUP_OVERHEAD, USER_OVERHEAD, ROOM_OVERHEAD, entryBytes, dedupBytes, dedupSlotBytes, measureBody } from './estimate.js';
export { ThrottledLog } from './throttled-log.js';

/** One line a minute at most about expired inbox messages. */
const EXPIRY_LOG_MS = 60_000;

export class WorkerStorage {
  /** Unacknowledged messages dropped for user.inboxTtlMs (counted where the master dropped them). */
  inboxExpired = 0;
  /** Room messages dropped from a history for room.historyMaxBytes (masters). */
  historyTrimmed = 0;
  private readonly expiryLog = new ThrottledLog(EXPIRY_LOG_MS);

  constructor(readonly budget: StorageBudget, readonly senders: SenderBudget, private readonly logger: Logger | null = null) {}

  static create(config: SandbarConfig, heapLimit: number, logger: Logger | null): WorkerStorage {
    const s = config.sender;
    return new WorkerStorage(
      new StorageBudget(budgetLimits(config, heapLimit), logger),
      new SenderBudget({ newRecipientsPerMin: s.newRecipientsPerMin, newRoomsPerMin: s.newRoomsPerMin, bytesPerMin: s.bytesPerMin, maxBodyBytes: config.message.maxBytes }, undefined, logger),
      logger,
    );
  }

  /** Dms refused because the recipient's inbox was full (user.inboxMax, user.inboxMaxBytes), where the master refused them. */
  inboxFull = 0;
  private readonly inboxFullLog = new ThrottledLog(10_000);

  /** A master refused a dm to `user`'s full inbox. */
  refusedInbox(user: string): void {
    this.inboxFull++;
    if (this.logger && this.inboxFullLog.hit(Date.now())) this.logger.info({ code: 'SANDBAR_ERR_INBOX_FULL', refused: this.inboxFullLog.take(), lastUser: user }, 'dms refused: the recipient\'s inbox is full (user.inboxMax, user.inboxMaxBytes)');
  }

  /** A master dropped n expired messages of user `user`. */
  expired(n: number, user: string): void {
    this.inboxExpired += n;
    if (this.logger && this.expiryLog.hit(Date.now())) {
      this.logger.warn({ expired: this.expiryLog.take(), lastUser: user }, 'unacknowledged inbox messages expired and were dropped (user.inboxTtlMs)');
    }
  }

  /** Plain numbers for the worker's stats (the primary aggregates them). */
  stats(): StorageStats {
    const b = this.budget;
    const r = this.senders.refused;
    return {
      storageBytes: Math.round(b.bytes), storageBudgetBytes: b.limits.budget, storageWarnings: b.warnings,
      storageRefusedFull: b.refusedFull, storageRefusedShare: b.refusedShare, storageRefusedShard: b.refusedShard, storageRefusedLog: b.refusedLog, storageSenders: b.senders,
      sendQuotaRefused: r.recipients + r.rooms + r.bytes, inboxFull: this.inboxFull, inboxExpired: this.inboxExpired, historyTrimmed: this.historyTrimmed,
    };
  }
}

export interface StorageStats {
  storageBytes: number;
  storageBudgetBytes: number;
  storageWarnings: number;
  storageRefusedFull: number;
  storageRefusedShare: number;
  storageRefusedShard: number;
  storageSenders: number;
  storageRefusedLog: number;
  sendQuotaRefused: number;
  inboxFull: number;
  inboxExpired: number;
  historyTrimmed: number;
}

const UNBOUNDED = new WorkerStorage(
  new StorageBudget({ budget: Infinity, warnAt: Infinity, perShard: Infinity, perSender: Infinity, shards: 1 }),
  new SenderBudget({ newRecipientsPerMin: 0, newRoomsPerMin: 0, bytesPerMin: 0, maxBodyBytes: 0 }),
);

const byBus = new WeakMap<object, WorkerStorage>();

/** The worker gives its storage to everything that holds its bus. */
export function attachStorage(bus: object, storage: WorkerStorage): void {
  byBus.set(bus, storage);
}

export function storageOf(bus: object): WorkerStorage {
  return byBus.get(bus) ?? UNBOUNDED;
}
