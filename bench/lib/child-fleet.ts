/**
 * The one fleet of forked client processes every bench drives (the load
 * fleet, the dm and room workload, presence churn, failover): n copies of a
 * client script, each told what to do over IPC (plain JSON), each its own
 * source address on loopback.
 *
 * The protocol a client speaks (bench/lib/child.ts is its side):
 * - it says `{t: 'ready'}` once it can take requests (after `init`, when the
 *   fleet sends one right after the fork);
 * - it answers every request `{…, id}` with a message carrying the same `id`;
 * - it says `{t: 'fatal', error}` when it cannot go on;
 * - anything else without an `id` is an event for `onEvent` (progress).
 *
 * Every request has a deadline; the first fatal error or unexpected exit
 * fails every pending request at once and is kept as `failure`. Children are
 * SIGKILLed if this process exits first, and exit by themselves when it dies
 * (IPC disconnect).
 */
import { fork, type ChildProcess } from 'node:child_process';

type FromChild = { readonly t: string; readonly id?: number; readonly error?: string };

export interface ChildFleetOptions<ToChild, ToParent> {
  /** The client script, forked n times. */
  readonly script: string;
  readonly n: number;
  /** Environment added for child i. */
  readonly env?: (i: number) => Record<string, string>;
  /** Sent to child i right after its fork; it says ready once it took it. */
  readonly init?: (i: number) => ToChild;
  /** Messages a child sends unasked (neither ready, fatal nor an answer). */
  readonly onEvent?: (i: number, m: ToParent) => void;
  /** The first failure: a child's fatal error, or a child that exited while the fleet was not closing. */
  readonly onFailure?: (kind: 'fatal' | 'exit', why: string) => void;
}

interface Waiter { resolve: (m: FromChild) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }

const live = new Set<ChildProcess>();
let exitHook = false;
function killChildrenOnExit(): void {
  if (exitHook) return;
  exitHook = true;
  process.on('exit', () => {
    for (const c of live) c.kill('SIGKILL');
  });
}

/** Splits n items over p parts as evenly as possible: [first, count] per part. */
export function split(n: number, p: number): [number, number][] {
  const q = Math.floor(n / p);
  const r = n % p;
  const out: [number, number][] = [];
  let first = 0;
  for (let i = 0; i < p; i++) {
    const c = q + (i < r ? 1 : 0);
    out.push([first, c]);
    first += c;
  }
  return out;
}

/** Source address of client process i: sourceAddresses[i % length], or 127.0.0.(2+i). */
export function sourceAddress(i: number, sourceAddresses?: readonly string[]): string {
  return sourceAddresses?.length ? sourceAddresses[i % sourceAddresses.length]! : `127.0.0.${2 + i}`;
}

export class ChildFleet<ToChild extends { readonly t: string }, ToParent extends FromChild> {
  private readonly children: ChildProcess[] = [];
  private readonly waiters = new Map<number, Waiter>();
  private nextId = 1;
  private closing = false;
  /** The first fatal error or unexpected exit, if any. */
  failure: string | undefined;

  private constructor(private readonly o: ChildFleetOptions<ToChild, ToParent>) {}

  /** Forks the children and waits until each said ready (killing them all if one does not). */
  static async start<C extends { readonly t: string }, P extends FromChild>(o: ChildFleetOptions<C, P>): Promise<ChildFleet<C, P>> {
    const f = new ChildFleet<C, P>(o);
    try {
      await Promise.all(Array.from({ length: o.n }, (_, i) => f.spawn(i)));
    } catch (err) {
      f.kill();
      throw err;
    }
    return f;
  }

  get size(): number {
    return this.children.length;
  }

  /** Whether child i can still be asked (its IPC channel is open). */
  connected(i: number): boolean {
    return this.children[i]?.connected ?? false;
  }

  private spawn(i: number): Promise<void> {
    killChildrenOnExit();
    const c = fork(this.o.script, [], { env: { ...process.env, ...this.o.env?.(i) }, execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'json' });
    live.add(c);
    this.children.push(c);
    const ready = new Promise<void>((resolve, reject) => {
      const onReady = (m: FromChild) => {
        if (m.t === 'ready') {
          c.off('message', onReady);
          resolve();
        } else if (m.t === 'fatal') reject(new Error(`client ${i}: ${m.error}`));
      };
      c.on('message', onReady);
      c.once('exit', (code, sig) => reject(new Error(`client ${i} exited before ready (${code ?? sig})`)));
    });
    c.on('message', (m: ToParent) => this.onMessage(i, m));
    c.on('exit', (code, sig) => {
      live.delete(c);
      if (!this.closing) this.fail('exit', `client ${i} exited (${code ?? sig})`);
    });
    const init = this.o.init?.(i);
    if (init) c.send(init);
    return ready;
  }

  private onMessage(i: number, m: ToParent): void {
    if (m.t === 'ready') return;
    if (m.t === 'fatal') return this.fail('fatal', `client ${i}: ${m.error}`);
    if (m.id === undefined) return this.o.onEvent?.(i, m);
    const w = this.waiters.get(m.id);
    if (!w) return;
    this.waiters.delete(m.id);
    clearTimeout(w.timer);
    w.resolve(m);
  }

  private fail(kind: 'fatal' | 'exit', why: string): void {
    if (this.failure === undefined) {
      this.failure = why;
      this.o.onFailure?.(kind, why);
    }
    for (const [id, w] of this.waiters) {
      clearTimeout(w.timer);
      this.waiters.delete(id);
      w.reject(new Error(why));
    }
  }

  /** Sends make(id) to child i and waits for the answer with that id. */
  ask<T extends ToParent>(i: number, make: (id: number) => ToChild, timeoutMs: number): Promise<T> {
    if (this.failure) return Promise.reject(new Error(this.failure));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        reject(new Error(`client ${i} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(id, { resolve: resolve as (m: FromChild) => void, reject, timer });
      this.send(i, make(id));
    });
  }

  /** Sends make(i, id) to every child and waits for all answers. */
  all<T extends ToParent>(make: (i: number, id: number) => ToChild, timeoutMs: number): Promise<T[]> {
    return Promise.all(this.children.map((_, i) => this.ask<T>(i, (id) => make(i, id), timeoutMs)));
  }

  /** Like all(), from the children still connected, keeping the answers that came within the deadline (a report at the end of a run). */
  async gather<T extends ToParent>(make: (i: number, id: number) => ToChild, timeoutMs: number): Promise<T[]> {
    const asked = this.children.map((_, i) => i).filter((i) => this.connected(i));
    const got = await Promise.allSettled(asked.map((i) => this.ask<T>(i, (id) => make(i, id), timeoutMs)));
    return got.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  }

  /** Sends a message that wants no answer to child i (if it is still connected). */
  send(i: number, m: ToChild): void {
    const c = this.children[i]!;
    if (c.connected) c.send(m);
  }

  broadcast(make: (i: number) => ToChild): void {
    for (let i = 0; i < this.children.length; i++) this.send(i, make(i));
  }

  /** Sends every child `close` (each ends its sessions within graceMs and exits) and waits for the exits, killing stragglers. */
  async close(close: ToChild, graceMs = 2000): Promise<void> {
    this.closing = true;
    const exits = this.children.map((c) => (c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => c.once('exit', () => r()))));
    this.broadcast(() => close);
    const killTimer = setTimeout(() => this.kill(), graceMs + 3000);
    await Promise.all(exits);
    clearTimeout(killTimer);
  }

  kill(): void {
    this.closing = true;
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
}
