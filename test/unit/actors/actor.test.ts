import { expect } from 'chai';
import { Actor, type ActorLink, type StopReason } from '../../../src/actors/actor.js';

type Msg = { t: 'add'; n: number } | { t: 'slow'; n: number; gate: Promise<void> } | { t: 'boom' } | { t: 'reject' } | { t: 'self' };

class Counter extends Actor<Msg> {
  log: number[] = [];
  terminated: StopReason | null = null;
  protected handle(m: Msg): void | Promise<void> {
    switch (m.t) {
      case 'add': this.log.push(m.n); return;
      case 'slow': return m.gate.then(() => { this.log.push(m.n); });
      case 'boom': throw new Error('boom');
      case 'reject': return Promise.reject(new Error('async boom'));
      case 'self': this.send({ t: 'add', n: 99 }); this.log.push(1); return;
    }
  }
  protected override terminate(reason: StopReason): void { this.terminated = reason; }
}

function link(): ActorLink & { exits: StopReason[] } {
  const exits: StopReason[] = [];
  return { exits, onActorExit: (_a, r) => { exits.push(r); } };
}

describe('actor runtime', () => {
  it('processes messages in order, one at a time, behind an async handler', async () => {
    const a = new Counter(null);
    let open!: () => void;
    const gate = new Promise<void>((r) => { open = r; });
    a.send({ t: 'add', n: 1 });
    a.send({ t: 'slow', n: 2, gate });
    a.send({ t: 'add', n: 3 });
    expect(a.log).to.deep.equal([1]);
    open();
    await gate; await Promise.resolve(); await Promise.resolve();
    expect(a.log).to.deep.equal([1, 2, 3]);
  });

  it('queues a message a handler sends to its own actor instead of re-entering', () => {
    const a = new Counter(null);
    a.send({ t: 'self' });
    expect(a.log).to.deep.equal([1, 99]);
  });

  it('a throw stops only that actor, runs terminate once and tells the link', () => {
    const l = link();
    const a = new Counter(l);
    const b = new Counter(null);
    a.send({ t: 'boom' });
    b.send({ t: 'add', n: 5 });
    expect(a.alive).to.equal(false);
    expect(a.terminated?.kind).to.equal('crash');
    expect(l.exits).to.have.length(1);
    a.send({ t: 'add', n: 1 });
    expect(a.log).to.deep.equal([]);
    expect(b.log).to.deep.equal([5]);
  });

  it('a rejected promise stops the actor and drops what was queued', async () => {
    const l = link();
    const a = new Counter(l);
    a.send({ t: 'reject' });
    a.send({ t: 'add', n: 7 });
    await new Promise((r) => setImmediate(r));
    expect(a.alive).to.equal(false);
    expect(a.log).to.deep.equal([]);
    expect(l.exits[0]!.kind).to.equal('crash');
  });

  it('guard() turns a throw in a timer or socket callback into a stop', () => {
    const l = link();
    const a = new Counter(l);
    a.guard(() => { throw new Error('timer failed'); });
    expect(a.alive).to.equal(false);
    expect(l.exits).to.have.length(1);
  });

  it('stop is idempotent and a normal stop is not a crash', () => {
    const l = link();
    const a = new Counter(l);
    a.stop();
    a.stop({ kind: 'shutdown' });
    expect(l.exits).to.deep.equal([{ kind: 'normal' }]);
  });
});
