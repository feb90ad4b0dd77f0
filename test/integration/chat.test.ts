import { expect } from 'chai';
import { Socket, Presence } from 'phoenix';
import WebSocket from 'ws';
import { RawClient, clientOnWorker, openMany, token, withHost, type Frame } from '../support/index.js';

type Reply = { status: string; response: Record<string, unknown> };
const reply = (f: Frame) => f[4] as Reply;

describe('users: direct messages, inbox, presence of own devices', function () {
  this.timeout(30000);
  const { host } = withHost({ workers: 2, flags: { 'message.maxBytes': 1024 } });

  it("Bob's dm reaches both of Alice's devices (on different workers) exactly once, in order, with seq; the ok comes after storage", async () => {
    const a0 = await clientOnWorker(host.url, 'alice', 0);
    const a1 = await clientOnWorker(host.url, 'alice', 1);
    const bob = await RawClient.open(host.url, token('bob'));
    for (const [c, dev] of [[a0, 'phone'], [a1, 'laptop']] as const) expect(reply(await c.join('user:alice', { device: dev }, 'u')).status).to.equal('ok');
    await bob.join('user:bob', {}, 'u');
    const seqs: number[] = [];
    for (let i = 0; i < 20; i++) {
      const ok = await bob.request('u', 'user:bob', 'dm', { to: 'alice', id: `m${i}`, body: { text: `hello ${i}` } });
      expect(reply(ok).status).to.equal('ok');
      seqs.push(reply(ok).response.seq as number);
    }
    expect(seqs).to.deep.equal(Array.from({ length: 20 }, (_, i) => i + 1));
    for (const c of [a0, a1]) {
      await c.waitFor((f) => f[3] === 'dm' && (f[4] as { seq: number }).seq === 20);
      const dms = c.frames.filter((f) => f[2] === 'user:alice' && f[3] === 'dm').map((f) => f[4] as { from: string; seq: number; id: string; body: { text: string }; at: number });
      expect(dms.map((d) => d.seq)).to.deep.equal(seqs);
      expect(dms[3]).to.include({ from: 'bob', seq: 4, id: 'm3' });
      expect(dms[3]!.body).to.deep.equal({ text: 'hello 3' });
      expect(dms[3]!.at).to.be.a('number');
    }
    // Both devices see each other in the user's own presence.
    const state = a1.frames.find((f) => f[3] === 'presence_state')![4] as Record<string, { metas: { device: string }[] }>;
    expect(state.alice!.metas.map((m) => m.device).sort()).to.deep.equal(['laptop', 'phone']);
    for (const c of [a0, a1, bob]) c.close();
  });

  it('offline: messages wait in the inbox, come back in order after last_seq, go after ack; a resent id is stored once', async () => {
    const bob = await RawClient.open(host.url, token('bob'));
    await bob.join('user:bob', {}, 'u');
    const sent: number[] = [];
    for (let i = 0; i < 5; i++) sent.push(reply(await bob.request('u', 'user:bob', 'dm', { to: 'carol', id: `c${i}`, body: `note ${i}` })).response.seq as number);
    const again = await bob.request('u', 'user:bob', 'dm', { to: 'carol', id: 'c2', body: 'note 2' });
    expect(reply(again).response).to.include({ seq: sent[2], duplicate: true });

    const carol = await RawClient.open(host.url, token('carol'));
    const j = await carol.join('user:carol', { last_seq: 2 }, 'u');
    expect(reply(j).response.seq).to.equal(5);
    await carol.waitFor((f) => f[3] === 'dm' && (f[4] as { seq: number }).seq === 5);
    expect(carol.frames.filter((f) => f[3] === 'dm').map((f) => (f[4] as { seq: number; body: string }).body)).to.deep.equal(['note 2', 'note 3', 'note 4']);
    expect(reply(await carol.request('u', 'user:carol', 'ack', { seq: 4 })).response).to.include({ seq: 4, pending: 1 });
    carol.close();
    await carol.closed;

    const back = await RawClient.open(host.url, token('carol'));
    await back.join('user:carol', {}, 'u');
    await back.waitFor((f) => f[3] === 'dm');
    await new Promise((r) => setTimeout(r, 100));
    expect(back.frames.filter((f) => f[3] === 'dm').map((f) => (f[4] as { seq: number }).seq)).to.deep.equal([5]);
    const next = await bob.request('u', 'user:bob', 'dm', { to: 'carol', body: 'later' });
    expect(reply(next).response.seq).to.equal(6);
    for (const c of [bob, back]) c.close();
  });

  it('bad input: invalid recipient, oversized body, another user\'s topic, ack beyond the last seq, unknown event', async () => {
    const c = await RawClient.open(host.url, token('dave'));
    expect(reply(await c.join('user:erin', {}, 'x')).response.code).to.equal('SANDBAR_ERR_FORBIDDEN');
    await c.join('user:dave', {}, 'u');
    expect(reply(await c.request('u', 'user:dave', 'dm', { to: 'no spaces allowed', body: 'x' })).response.code).to.equal('SANDBAR_ERR_INVALID_ID');
    expect(reply(await c.request('u', 'user:dave', 'dm', { to: 'erin', body: 'x'.repeat(2000) })).response.code).to.equal('SANDBAR_ERR_TOO_LARGE');
    expect(reply(await c.request('u', 'user:dave', 'ack', { seq: 99 })).response.code).to.equal('SANDBAR_ERR_BAD_PAYLOAD');
    expect(reply(await c.request('u', 'user:dave', 'dance', {})).response.code).to.equal('SANDBAR_ERR_UNKNOWN_EVENT');
    expect(reply(await c.join('user:dave', { last_seq: -1 }, 'v')).response.code).to.equal('SANDBAR_ERR_BAD_PAYLOAD');
    // The refused join replaced the channel; a good join works and the session is still fine.
    expect(reply(await c.join('user:dave', {}, 'w')).status).to.equal('ok');
    expect(reply(await c.request('w', 'user:dave', 'dm', { to: 'erin', body: 'fine' })).status).to.equal('ok');
    c.close();
  });
});

describe('rooms: presence, history, broadcast', function () {
  this.timeout(60000);
  const { host } = withHost({ workers: 2, flags: { 'session.idleTimeoutMs': 1500, 'room.historyMax': 5 } });

  function phoenix(user: string): Socket {
    const s = new Socket(`${host.url}/socket`, { transport: WebSocket as any, params: { token: token(user) }, heartbeatIntervalMs: 500, reconnectAfterMs: () => 60000 });
    s.connect();
    return s;
  }

  it("the phoenix Presence class sees joins and leaves of clients on other workers, with the right metas; a killed socket leaves within idleTimeoutMs, a clean close at once", async () => {
    const watcher = phoenix('watcher');
    const ch = watcher.channel('room:lobby', { device: 'observer' });
    const presence = new Presence(ch);
    const list = () => presence.list((id: string, { metas }: { metas: { device?: string }[] }) => `${id}:${metas.map((m) => m.device).sort().join(',')}`).sort();
    await new Promise((resolve, reject) => ch.join().receive('ok', resolve).receive('error', reject));
    const waitList = async (want: string[], ms: number) => {
      const deadline = Date.now() + ms;
      while (JSON.stringify(list()) !== JSON.stringify(want)) {
        if (Date.now() > deadline) throw new Error(`presence ${JSON.stringify(list())} != ${JSON.stringify(want)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      return Date.now() - (deadline - ms);
    };
    await waitList(['watcher:observer'], 3000);
    const x0 = await clientOnWorker(host.url, 'xena', 0);
    const x1 = await clientOnWorker(host.url, 'xena', 1);
    const y = await clientOnWorker(host.url, 'yuri', 1);
    const beat = setInterval(() => { for (const c of [x0, x1]) c.send([null, c.ref(), 'phoenix', 'heartbeat', {}]); }, 300);
    try {
      await x0.join('room:lobby', { device: 'phone' }, 'r');
      await x1.join('room:lobby', { device: 'tablet' }, 'r');
      await y.join('room:lobby', { device: 'desk' }, 'r');
      await waitList(['watcher:observer', 'xena:phone,tablet', 'yuri:desk'], 3000);
      x1.close();
      const cleanMs = await waitList(['watcher:observer', 'xena:phone', 'yuri:desk'], 3000);
      expect(cleanMs).to.be.below(1000);
      y.terminate(); // socket destroyed, no close frame: only the idle timeout tells
      const killedMs = await waitList(['watcher:observer', 'xena:phone'], 5000);
      expect(killedMs).to.be.below(1500 + 1500);
    } finally {
      clearInterval(beat);
      x0.close();
      watcher.disconnect();
    }
  });

  it('messages are sequenced, kept in bounded history and replayed after last_seq', async () => {
    const a = await RawClient.open(host.url, token('ann'));
    await a.join('room:hist', {}, 'r');
    for (let i = 1; i <= 7; i++) expect(reply(await a.request('r', 'room:hist', 'msg', { id: `h${i}`, body: { n: i } })).response.seq).to.equal(i);
    await a.waitFor((f) => f[3] === 'msg' && (f[4] as { seq: number }).seq === 7);
    const b = await RawClient.open(host.url, token('ben'));
    const j = await b.join('room:hist', { last_seq: 1 }, 'r');
    expect(reply(j).response.seq).to.equal(7);
    await b.waitFor((f) => f[3] === 'msg' && (f[4] as { seq: number }).seq === 7);
    // historyMax = 5: seqs 3..7 are kept.
    expect(b.frames.filter((f) => f[3] === 'msg').map((f) => (f[4] as { seq: number }).seq)).to.deep.equal([3, 4, 5, 6, 7]);
    expect(reply(await b.request('r', 'room:hist', 'shout', {})).response.code).to.equal('SANDBAR_ERR_UNKNOWN_EVENT');
    a.close(); b.close();
  });

});

describe('rooms: broadcast at scale', function () {
  this.timeout(60000);
  const { host } = withHost({ workers: 2 });

  it('a broadcast to 1,000 members spread over both workers arrives at every member exactly once', async () => {
    const members = await openMany(1000, host.url, (i) => token(`m${i}`));
    try {
      // Each join answers with the whole presence state so far, so joins go in
      // waves of 100, as clients arrive in life, not all 1,000 in one instant.
      const joins: Frame[] = [];
      for (let i = 0; i < members.length; i += 100) joins.push(...await Promise.all(members.slice(i, i + 100).map((c) => c.join('room:big', {}, 'r', 30000))));
      expect(joins.every((f) => reply(f).status === 'ok')).to.equal(true);
      const sender = members[0]!;
      const seqs: number[] = [];
      for (let i = 0; i < 3; i++) seqs.push(reply(await sender.request('r', 'room:big', 'msg', { body: `all ${i}` })).response.seq as number);
      await Promise.all(members.map((c) => c.waitFor((f) => f[3] === 'msg' && (f[4] as { seq: number }).seq === seqs[2], 15000)));
      for (const c of members) {
        const got = c.frames.filter((f) => f[2] === 'room:big' && f[3] === 'msg').map((f) => (f[4] as { seq: number }).seq);
        expect(got).to.deep.equal(seqs);
      }
    } finally {
      for (const c of members) c.terminate();
    }
  });
});

describe('a dead worker leaves no ghosts', function () {
  this.timeout(30000);
  const { host } = withHost({ workers: 2 });

  it('kill -9 of a worker: presence of its sessions disappears (leaves broadcast) within 2 s; presence is rebuilt on the restarted worker', async () => {
    const watchers = [await clientOnWorker(host.url, 'w0', 0), await clientOnWorker(host.url, 'w1', 1)];
    const doomed = await clientOnWorker(host.url, 'doomed', 0);
    const rooms = Array.from({ length: 8 }, (_, i) => `room:r${i}`);
    for (const r of rooms) {
      await watchers[1]!.join(r, {}, r);
      await doomed.join(r, {}, r);
    }
    const from = host.lines.length;
    const t0 = Date.now();
    process.kill(host.workerPids().get(0)!, 'SIGKILL');
    // Each room's watcher on the surviving worker hears the leave, wherever the room actor lived.
    // Rooms mastered elsewhere broadcast the leave; rooms whose master died with
    // the worker are rebuilt, and the watcher gets a fresh presence_state without the ghost.
    const gone = (r: string) => (f: Frame) => f[2] === r && (
      (f[3] === 'presence_diff' && Object.keys((f[4] as { leaves: object }).leaves).includes('doomed')) ||
      (f[3] === 'presence_state' && watchers[1]!.frames.indexOf(f) > joinedAt && !Object.keys(f[4] as object).includes('doomed')));
    const joinedAt = watchers[1]!.frames.length - 1;
    await Promise.all(rooms.map((r) => watchers[1]!.waitFor(gone(r), 5000)));
    expect(Date.now() - t0).to.be.below(2000);
    await host.waitFor((l) => l.msg === 'worker has the cluster view' && l.worker === 0, 10000, from);
    // Rooms mastered by the restarted worker were rebuilt from the surviving sessions' re-announced joins.
    const late = await clientOnWorker(host.url, 'late', 1);
    for (const r of rooms) {
      await late.join(r, {}, r);
      const state = await late.waitFor((f) => f[2] === r && f[3] === 'presence_state');
      expect(Object.keys(state[4] as object).sort(), r).to.deep.equal(['late', 'w1']);
    }
    for (const c of [...watchers, late]) c.close();
  });
});
