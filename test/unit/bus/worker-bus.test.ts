/**
 * WorkerBus's own logic, on a simulated clock: the pending map of requests,
 * their resends with back-off and their deadlines on the timer wheel, a new
 * master asked at once (resendShard), replies matched by correlation id
 * (late and duplicate ones dropped), in-process delivery to this worker,
 * the outbox that batches messages to another worker per event-loop turn,
 * and handlers whose throw stays inside the bus.
 *
 * The NATS connection is an in-memory stand-in that records what is
 * published and hands subscriptions their messages: this is a unit test of
 * the bus's bookkeeping. Everything that crosses a real NATS server is the
 * integration tests' (chat, cluster, nats-faults).
 */
import { expect } from 'chai';
import pino from 'pino';
import type { NatsConnection } from '@nats-io/transport-node';
import { SimulatedClock } from '../../../src/actors/clock.js';
import { TimerWheel } from '../../../src/actors/timer-wheel.js';
import { WorkerBus, type ReplyTarget, type WorkerBusHandlers } from '../../../src/bus/worker-bus.js';
import { Subjects } from '../../../src/bus/subjects.js';
import type { Cmd, WorkerMsg } from '../../../src/bus/messages.js';
import { toWire, Errors, type SandbarError } from '../../../src/errors.js';

type Callback = (err: Error | null, msg: FakeMsg) => void;
interface FakeMsg { subject: string; data: Uint8Array; json<T>(): T; respond(data: string): boolean }

/** Publishes recorded in order; subscriptions by subject; deliver() plays a message to them. */
class FakeNats {
  readonly published: { subject: string; data: string }[] = [];
  readonly subs = new Map<string, Set<Callback>>();
  readonly responses: { subject: string; data: string }[] = [];
  publish(subject: string, data: string): void { this.published.push({ subject, data }); }
  subscribe(subject: string, opts: { callback: Callback }): { unsubscribe(): void } {
    const set = this.subs.get(subject) ?? this.subs.set(subject, new Set()).get(subject)!;
    set.add(opts.callback);
    return { unsubscribe: () => { set.delete(opts.callback); if (set.size === 0) this.subs.delete(subject); } };
  }
  flush(): Promise<void> { return Promise.resolve(); }
  isClosed(): boolean { return false; }
  isDraining(): boolean { return false; }
  deliver(subject: string, body: unknown): void {
    const data = new TextEncoder().encode(JSON.stringify(body));
    const msg: FakeMsg = {
      subject, data,
      json: <T>() => JSON.parse(new TextDecoder().decode(data)) as T,
      respond: (d: string) => { this.responses.push({ subject, data: d }); return true; },
    };
    for (const cb of this.subs.get(subject) ?? []) cb(null, msg);
  }
  /** Publishes to `subject`, decoded. */
  sent(subject: string): unknown[] { return this.published.filter((p) => p.subject === subject).map((p) => JSON.parse(p.data)); }
}

class Answers implements ReplyTarget {
  readonly got: { ok: boolean; res: unknown; err: SandbarError | null }[] = [];
  onReply(ok: boolean, res: unknown, err: SandbarError | null): void { this.got.push({ ok, res, err }); }
}

const subjects = new Subjects('t');
const TIMEOUT_MS = 3000;
const RESEND_MS = 100;

function setup(handlers: Partial<WorkerBusHandlers> = {}) {
  const nats = new FakeNats();
  const clock = new SimulatedClock();
  const wheel = new TimerWheel(clock, 25);
  const commands: Cmd[] = [];
  const logger = pino({ level: 'silent' });
  const bus = new WorkerBus(nats as unknown as NatsConnection, subjects, 'h1', 0, {
    onCmd: (c) => { commands.push(c); },
    onInfo: () => ({}), onQuery: () => ({}), onHolds: () => ({}),
    onDeliver: () => {}, onCtl: () => {}, onRepl: () => {}, onShardMsg: () => {},
    ...handlers,
  }, wheel, logger, { timeoutMs: TIMEOUT_MS, resendMs: RESEND_MS });
  return { nats, clock, bus, commands };
}

const dm = (n: number): Cmd & { cid: number; rw: string } => ({ op: 'u.dm', id: 'bob', from: 'ann', mid: `m${n}`, body: n, cid: 0, rw: '' });
const tick = () => new Promise((r) => setImmediate(r));

describe('bus/worker-bus: requests, resends, deadlines (simulated clock, in-memory NATS stand-in)', () => {
  it('a request goes to the shard subject with a correlation id and this worker as reply address, and waits in the pending map', () => {
    const { nats, bus } = setup();
    const a = new Answers();
    bus.request(7, dm(1), a);
    const sent = nats.sent(subjects.shardCmd(7)) as { cid: number; rw: string; mid: string }[];
    expect(sent).to.have.length(1);
    expect(sent[0]).to.include({ rw: 'h1.0', mid: 'm1' });
    expect(sent[0]!.cid).to.be.a('number').and.above(0);
    expect(bus.pendingCount).to.equal(1);
    expect(a.got).to.deep.equal([]);
  });

  it('the reply with its cid resolves the request once; a second reply and a reply to an unknown cid are dropped', async () => {
    const { nats, bus } = setup();
    const a = new Answers();
    bus.request(7, dm(1), a);
    const cid = (nats.sent(subjects.shardCmd(7))[0] as { cid: number }).cid;
    await bus.start();
    nats.deliver(subjects.worker('h1', 0), { t: 'reply', cid, ok: true, res: { seq: 3 } } satisfies WorkerMsg);
    nats.deliver(subjects.worker('h1', 0), { t: 'reply', cid, ok: true, res: { seq: 4 } } satisfies WorkerMsg);
    nats.deliver(subjects.worker('h1', 0), { t: 'reply', cid: cid + 100, ok: true, res: {} } satisfies WorkerMsg);
    expect(a.got).to.deep.equal([{ ok: true, res: { seq: 3 }, err: null }]);
    expect(bus.pendingCount).to.equal(0);
  });

  it('an error reply rebuilds the typed error from its wire form', async () => {
    const { nats, bus } = setup();
    const a = new Answers();
    bus.request(7, dm(1), a);
    const cid = (nats.sent(subjects.shardCmd(7))[0] as { cid: number }).cid;
    await bus.start();
    nats.deliver(subjects.worker('h1', 0), { t: 'reply', cid, ok: false, err: toWire(Errors.INBOX_FULL('inbox of bob is full')) } satisfies WorkerMsg);
    expect(a.got).to.have.length(1);
    expect(a.got[0]!.ok).to.equal(false);
    expect(a.got[0]!.err?.code).to.equal('SANDBAR_ERR_INBOX_FULL');
    expect(a.got[0]!.err?.retryable).to.equal(true);
  });

  it('with no answer it is resent, backing off ×2 up to 4 × resendMs, and fails with SANDBAR_ERR_UNAVAILABLE at the deadline, once', () => {
    const { nats, clock, bus } = setup();
    const a = new Answers();
    bus.request(7, dm(1), a);
    const at: number[] = [];
    let seen = 1;
    for (let t = 0; t <= TIMEOUT_MS + 200; t += 25) {
      clock.advance(25);
      const n = nats.sent(subjects.shardCmd(7)).length;
      for (; seen < n; seen++) at.push(clock.now());
    }
    // Resends at ~100, then +200, +400, +400 ... (one 25 ms tick of slack each), none after the deadline.
    const gaps = at.map((t, i) => t - (i === 0 ? 0 : at[i - 1]!));
    expect(gaps[0]).to.be.within(RESEND_MS, RESEND_MS + 25);
    expect(gaps[1]).to.be.within(2 * RESEND_MS, 2 * RESEND_MS + 25);
    for (const g of gaps.slice(2)) expect(g).to.be.within(4 * RESEND_MS, 4 * RESEND_MS + 25);
    expect(at.every((t) => t < TIMEOUT_MS)).to.equal(true);
    // Every resend is the same command (same cid: the actor dedups by message id, the bus by cid).
    expect(new Set(nats.sent(subjects.shardCmd(7)).map((c) => JSON.stringify(c))).size).to.equal(1);
    expect(a.got).to.have.length(1);
    expect(a.got[0]!.ok).to.equal(false);
    expect(a.got[0]!.err?.code).to.equal('SANDBAR_ERR_UNAVAILABLE');
    expect(a.got[0]!.err?.message).to.match(/shard 7 did not answer within 3000 ms/);
    expect(bus.pendingCount).to.equal(0);
  });

  it('a late reply after the deadline is dropped (the caller heard UNAVAILABLE already)', async () => {
    const { nats, clock, bus } = setup();
    const a = new Answers();
    bus.request(3, dm(1), a);
    const cid = (nats.sent(subjects.shardCmd(3))[0] as { cid: number }).cid;
    clock.advance(TIMEOUT_MS + 100);
    await bus.start();
    nats.deliver(subjects.worker('h1', 0), { t: 'reply', cid, ok: true, res: {} } satisfies WorkerMsg);
    expect(a.got.map((g) => g.ok)).to.deep.equal([false]);
  });

  it('resendShard asks a new master at once for every request waiting on that shard, and only those', () => {
    const { nats, clock, bus } = setup();
    bus.request(5, dm(1), new Answers());
    bus.request(5, dm(2), new Answers());
    bus.request(6, dm(3), new Answers());
    clock.advance(10);
    bus.resendShard(5);
    expect(nats.sent(subjects.shardCmd(5))).to.have.length(4);
    expect(nats.sent(subjects.shardCmd(6))).to.have.length(1);
    // The back-off starts over: the next resend is resendMs after this one, the one after it 2 × resendMs later.
    clock.advance(RESEND_MS + 25);
    expect(nats.sent(subjects.shardCmd(5))).to.have.length(6);
    clock.advance(2 * RESEND_MS + 25);
    expect(nats.sent(subjects.shardCmd(5))).to.have.length(8);
  });

  it('a request to a shard this worker serves is handled in-process, and its reply comes back in-process', async () => {
    const { nats, bus, commands } = setup();
    bus.serve(9, true);
    const a = new Answers();
    bus.request(9, dm(1), a);
    expect(nats.sent(subjects.shardCmd(9))).to.deep.equal([]);
    expect(commands).to.have.length(1);
    const cmd = commands[0] as { cid: number; rw: string };
    bus.reply(cmd, { seq: 1 });
    expect(a.got).to.deep.equal([{ ok: true, res: { seq: 1 }, err: null }]);
    expect(nats.published).to.deep.equal([]);
    await tick();
    expect(nats.published).to.deep.equal([]);
  });

  it('messages to another worker wait in its outbox until the end of the turn and go out as one batch, after anything published before them', async () => {
    const { nats, bus } = setup();
    bus.reply({ cid: 1, rw: 'h2.1' }, { a: 1 });
    bus.reply({ cid: 2, rw: 'h2.1' }, { a: 2 });
    bus.replyError({ cid: 3, rw: 'h3.0' }, toWire(Errors.UNAVAILABLE('x')));
    expect(nats.published).to.deep.equal([]);
    await tick();
    expect(nats.sent(subjects.worker('h2', 1))).to.deep.equal([{ t: 'batch', m: [{ t: 'reply', cid: 1, ok: true, res: { a: 1 } }, { t: 'reply', cid: 2, ok: true, res: { a: 2 } }] }]);
    expect(nats.sent(subjects.worker('h3', 0))).to.have.length(1);
    // A publish of another kind flushes the outbox first, so the order of what this worker sends is kept.
    bus.reply({ cid: 4, rw: 'h2.1' }, {});
    bus.publishRoom('lobby', '[null,null,"room:lobby","msg",{}]');
    expect(nats.published.map((p) => p.subject)).to.deep.equal([subjects.worker('h2', 1), subjects.worker('h3', 0), subjects.worker('h2', 1), subjects.room('lobby')]);
  });

  it('a handler that throws loses that message only: the subscription (and nats.js\'s reader) goes on', async () => {
    let calls = 0;
    const { nats, bus } = setup({ onCtl: () => { calls++; if (calls === 1) throw new Error('boom'); } });
    await bus.start();
    expect(() => nats.deliver(subjects.ctl(), { t: 'resync', w: 'h2.0' })).to.not.throw();
    nats.deliver(subjects.ctl(), { t: 'resync', w: 'h2.0' });
    expect(calls).to.equal(2);
  });

  it('serve and replicate subscribe each subject once and unsubscribe it; stop() clears the pending map and every subscription', async () => {
    const { nats, bus } = setup();
    await bus.start();
    bus.serve(1, true);
    bus.serve(1, true);
    bus.replicate(2, true);
    expect(nats.subs.get(subjects.shardCmd(1))?.size).to.equal(1);
    expect(bus.servingCount).to.equal(1);
    bus.serve(1, false);
    expect(nats.subs.has(subjects.shardCmd(1))).to.equal(false);
    bus.request(4, dm(1), new Answers());
    bus.stop();
    expect(bus.pendingCount).to.equal(0);
    expect([...nats.subs.keys()]).to.deep.equal([]);
  });
});
