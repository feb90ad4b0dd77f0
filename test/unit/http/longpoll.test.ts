import { expect } from 'chai';
import pino from 'pino';
import { SimulatedClock } from '../../../src/actors/clock.js';
import { TimerWheel } from '../../../src/actors/timer-wheel.js';
import { SessionActor, type SessionHost } from '../../../src/actors/session.js';
import type { StopReason } from '../../../src/actors/actor.js';
import { ChannelRegistry } from '../../../src/protocol/channel-registry.js';
import { echoChannel } from '../../../src/protocol/echo-channel.js';
import { LongPollRegistry, ownerOf, type LongPollAnswer, type LongPollRequest } from '../../../src/http/longpoll.js';
import { mintToken } from '../../../src/auth/token.js';
import { TokenVerifier } from '../../../src/auth/verifier.js';
import { loadConfig } from '../../../src/config/index.js';

const SECRET = 'unit-secret';
const WINDOW = 1000;
const IDLE = 5000;

/** A worker's side of the sessions, on a simulated clock. */
function setup(limits: Partial<SessionHost['limits']> = {}, maxForwardBytes = 100_000) {
  const clock = new SimulatedClock();
  const exits: { user: string; reason: StopReason }[] = [];
  const channels = new ChannelRegistry();
  channels.register('echo', echoChannel({ faultInjection: false }));
  const verifier = new TokenVerifier(loadConfig({ argv: [`--auth.secret=${SECRET}`], env: {} }).config.auth, pino({ level: 'silent' }));
  const host: SessionHost = {
    verifyToken: (t) => verifier.verify(t),
    wheel: new TimerWheel(clock, 100),
    channels,
    logger: pino({ level: 'silent' }),
    limits: { idleTimeoutMs: IDLE, maxBufferedBytes: 1 << 20, maxChannels: 10, rate: null, rateMaxRefused: 50, expiryWarningMs: 0, ...limits },
    counters: { framesIn: 0, framesOut: 0, bytesOut: 0 },
    onActorExit: (a, reason) => { exits.push({ user: (a as SessionActor).userId, reason }); },
  };
  const forwarded: { hostId: string; worker: number; req: LongPollRequest }[] = [];
  let n = 0;
  const registry = new LongPollRegistry({
    hostId: 'h1', worker: 0, verifyToken: host.verifyToken, windowMs: WINDOW, maxFrameBytes: 1024,
    wheel: new TimerWheel(clock, 25), logger: host.logger, maxForwardBytes,
    startSession: (t, identity) => { new SessionActor(host, `h1.0.x.${n++}`, identity, t); return true; },
    forward: async (hostId, worker, req) => {
      forwarded.push({ hostId, worker, req });
      if (hostId === 'gone') throw new Error('503 no responders');
      return { status: 204, token: req.lp };
    },
  });
  const open = async (user = 'alice') => {
    const a = await registry.handle({ method: 'GET', lp: undefined, auth: mintToken(SECRET, user, 60) });
    expect(a.status).to.equal(410);
    return a.token!;
  };
  const post = (lp: string, ...frames: unknown[]) => registry.handle({ method: 'POST', lp, auth: undefined, body: frames.map((f) => typeof f === 'string' ? f : JSON.stringify(f)).join('\n') });
  const poll = (lp: string) => registry.handle({ method: 'GET', lp, auth: undefined });
  return { clock, registry, exits, forwarded, open, post, poll };
}

const tick = () => new Promise((r) => setImmediate(r));
const frames = (a: LongPollAnswer) => (a.messages ?? []).map((m) => JSON.parse(m) as unknown[]);

describe('LongPoll sessions (src/http/longpoll.ts)', () => {
  it('opens a session only with a valid auth token; the token names host and worker', async () => {
    const t = setup();
    expect(await t.registry.handle({ method: 'GET', lp: undefined, auth: undefined })).to.deep.include({ status: 403 });
    expect((await t.registry.handle({ method: 'GET', lp: undefined, auth: 'x.y' })).error!.code).to.equal('SANDBAR_ERR_AUTH_INVALID');
    const lp = await t.open();
    expect(ownerOf(lp)).to.deep.equal({ hostId: 'h1', worker: 0 });
    expect(t.registry.size).to.equal(1);
  });

  it('posted frames reach the session actor; their replies wait for the next poll, in order', async () => {
    const t = setup();
    const lp = await t.open();
    expect(await t.post(lp, ['1', '1', 'echo:a', 'phx_join', {}], ['1', '2', 'echo:a', 'ping', { n: 1 }], [null, '3', 'phoenix', 'heartbeat', {}])).to.deep.equal({ status: 200 });
    const a = await t.poll(lp);
    expect(a.status).to.equal(200);
    expect(frames(a).map((f) => f[1])).to.deep.equal(['1', '2', '3']);
    expect(frames(a)[1]![4]).to.deep.equal({ status: 'ok', response: { n: 1 } });
  });

  it('a held poll is answered as soon as a frame is written, 204 after the window, and a newer poll answers an older one', async () => {
    const t = setup();
    const lp = await t.open();
    await t.post(lp, ['1', '1', 'echo:a', 'phx_join', {}]);
    await t.poll(lp);
    const held = t.poll(lp);
    await t.post(lp, ['1', '2', 'echo:a', 'ping', { n: 2 }]);
    expect(frames(await held).map((f) => f[1])).to.deep.equal(['2']);

    const quiet = t.poll(lp);
    t.clock.advance(WINDOW - 100);
    await tick();
    let done = false;
    void quiet.then(() => { done = true; });
    await tick();
    expect(done, 'answered before the window').to.equal(false);
    t.clock.advance(200);
    expect(await quiet).to.deep.equal({ status: 204, token: lp });

    const older = t.poll(lp);
    const newer = t.poll(lp);
    expect(await older).to.deep.equal({ status: 204, token: lp });
    t.clock.advance(WINDOW + 100);
    expect((await newer).status).to.equal(204);
  });

  it('a poll answer carries at most answerBytes of frames (at least one); the rest goes with the next poll', async () => {
    const t = setup({}, 200);
    const lp = await t.open();
    await t.post(lp, ['1', '1', 'echo:a', 'phx_join', {}]);
    await t.poll(lp);
    await t.post(lp, ...Array.from({ length: 6 }, (_, i) => ['1', String(i + 2), 'echo:a', 'ping', { pad: 'q'.repeat(60) }]));
    const got: unknown[] = [];
    for (let i = 0; i < 6 && got.length < 6; i++) {
      const a = await t.poll(lp);
      expect(a.messages!.join('').length <= 200 || a.messages!.length === 1).to.equal(true);
      got.push(...frames(a).map((f) => f[1]));
    }
    expect(got).to.deep.equal(['2', '3', '4', '5', '6', '7']);
  });

  it('a client that stops polling is disconnected once its queued frames pass session.maxBufferedBytes', async () => {
    const t = setup({ maxBufferedBytes: 4096 });
    const lp = await t.open('slow');
    await t.post(lp, ['1', '1', 'echo:a', 'phx_join', {}]);
    const big = 'x'.repeat(500);
    for (let i = 0; i < 20 && t.exits.length === 0; i++) await t.post(lp, ['1', String(i + 2), 'echo:a', 'ping', { big }]);
    expect(t.exits).to.have.length(1);
    expect(t.exits[0]!.reason).to.deep.include({ kind: 'other', code: 'SANDBAR_ERR_SLOW_CONSUMER' });
    expect(await t.poll(lp)).to.deep.equal({ status: 410, token: lp });
    expect(t.registry.size).to.equal(0);
  });

  it('polls count as activity; a session with none for session.idleTimeoutMs is closed and its token answers 410', async () => {
    const t = setup();
    const lp = await t.open('idle');
    // Eight windows: longer than the idle timeout, kept alive by the polls alone.
    for (let i = 0; i < 8; i++) {
      const p = t.poll(lp);
      t.clock.advance(WINDOW + 100);
      expect((await p).status).to.equal(204);
    }
    expect(t.exits).to.have.length(0);
    t.clock.advance(IDLE + 200);
    expect(t.exits.map((e) => e.reason)).to.deep.equal([{ kind: 'other', code: 'SANDBAR_ERR_IDLE_TIMEOUT', message: `no frame for ${IDLE} ms` }]);
    expect((await t.poll(lp)).status).to.equal(410);
  });

  it('bad input closes only that session: an over-long line, a malformed frame', async () => {
    const t = setup();
    const a = await t.open('a');
    const b = await t.open('b');
    expect(await t.post(a, `["1","1","echo:a","ping",{"s":"${'y'.repeat(2000)}"}]`)).to.deep.equal({ status: 410, token: a });
    await t.post(b, '[1,2,3]');
    await tick();
    expect(t.exits.map((e) => [e.user, (e.reason as { code?: string }).code])).to.deep.equal([['a', 'SANDBAR_ERR_FRAME_TOO_LARGE'], ['b', 'SANDBAR_ERR_FRAME_MALFORMED']]);
    const c = await t.open('c');
    expect(await t.post(c, [null, '1', 'phoenix', 'heartbeat', {}])).to.deep.equal({ status: 200 });
  });

  it("forwards a request for another worker's session; a gone owner or a forged token answers 410; a POST without a session 400", async () => {
    const t = setup();
    const other = `lp.${Buffer.from('h2').toString('base64url')}.3.${'A'.repeat(24)}`;
    expect(await t.poll(other)).to.deep.equal({ status: 204, token: other });
    expect(t.forwarded[0]).to.deep.include({ hostId: 'h2', worker: 3 });
    const gone = `lp.${Buffer.from('gone').toString('base64url')}.0.${'A'.repeat(24)}`;
    expect(await t.poll(gone)).to.deep.equal({ status: 410, token: gone });
    for (const host of ['h.1', 'h*', '>', 'a b', '']) {
      expect(ownerOf(`lp.${Buffer.from(host).toString('base64url')}.0.${'A'.repeat(24)}`), host).to.equal(null);
    }
    expect(ownerOf('lp.aDE.0.short')).to.equal(null);
    expect(await t.poll(`lp.${Buffer.from('h1').toString('base64url')}.0.${'B'.repeat(24)}`)).to.deep.equal({ status: 410, token: `lp.aDE.0.${'B'.repeat(24)}` });
    expect(t.forwarded).to.have.length(2);
    expect((await t.registry.handle({ method: 'POST', lp: undefined, auth: undefined, body: '' })).status).to.equal(400);
  });

  it('a forwarded POST larger than maxForwardBytes goes in several requests, split between frames, in order; a refused part stops the rest', async () => {
    const other = `lp.${Buffer.from('h2').toString('base64url')}.1.${'A'.repeat(24)}`;
    const lines = Array.from({ length: 12 }, (_, i) => JSON.stringify([null, String(i), 'phoenix', 'heartbeat', { pad: 'p'.repeat(30) }]));
    const parts: string[] = [];
    let refuseAfter = Infinity;
    const reg = new LongPollRegistry({
      hostId: 'h1', worker: 0, verifyToken: () => Promise.reject(new Error('no auth in this test')), windowMs: WINDOW, maxFrameBytes: 1024, maxForwardBytes: 200,
      wheel: new TimerWheel(new SimulatedClock(), 25), logger: pino({ level: 'silent' }),
      startSession: () => false,
      forward: async (_h, _w, req) => { parts.push(req.body!); return parts.length > refuseAfter ? { status: 410, token: req.lp } : { status: 200 }; },
    });
    expect(await reg.handle({ method: 'POST', lp: other, auth: undefined, body: lines.join('\n') })).to.deep.equal({ status: 200 });
    expect(parts.length).to.be.greaterThan(2);
    for (const p of parts) expect(Buffer.byteLength(p)).to.be.at.most(200);
    expect(parts.join('\n')).to.equal(lines.join('\n'));
    parts.length = 0;
    refuseAfter = 1;
    expect(await reg.handle({ method: 'POST', lp: other, auth: undefined, body: lines.join('\n') })).to.deep.equal({ status: 410, token: other });
    expect(parts).to.have.length(2);
  });

});
