/**
 * The user and room actors' storage bounds, on a fake shard host: what the
 * budget counts, the master's stamps and the copies that honour them, the
 * inbox TTL and byte bounds, the room history's byte bound.
 */
import { expect } from 'chai';
import { UserActor } from '../../../src/actors/user.js';
import { RoomActor } from '../../../src/actors/room.js';
import { SimulatedClock } from '../../../src/actors/clock.js';
import { TimerWheel } from '../../../src/actors/timer-wheel.js';
import type { ShardHost } from '../../../src/actors/shard-host.js';
import type { Cmd, RoomCmd, UserCmd } from '../../../src/bus/messages.js';
import { loadConfig } from '../../../src/config/index.js';
import { SenderBudget, StorageBudget, USER_OVERHEAD, ROOM_OVERHEAD, WorkerStorage, attachStorage, entryBytes, measureBody } from '../../../src/storage/index.js';

type Out = { k: 'reply' | 'error'; res: unknown };

/** Just what the actors use of a ShardHost. */
class FakeHost {
  readonly clock = new SimulatedClock();
  readonly wheel = new TimerWheel(this.clock, 100);
  readonly fastWheel = new TimerWheel(this.clock, 25);
  readonly outs: Out[] = [];
  readonly casts: Cmd[] = [];
  readonly bus = { addr: 'h1.0', cast: (_n: number, c: Cmd) => { this.casts.push(c); } };
  silent = false;
  /** Events out are off (events.enabled = false). */
  readonly events = null;
  exited = 0;
  readonly storage: WorkerStorage;
  constructor(readonly config: ReturnType<typeof loadConfig>['config'], budget: number) {
    this.storage = new WorkerStorage(new StorageBudget({ budget, warnAt: budget, perShard: Infinity, perSender: Infinity, shards: config.shards }), new SenderBudget({ newRecipientsPerMin: 0, newRoomsPerMin: 0, bytesPerMin: 0, maxBodyBytes: 1 }));
    attachStorage(this.bus, this.storage);
  }
  reply(_c: unknown, res: unknown): void { if (!this.silent) this.outs.push({ k: 'reply', res }); }
  replyError(_c: unknown, res: unknown): void { if (!this.silent) this.outs.push({ k: 'error', res }); }
  deliver(): void {}
  publishRoom(): void {}
  onActorExit(): void { this.exited++; }
  get asHost(): ShardHost { return this as unknown as ShardHost; }
}

function config(...flags: string[]) {
  return loadConfig({ argv: ['--shards=4', ...flags], env: {} }).config;
}

const dm = (to: string, mid: string, body: string, at: number): Extract<UserCmd, { op: 'u.dm' }> => ({ op: 'u.dm', id: to, from: 'mallory', mid, body, size: Buffer.byteLength(JSON.stringify(body)), at, cid: 1, rw: 'h1.1' });

/** The command as a replica gets it: after the master applied (and stamped) it, through JSON. */
const wire = <T>(c: T): T => JSON.parse(JSON.stringify(c)) as T;

describe('storage: the user and room actors count what they store', () => {
  it('counts each dm once (body length from the sender, ids, overhead) and uncounts it when acknowledged and when the actor stops', () => {
    const h = new FakeHost(config(), Infinity);
    const u = new UserActor(h.asHost, 'bob');
    expect(h.storage.budget.bytes).to.equal(USER_OVERHEAD);
    u.send(dm('bob', 'm1', 'x'.repeat(1000), 1));
    const size = entryBytes(1002, 'mallory', 'm1');
    expect(u.inboxBytes).to.equal(size);
    const withDedup = h.storage.budget.bytes;
    expect(withDedup).to.be.greaterThan(USER_OVERHEAD + size);
    u.send({ op: 'u.ack', id: 'bob', seq: 1, cid: 2, rw: 'h1.1' });
    expect(u.inboxBytes).to.equal(0);
    expect(h.storage.budget.bytes).to.equal(withDedup - size);
    u.stop();
    expect(h.storage.budget.bytes).to.equal(0);
  });

  it('a body without a measured size is measured the way the sender measures it', () => {
    const body = { text: 'héllo', n: [1, 2, 3] };
    expect(measureBody(body)).to.equal(Buffer.byteLength(JSON.stringify(body)));
    const h = new FakeHost(config(), Infinity);
    const u = new UserActor(h.asHost, 'bob');
    u.send({ op: 'u.dm', id: 'bob', from: 'a', mid: 'm', body, at: 1, cid: 1, rw: 'x' });
    expect(u.inboxBytes).to.equal(entryBytes(measureBody(body), 'a', 'm'));
  });

  it('the master stamps its refusals and a replica with room to spare applies the same (same inbox, same seqs)', () => {
    const master = new FakeHost(config(), 40_000);
    const replica = new FakeHost(config(), Infinity);
    replica.silent = true;
    const m = new UserActor(master.asHost, 'bob');
    const r = new UserActor(replica.asHost, 'bob');
    for (let i = 0; i < 60; i++) {
      const c = dm('bob', `m${i}`, 'y'.repeat(2000), 1000 + i);
      m.send(c);
      r.send(wire(c));
      // An ack now and then frees room on both.
      if (i % 20 === 19) { const a: UserCmd = { op: 'u.ack', id: 'bob', seq: m.seq - 2, cid: 3, rw: 'x' }; m.send(a); r.send(wire(a)); }
    }
    const refused = master.outs.filter((o) => o.k === 'error' && (o.res as { code: string }).code === 'SANDBAR_ERR_STORAGE_FULL');
    expect(refused.length).to.be.greaterThan(10);
    expect(master.storage.budget.refusedFull).to.equal(refused.length);
    expect(m.seq).to.equal(r.seq);
    expect(r.snapshot().inbox).to.deep.equal(m.snapshot().inbox);
    expect(r.inboxBytes).to.equal(m.inboxBytes);
    // The replica never asked its own budget.
    expect(replica.storage.budget.refusedFull).to.equal(0);
  });

  it('counts every stored message as its sender\'s too, and uncounts it when acknowledged, trimmed or dropped', () => {
    const h = new FakeHost(config('--room.historyMax=2'), Infinity);
    const u = new UserActor(h.asHost, 'bob');
    u.send(dm('bob', 'm1', 'a'.repeat(100), 1));
    u.send(dm('bob', 'm2', 'a'.repeat(100), 2));
    const r = new RoomActor(h.asHost, 'lobby');
    for (let i = 0; i < 3; i++) r.send({ op: 'r.msg', id: 'lobby', from: 'mallory', mid: `r${i}`, body: 'x', size: 3, at: i, cid: 1, rw: 'x' });
    const one = entryBytes(102, 'mallory', 'm1');
    expect(h.storage.budget.senderBytes('mallory')).to.equal(2 * one + 2 * entryBytes(3, 'mallory', 'r0'));
    u.send({ op: 'u.ack', id: 'bob', seq: 1, cid: 2, rw: 'x' });
    expect(h.storage.budget.senderBytes('mallory')).to.equal(one + 2 * entryBytes(3, 'mallory', 'r0'));
    u.stop();
    r.stop();
    expect(h.storage.budget.senderBytes('mallory')).to.equal(0);
    expect(h.storage.budget.senders).to.equal(0);
  });

  it('a dm refused for a recipient never seen leaves no actor behind, on master and replica', () => {
    const master = new FakeHost(config(), USER_OVERHEAD + 100);
    const m = new UserActor(master.asHost, 'nobody');
    const c = dm('nobody', 'm1', 'z'.repeat(500), 1);
    m.send(c);
    expect(c.refused).to.equal('full');
    expect(m.alive).to.equal(false);
    expect(master.storage.budget.bytes).to.equal(0);
    const replica = new FakeHost(config(), Infinity);
    replica.silent = true;
    const r = new UserActor(replica.asHost, 'nobody');
    r.send(wire(c));
    expect(r.alive).to.equal(false);
  });

  it('user.inboxMaxBytes refuses with SANDBAR_ERR_INBOX_FULL, on master and replica alike (no stamp needed)', () => {
    const h = new FakeHost(config('--user.inboxMaxBytes=10000'), Infinity);
    const u = new UserActor(h.asHost, 'bob');
    for (let i = 0; i < 10; i++) u.send(dm('bob', `m${i}`, 'q'.repeat(2000), i));
    expect(u.inbox).to.have.length(4);
    expect(h.outs.filter((o) => o.k === 'error').map((o) => (o.res as { code: string }).code)).to.deep.equal(Array(6).fill('SANDBAR_ERR_INBOX_FULL'));
  });

  it('inbox TTL: the master stamps its time into u.expire; every copy drops the same messages; the master counts them', () => {
    const cfg = config('--user.inboxTtlMs=10000');
    const master = new FakeHost(cfg, Infinity);
    const replica = new FakeHost(cfg, Infinity);
    replica.silent = true;
    const m = new UserActor(master.asHost, 'bob');
    const r = new UserActor(replica.asHost, 'bob');
    const now = Date.now();
    for (const c of [dm('bob', 'old1', 'a', now - 20_000), dm('bob', 'old2', 'b', now - 15_000), dm('bob', 'new', 'c', now - 1_000)]) { m.send(c); r.send(wire(c)); }
    const exp: UserCmd = { op: 'u.expire', id: 'bob' };
    m.send(exp);
    expect(exp.at).to.be.within(now, Date.now());
    r.send(wire(exp));
    expect(m.inbox.map((e) => e.id)).to.deep.equal(['new']);
    expect(r.inbox.map((e) => e.id)).to.deep.equal(['new']);
    expect(master.storage.inboxExpired).to.equal(2);
    expect(replica.storage.inboxExpired).to.equal(0);
    // A replica applying the same command later, by its own clock, still drops only what the stamp says.
    const r2 = new UserActor(new FakeHost(cfg, Infinity).asHost, 'bob');
    (r2 as unknown as { host: FakeHost }).host.silent = true;
    for (const c of [dm('bob', 'old1', 'a', now - 20_000), dm('bob', 'new', 'c', now - 1_000)]) r2.send(wire(c));
    r2.send({ op: 'u.expire', id: 'bob', at: now - 12_000 });
    expect(r2.inbox.map((e) => e.id)).to.deep.equal(['new']);
  });

  it('inbox TTL: the actor\'s timer asks the shard\'s master for u.expire once its oldest message is due, and asks again until it comes', () => {
    const h = new FakeHost(config('--user.inboxTtlMs=10000'), Infinity);
    const u = new UserActor(h.asHost, 'bob');
    u.send(dm('bob', 'old', 'a', Date.now() - 20_000));
    h.clock.advance(200);
    expect(h.casts).to.deep.equal([{ op: 'u.expire', id: 'bob' }]);
    h.clock.advance(5_100);
    expect(h.casts).to.have.length(2);
    // Applied (as the master's bus would), the inbox is empty and the timer is the idle stop's no more (seq > 0 keeps the actor).
    u.send(h.casts[1]! as UserCmd);
    expect(u.inbox).to.have.length(0);
    h.clock.advance(60_000);
    expect(h.casts).to.have.length(2);
    expect(u.alive).to.equal(true);
  });

  it('a join never replays messages past the TTL that no expire has dropped yet', () => {
    const h = new FakeHost(config('--user.inboxTtlMs=10000'), Infinity);
    const u = new UserActor(h.asHost, 'bob');
    u.send(dm('bob', 'old', 'a', Date.now() - 20_000));
    u.send(dm('bob', 'new', 'b', Date.now()));
    u.send({ op: 'u.join', id: 'bob', sid: 's', w: 'h1.1', meta: { phx_ref: 's', online_at: 0 }, last: null, cid: 9, rw: 'h1.1' });
    const join = h.outs.at(-1)!.res as { replay: { id: string }[] };
    expect(join.replay.map((e) => e.id)).to.deep.equal(['new']);
  });

  it('restore counts the snapshot\'s bytes (with or without recorded sizes) and uncounts what the actor held before', () => {
    const h = new FakeHost(config(), Infinity);
    const a = new UserActor(h.asHost, 'bob');
    for (let i = 0; i < 5; i++) a.send(dm('bob', `m${i}`, 'x'.repeat(100), i));
    const snap = wire(a.snapshot());
    const counted = h.storage.budget.bytes;
    a.stop();
    const b = new UserActor(h.asHost, 'bob');
    b.restore(snap);
    expect(h.storage.budget.bytes).to.equal(counted);
    const c = new UserActor(h.asHost, 'carol');
    c.restore({ ...snap, id: 'carol', sizes: undefined });
    expect(c.inboxBytes).to.equal(b.inboxBytes);
    c.restore(snap);
    expect(h.storage.budget.bytes).to.equal(2 * counted);
  });

  it('room history: bounded by room.historyMaxBytes (oldest first), counted, and the bytes freed as it trims', () => {
    const h = new FakeHost(config('--room.historyMaxBytes=10000'), Infinity);
    const room = new RoomActor(h.asHost, 'lobby');
    for (let i = 0; i < 20; i++) room.send({ op: 'r.msg', id: 'lobby', from: 'a', mid: `m${i}`, body: 'w'.repeat(1000), size: 1002, at: i, cid: 1, rw: 'x' } satisfies RoomCmd);
    expect(room.history.length).to.be.within(8, 9);
    expect(room.history.at(-1)!.id).to.equal('m19');
    expect(room.historyBytes).to.be.at.most(10000);
    expect(h.storage.historyTrimmed).to.equal(20 - room.history.length);
    room.stop();
    expect(h.storage.budget.bytes).to.equal(0);
  });

  it('a join that would create a room is refused when the budget is full (and the room goes); one to a room that exists is not', () => {
    const h = new FakeHost(config(), ROOM_OVERHEAD + 10);
    const join = (room: RoomActor, sid: string): Extract<RoomCmd, { op: 'r.join' }> => {
      const c: Extract<RoomCmd, { op: 'r.join' }> = { op: 'r.join', id: room.id, sid, w: 'h1.1', uid: 'u', meta: { phx_ref: sid, online_at: 0 }, last: null, cid: 1, rw: 'x' };
      room.send(c);
      return c;
    };
    const lobby = new RoomActor(h.asHost, 'lobby');
    join(lobby, 's1');
    expect(h.outs.at(-1)!.k).to.equal('reply');
    const spam = new RoomActor(h.asHost, 'spam');
    const c = join(spam, 's2');
    expect(c.refused).to.equal('full');
    expect((h.outs.at(-1)!.res as { code: string }).code).to.equal('SANDBAR_ERR_STORAGE_FULL');
    expect(spam.alive).to.equal(false);
    join(lobby, 's3');
    expect(h.outs.at(-1)!.k).to.equal('reply');
  });

  it('a room with no member and no message ever stops once its last presence diff is out', () => {
    const h = new FakeHost(config(), Infinity);
    const r = new RoomActor(h.asHost, 'x');
    r.send({ op: 'r.join', id: 'x', sid: 's', w: 'h1.1', uid: 'u', meta: { phx_ref: 's', online_at: 0 }, last: null, cid: 1, rw: 'x' });
    r.send({ op: 'r.leave', id: 'x', sid: 's' });
    expect(r.alive).to.equal(true);
    h.clock.advance(100);
    expect(r.alive).to.equal(false);
    expect(h.storage.budget.bytes).to.equal(0);
    // One with a message keeps its seq (and so its actor).
    const k = new RoomActor(h.asHost, 'k');
    k.send({ op: 'r.msg', id: 'k', from: 'a', mid: 'm', body: 'b', size: 3, at: 1, cid: 1, rw: 'x' });
    k.send({ op: 'r.join', id: 'k', sid: 's', w: 'h1.1', uid: 'u', meta: { phx_ref: 's', online_at: 0 }, last: null, cid: 1, rw: 'x' });
    k.send({ op: 'r.leave', id: 'k', sid: 's' });
    h.clock.advance(100);
    expect(k.alive).to.equal(true);
  });
});
