/**
 * One shared coarse timer for many deadlines (idle sessions, stopping idle
 * actors, pending-reply expiry). A per-actor setTimeout costs a Timeout object
 * and a closure per actor; two million sessions would hold two million of them.
 * Here a deadline is a slot in a Map of Sets, and one interval sweeps due slots
 * (the idea of undici's util/timers.js).
 *
 * Entries are objects with an `onTimer` method, not closures; each carries its
 * own slot so cancelling is O(1). Deadlines fire up to one tick late, never early.
 */
import type { Clock } from './clock.js';

export interface TimerEntry {
  /** Slot the entry is scheduled in, or -1. Owned by the wheel. */
  timerSlot: number;
  onTimer(now: number): void;
}

export class TimerWheel {
  private readonly slots = new Map<number, Set<TimerEntry>>();
  private nextSlot: number;
  private readonly ticker: { cancel(): void };
  /** Called when an entry's onTimer throws; the wheel itself goes on. */
  onError: (err: unknown, entry: TimerEntry) => void = () => {};

  constructor(readonly clock: Clock, readonly tickMs: number) {
    this.nextSlot = Math.floor(clock.now() / tickMs);
    this.ticker = clock.every(tickMs, () => this.sweep());
  }

  /** Schedules (or moves) entry to fire at or after atMs (clock time). */
  schedule(entry: TimerEntry, atMs: number): void {
    // Round up so a deadline never fires early.
    let slot = Math.ceil(atMs / this.tickMs);
    if (slot < this.nextSlot) slot = this.nextSlot;
    if (entry.timerSlot === slot) return;
    this.cancel(entry);
    let set = this.slots.get(slot);
    if (!set) { set = new Set(); this.slots.set(slot, set); }
    set.add(entry);
    entry.timerSlot = slot;
  }

  cancel(entry: TimerEntry): void {
    if (entry.timerSlot < 0) return;
    const set = this.slots.get(entry.timerSlot);
    if (set) { set.delete(entry); if (set.size === 0) this.slots.delete(entry.timerSlot); }
    entry.timerSlot = -1;
  }

  get size(): number {
    let n = 0;
    for (const s of this.slots.values()) n += s.size;
    return n;
  }

  /** Fires every slot whose time has come. Exposed for tests; the interval calls it. */
  sweep(): void {
    const nowSlot = Math.floor(this.clock.now() / this.tickMs);
    const now = this.clock.now();
    while (this.nextSlot <= nowSlot) {
      const slot = this.nextSlot++;
      const set = this.slots.get(slot);
      if (!set) continue;
      this.slots.delete(slot);
      for (const entry of set) {
        entry.timerSlot = -1;
        try { entry.onTimer(now); } catch (err) { this.onError(err, entry); }
      }
    }
  }

  stop(): void { this.ticker.cancel(); this.slots.clear(); }
}
