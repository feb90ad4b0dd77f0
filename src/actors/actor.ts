/**
 * The actor runtime: a mailbox processed one message at a time, every entry
 * point guarded, and a stop with a reason that runs cleanup and tells the link.
 *
 * The shape is Erlang's gen_server: `handle` is handle_cast/handle_info (one
 * tagged message type per actor class), `terminate` runs once on stop, and a
 * throw or rejection inside any entry point stops *that actor* with the error
 * as its reason; it never reaches other actors. JavaScript actors share one
 * heap, so this is soft isolation: the worker process is the hard boundary,
 * and only a fault that escapes these guards ends it (the primary restarts it).
 *
 * Cost matters (two million sessions is the target): an idle actor is a few
 * fields; the mailbox array exists only while messages wait behind an async
 * handler.
 */

/** Why an actor stopped. `normal` and `shutdown` are clean; anything else is a crash. */
export type StopReason =
  | { readonly kind: 'normal' }
  | { readonly kind: 'shutdown' }
  | { readonly kind: 'crash'; readonly error: unknown }
  | { readonly kind: 'other'; readonly code: string; readonly message: string };

export const NORMAL: StopReason = Object.freeze({ kind: 'normal' });
export const SHUTDOWN: StopReason = Object.freeze({ kind: 'shutdown' });

/** Whoever must hear of an actor's stop: its supervisor or a linked actor. */
export interface ActorLink {
  onActorExit(actor: Actor<any>, reason: StopReason): void;
}

const RUNNING = 0;
const STOPPING = 1;
const STOPPED = 2;

export abstract class Actor<M> {
  /** Messages waiting while an async handler runs; null when empty. */
  private mailbox: M[] | null = null;
  private busy = false;
  private state = RUNNING;

  constructor(protected link: ActorLink | null) {}

  /** Handles one message. A returned promise holds the mailbox until it settles. */
  protected abstract handle(msg: M): void | Promise<void>;

  /** Cleanup; runs exactly once, guarded. */
  protected terminate(_reason: StopReason): void {}

  get alive(): boolean { return this.state === RUNNING; }

  /** Delivers a message: at once when idle, else after the messages before it. */
  send(msg: M): void {
    if (this.state !== RUNNING) return;
    if (this.busy) {
      (this.mailbox ??= []).push(msg);
      return;
    }
    this.run(msg);
  }

  /**
   * Runs fn as an entry point of this actor (a timer, a socket event that is
   * not a message): a throw stops the actor like a handler's would.
   */
  guard(fn: () => void): void {
    if (this.state !== RUNNING) return;
    try { fn(); } catch (error) { this.crash(error); }
  }

  /** Stops the actor: drops queued messages, runs terminate, tells the link. Idempotent. */
  stop(reason: StopReason = NORMAL): void {
    if (this.state !== RUNNING) return;
    this.state = STOPPING;
    this.mailbox = null;
    try { this.terminate(reason); } catch (error) {
      // A failing cleanup must not hide the original reason; the link logs both.
      if (reason.kind !== 'crash') reason = { kind: 'crash', error };
    }
    this.state = STOPPED;
    const link = this.link;
    this.link = null;
    link?.onActorExit(this, reason);
  }

  protected crash(error: unknown): void {
    this.stop({ kind: 'crash', error });
  }

  private run(first: M): void {
    // busy also covers synchronous handlers, so a handler that sends to its
    // own actor queues the message instead of re-entering.
    this.busy = true;
    let msg: M | undefined = first;
    while (msg !== undefined && this.state === RUNNING) {
      let result: void | Promise<void>;
      try {
        result = this.handle(msg);
      } catch (error) {
        this.busy = false;
        this.crash(error);
        return;
      }
      if (result !== undefined && typeof (result as Promise<void>).then === 'function') {
        (result as Promise<void>).then(
          () => { this.busy = false; this.drain(); },
          (error: unknown) => { this.busy = false; this.crash(error); },
        );
        return;
      }
      msg = this.takeNext();
    }
    this.busy = false;
  }

  private takeNext(): M | undefined {
    const box = this.mailbox;
    if (!box) return undefined;
    const next = box.shift();
    if (box.length === 0) this.mailbox = null;
    return next;
  }

  private drain(): void {
    if (this.state !== RUNNING) return;
    const next = this.takeNext();
    if (next !== undefined) this.run(next);
  }
}
