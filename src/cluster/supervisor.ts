/**
 * The OTP-style restart policy of the primary: a crashed worker is restarted
 * after a backoff that doubles with each restart inside the window (capped at
 * 5 s); more than `maxRestarts` restarts within `restartWindowMs` means
 * something is wrong beyond one worker, and the host gives up (exits non-zero)
 * so systemd restarts it whole. Moleculer's immediate re-fork loop is what
 * this avoids.
 */
export class RestartPolicy {
  private readonly recent: number[] = [];
  total = 0;

  constructor(private readonly opts: { maxRestarts: number; windowMs: number; backoffMs: number }) {}

  /**
   * Records a crash at `now` (ms). Returns the delay before restarting, or
   * null when the intensity limit is passed and the host must give up.
   */
  onCrash(now: number): number | null {
    while (this.recent.length > 0 && now - this.recent[0]! > this.opts.windowMs) this.recent.shift();
    if (this.recent.length >= this.opts.maxRestarts) return null;
    const delay = Math.min(5000, this.opts.backoffMs * 2 ** this.recent.length);
    this.recent.push(now);
    this.total++;
    return delay;
  }

  get inWindow(): number { return this.recent.length; }
}

/** What the primary knows about a worker's exit. */
export interface ExitFacts {
  readonly code: number | null;
  readonly signal: string | null;
  /** The primary killed it for not answering pings. */
  readonly killedAsHung: boolean;
  /** It reported restoring shards from JetStream when it died. */
  readonly restoring: boolean;
  /** It had answered a ping (its code is loaded and its loop runs). */
  readonly answered: boolean;
  /** It had reported listening (start-up finished). */
  readonly started: boolean;
  /** Its last reported heap use over its heap limit (0 when unknown). */
  readonly heapShare: number;
}

/** The exit's kind, the same for the same fault every time, and what an operator can do about it. */
export interface ExitCause { readonly kind: string; readonly why: string; readonly todo: string }

/**
 * A worker that is starting (no pong yet since its fork: it is still loading
 * its code) or says it is restoring shards gets this many times
 * cluster.workerHangMs to answer a ping before it is killed: restores yield
 * to the event loop between chunks, so a longer silence is a real stall,
 * but a stall of a few seconds on a loaded machine is not worth losing every
 * restore made so far (or a start that was nearly done).
 */
export const RESTORE_HANG_FACTOR = 3;

/** Past this share of its heap limit, a worker that aborted ran out of memory. */
const OOM_SHARE = 0.85;

/** Names a worker's exit so that the same fault gets the same name (and advice) every time. */
export function classifyExit(f: ExitFacts, keys: { workerHangMs: number; workerHeapMb: number; budgetMb: number }): ExitCause {
  if (f.killedAsHung && f.restoring) {
    return { kind: 'hung-restoring', why: `killed for not answering pings for cluster.workerHangMs (${keys.workerHangMs} ms) while restoring shards from JetStream`, todo: 'raise cluster.workerHangMs, or lower persistence.maxSnapshotBytes so that each shard restores in less time; the snapshots themselves are intact' };
  }
  if (f.killedAsHung && !f.answered) {
    return { kind: 'hung-starting', why: `killed before it answered its first ping, ${RESTORE_HANG_FACTOR} × cluster.workerHangMs (${keys.workerHangMs} ms) after it was forked: it was still loading its code`, todo: 'the machine is too slow or too loaded for cluster.workerHangMs: raise it, or give the host more CPU' };
  }
  if (f.killedAsHung) {
    return { kind: 'hung', why: `killed for not answering pings for cluster.workerHangMs (${keys.workerHangMs} ms)`, todo: 'look at the worker\'s last log lines and sandbar_event_loop_delay_ms; a loop stalled by garbage collection near the heap limit needs a smaller storage.budgetMb or a larger cluster.workerHeapMb' };
  }
  const aborted = f.signal === 'SIGABRT' || f.code === 134;
  if (aborted || (f.heapShare >= OOM_SHARE && f.code !== 0)) {
    return { kind: 'out-of-memory', why: `${aborted ? 'aborted' : 'died'} with its heap at ${Math.round(f.heapShare * 100)} % of its limit (cluster.workerHeapMb = ${keys.workerHeapMb} MiB): it most likely ran out of memory`, todo: `lower storage.budgetMb (now ${keys.budgetMb || 'derived: 40 % of the heap'}) or raise cluster.workerHeapMb, and check the machine has the memory for every worker` };
  }
  if (!f.started) {
    return { kind: 'start-failed', why: `failed during start-up (exit code ${f.code}, signal ${f.signal})`, todo: 'read the worker\'s "worker failed to start" line: a taken port, NATS or JetStream unreachable, or a file it cannot read' };
  }
  if (f.code === 70) {
    return { kind: 'uncaught', why: 'an exception escaped the actor guards (exit code 70)', todo: 'the worker logged it as "uncaught exception escaped the actor guards": report it with that line' };
  }
  return { kind: `exit-${f.code}-${f.signal}`, why: `exited with code ${f.code}, signal ${f.signal}`, todo: 'read the worker\'s last log lines; a signal nobody in Sandbar sent comes from outside (the OOM killer: see dmesg)' };
}

/** The same fault this many times in a row on one worker slot gets one clear line. */
export const SAME_EXIT_IN_A_ROW = 3;

/**
 * Consecutive exits of the same kind per worker slot. A worker that keeps
 * dying the same way is restarted while the intensity allows it (the host
 * then exits, and says why); {@link record} says when the streak has become
 * a loop worth one error line.
 */
export class ExitStreaks {
  private readonly last = new Map<number, { kind: string; n: number }>();
  /** The longest streak seen, for the line the host gives up with. */
  private worst: { cause: ExitCause; n: number } | null = null;

  /** Records an exit of slot; returns how many exits of this kind it has had in a row. */
  record(slot: number, cause: ExitCause): number {
    const s = this.last.get(slot);
    const n = s && s.kind === cause.kind ? ++s.n : 1;
    if (n === 1) this.last.set(slot, { kind: cause.kind, n });
    if (n >= SAME_EXIT_IN_A_ROW && (!this.worst || n >= this.worst.n)) this.worst = { cause, n };
    return n;
  }

  /** Why the host gives up: the loop it is in, with what to do, else the last exit. */
  givingUp(last: ExitCause): string {
    const w = this.worst;
    return w ? `it keeps dying the same way (${w.n} times in a row: ${w.cause.why}). What to do: ${w.cause.todo}` : `last exit: ${last.why}`;
  }
}
