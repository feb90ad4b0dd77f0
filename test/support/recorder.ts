/**
 * The one way tests wait for something a process or a socket says: a
 * Recorder keeps every item in arrival order (a host's log lines, a client's
 * frames) and resolves `waitFor(pred)` with the first item, already seen or
 * still to come, that matches. A waiter ends in one of three ways, each with
 * a message that says what was awaited: the item arrived, the deadline
 * passed, or the source ended (the host exited, the socket closed) without
 * it. Items already recorded are never waited for.
 */

interface Waiter<T> {
  readonly pred: (item: T) => boolean;
  readonly resolve: (item: T) => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
}

export interface RecorderOptions {
  /** What is awaited, for the timeout message: "a log line", "a frame". */
  readonly what: string;
  /** Extra context for a failure message (a host's stderr, a socket's close code), read when the failure happens. */
  readonly context?: () => string;
  /** Items kept at most; later ones still resolve waiters but are not stored (a bench host's long log). Default: all. */
  readonly maxItems?: number;
}

export class Recorder<T> {
  /** Every item so far, in order (at most `maxItems`). */
  readonly items: T[] = [];
  private readonly waiters = new Set<Waiter<T>>();
  private ended: string | null = null;

  constructor(private readonly opts: RecorderOptions) {}

  /** Why the source ended, or null while it is live. */
  get endReason(): string | null { return this.ended; }

  push(item: T): void {
    if (this.items.length < (this.opts.maxItems ?? Infinity)) this.items.push(item);
    for (const w of this.waiters) {
      if (!w.pred(item)) continue;
      this.settle(w);
      w.resolve(item);
    }
  }

  /** Resolves with the first item from index `from` on (already recorded, or future) that matches. */
  waitFor(pred: (item: T) => boolean, timeoutMs: number, from = 0): Promise<T> {
    for (let i = from; i < this.items.length; i++) if (pred(this.items[i]!)) return Promise.resolve(this.items[i]!);
    if (this.ended !== null) return Promise.reject(new Error(this.failure(this.ended)));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(w);
        reject(new Error(this.failure(`timed out waiting for ${this.opts.what}`)));
      }, timeoutMs);
      const w: Waiter<T> = { pred, resolve, reject, timer };
      this.waiters.add(w);
    });
  }

  /**
   * The source ended: every waiter (and every later waitFor that no recorded
   * item satisfies) fails with `reason`. With `graceMs`, items that are still
   * on their way (a pipe being drained) get that long to satisfy a waiter.
   */
  end(reason: string, graceMs = 0): void {
    const finish = () => {
      if (this.ended !== null) return;
      this.ended = reason;
      for (const w of this.waiters) {
        this.settle(w);
        w.reject(new Error(this.failure(reason)));
      }
    };
    if (graceMs > 0) setTimeout(finish, graceMs).unref();
    else finish();
  }

  private settle(w: Waiter<T>): void {
    this.waiters.delete(w);
    clearTimeout(w.timer);
  }

  private failure(what: string): string {
    const ctx = this.opts.context?.();
    return ctx ? `${what}; ${ctx}` : what;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `pred` every `everyMs` until it holds; fails after `timeoutMs` with `what()` (evaluated then). */
export async function until(pred: () => boolean | Promise<boolean>, timeoutMs: number, what: () => string, everyMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what()}`);
    await sleep(everyMs);
  }
}
