/**
 * Time source for actors and timers. Production uses the monotonic clock;
 * unit tests use SimulatedClock and advance it by hand (xstate's SimulatedClock idea).
 */
export interface Clock {
  /** Monotonic milliseconds; only differences are meaningful. */
  now(): number;
  /** Calls fn every ms; the returned handle stops it. Never keeps the process alive. */
  every(ms: number, fn: () => void): { cancel(): void };
}

export const systemClock: Clock = {
  now: () => performance.now(),
  every(ms, fn) {
    const t = setInterval(fn, ms);
    t.unref();
    return { cancel: () => clearInterval(t) };
  },
};

/** A clock that moves only when the test says so. */
export class SimulatedClock implements Clock {
  private t = 0;
  private readonly intervals = new Set<{ ms: number; next: number; fn: () => void }>();
  now(): number { return this.t; }
  every(ms: number, fn: () => void): { cancel(): void } {
    const iv = { ms, next: this.t + ms, fn };
    this.intervals.add(iv);
    return { cancel: () => { this.intervals.delete(iv); } };
  }
  /** Moves time forward, firing each interval as many times as it is due, in time order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let due: { ms: number; next: number; fn: () => void } | undefined;
      for (const iv of this.intervals) if (iv.next <= end && (!due || iv.next < due.next)) due = iv;
      if (!due) break;
      this.t = due.next;
      due.next += due.ms;
      due.fn();
    }
    this.t = end;
  }
}
