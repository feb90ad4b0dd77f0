/**
 * Forked client processes driven request by request over IPC, for the
 * benches whose clients answer requests (presence-churn, failover): each
 * child says `{t: 'ready'}` first, answers every request `{…, id}` with a
 * message carrying the same `id`, and reports `{t: 'fatal', error}` on a
 * crash. Every request has a deadline; a child that dies fails every request
 * at once. Children are SIGKILLed if this process exits first, and are
 * expected to exit by themselves when it dies (IPC disconnect).
 */
import { fork, type ChildProcess } from 'node:child_process';

type FromChild = { readonly t: string; readonly id?: number; readonly error?: string };

export class ChildFleet<ToChild extends object, ToParent extends FromChild> {
  private readonly children: ChildProcess[] = [];
  private readonly waiters = new Map<number, { resolve: (m: ToParent) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private nextId = 1;
  private failure: string | undefined;
  private closing = false;

  /** Forks `n` copies of `script` and waits until each said ready. */
  static async start<C extends object, P extends FromChild>(script: string, n: number): Promise<ChildFleet<C, P>> {
    const f = new ChildFleet<C, P>();
    const ready: Promise<void>[] = [];
    for (let i = 0; i < n; i++) {
      const c = fork(script, [], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'json' });
      f.children.push(c);
      ready.push(new Promise((resolve, reject) => {
        c.once('message', (m: P) => (m.t === 'ready' ? resolve() : reject(new Error(`client ${i}: ${JSON.stringify(m)}`))));
        c.once('exit', (code, sig) => reject(new Error(`client ${i} exited before ready (${code ?? sig})`)));
      }));
      c.on('message', (m: P) => f.onMessage(i, m));
      c.on('exit', (code, sig) => {
        if (!f.closing) f.fail(`client ${i} exited (${code ?? sig})`);
      });
    }
    process.on('exit', () => f.kill());
    try {
      await Promise.all(ready);
    } catch (err) {
      f.kill();
      throw err;
    }
    return f;
  }

  get size(): number {
    return this.children.length;
  }

  private onMessage(i: number, m: FromChild): void {
    if (m.t === 'fatal') return this.fail(`client ${i}: ${m.error}`);
    if (m.id === undefined) return;
    const w = this.waiters.get(m.id);
    if (!w) return;
    this.waiters.delete(m.id);
    clearTimeout(w.timer);
    w.resolve(m as ToParent);
  }

  private fail(why: string): void {
    this.failure ??= why;
    for (const [id, w] of this.waiters) {
      clearTimeout(w.timer);
      this.waiters.delete(id);
      w.reject(new Error(why));
    }
  }

  /** Sends make(i, id) to every child and waits for all answers. */
  all<T extends ToParent>(make: (i: number, id: number) => ToChild, timeoutMs: number): Promise<T[]> {
    if (this.failure) return Promise.reject(new Error(this.failure));
    return Promise.all(this.children.map((c, i) => new Promise<T>((resolve, reject) => {
      const id = this.nextId++;
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        reject(new Error(`client ${i} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(id, { resolve: resolve as (m: ToParent) => void, reject, timer });
      if (c.connected) c.send(make(i, id));
    })));
  }

  kill(): void {
    this.closing = true;
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
}
