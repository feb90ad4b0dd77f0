import { expect } from 'chai';
import { RawClient, token, withHost } from '../support/index.js';
import { useBystander } from '../support/bystander.js';

type Reply = { status: string; response: { reason?: string; code?: string } };

describe('bad input gets a clear answer and nothing else is lost', function () {
  this.timeout(30000);
  // No frame-rate limit: the slow-consumer test floods pushes (limits.test.ts tests the rate limit).
  const { host } = withHost({ workers: 2, flags: { 'session.maxFrameBytes': 4096, 'session.maxBufferedBytes': 65536, 'session.idleTimeoutMs': 1000, 'session.ratePerSecond': 0 } });
  useBystander(() => host.url);

  async function client(): Promise<RawClient> {
    return RawClient.open(host.url, token('offender'));
  }

  for (const [name, frame] of [
    ['malformed JSON', '[null, "1", "echo:x", "phx_join", {'],
    ['a frame that is not an array', '{"topic":"echo:x","event":"phx_join"}'],
    ['an array of 4 elements', '[null, "1", "echo:x", "phx_join"]'],
    ['a non-string topic', '[null, "1", 42, "phx_join", {}]'],
    ['a non-string event', '["1", "1", "echo:x", null, {}]'],
  ] as const) {
    it(`${name} closes that session with 4400 and a reason`, async () => {
      const c = await client();
      c.sendRaw(frame);
      expect(await c.closed).to.equal(4400);
      expect(c.closeReason).to.match(/^SANDBAR_ERR_FRAME_MALFORMED/);
    });
  }

  it('garbage binary frames close that session with 4400', async () => {
    const c = await client();
    c.sendRaw(Buffer.from([9, 200, 1, 2, 3]));
    expect(await c.closed).to.equal(4400);
    expect(c.closeReason).to.match(/^SANDBAR_ERR_FRAME_BINARY/);
  });

  it('a frame over session.maxFrameBytes closes the session with 1009', async () => {
    const c = await client();
    await c.join('echo:x');
    c.send(['1', '9', 'echo:x', 'big', { pad: 'x'.repeat(5000) }]);
    expect(await c.closed).to.equal(1009);
  });

  it('a push to a topic not joined gets an "unmatched topic" error reply', async () => {
    const c = await client();
    const f = await c.request('1', 'echo:never', 'hi', {});
    expect(f[4]).to.deep.equal({ status: 'error', response: { reason: 'unmatched topic', code: 'SANDBAR_ERR_UNMATCHED_TOPIC' } });
    expect(c.closeCode).to.equal(null);
    c.close();
  });

  it('a join of a topic no channel serves gets "unmatched topic"', async () => {
    const c = await client();
    const f = await c.join('nosuch:x');
    expect((f[4] as Reply).response.code).to.equal('SANDBAR_ERR_UNMATCHED_TOPIC');
    c.close();
  });

  it('an unknown event on the phoenix topic gets an error reply', async () => {
    const c = await client();
    const f = await c.request(null, 'phoenix', 'dance', {});
    expect((f[4] as Reply).status).to.equal('error');
    expect((f[4] as Reply).response.code).to.equal('SANDBAR_ERR_UNKNOWN_EVENT');
    c.close();
  });

  it('a second join with the same join_ref is refused; a new join_ref replaces the channel with phx_close to the old one', async () => {
    const c = await client();
    await c.join('echo:x', {}, 'a');
    const again = await c.join('echo:x', {}, 'a');
    expect((again[4] as Reply).response.code).to.equal('SANDBAR_ERR_ALREADY_JOINED');
    const replaced = await c.join('echo:x', {}, 'b');
    expect((replaced[4] as Reply).status).to.equal('ok');
    await c.waitFor((f) => f[0] === 'a' && f[3] === 'phx_close');
    const stale = await c.request('a', 'echo:x', 'hi', {});
    expect((stale[4] as Reply).response.code).to.equal('SANDBAR_ERR_UNMATCHED_TOPIC');
    const fresh = await c.request('b', 'echo:x', 'hi', { v: 1 });
    expect(fresh[4]).to.deep.equal({ status: 'ok', response: { v: 1 } });
    c.close();
  });

  it('phx_leave is acknowledged and later pushes on that topic are unmatched', async () => {
    const c = await client();
    await c.join('echo:x', {}, 'a');
    const left = await c.request('a', 'echo:x', 'phx_leave', {});
    expect((left[4] as Reply).status).to.equal('ok');
    const after = await c.request('a', 'echo:x', 'hi', {});
    expect((after[4] as Reply).response.code).to.equal('SANDBAR_ERR_UNMATCHED_TOPIC');
    c.close();
  });

  it('a session with no frame for session.idleTimeoutMs is closed with 4000', async () => {
    const c = await client();
    const t0 = Date.now();
    expect(await c.closed).to.equal(4000);
    expect(Date.now() - t0).to.be.within(900, 3000);
  });

  it('a client that stops reading is disconnected before its buffer passes session.maxBufferedBytes', async () => {
    const c = await client();
    await c.join('echo:x', {}, 'a');
    // Stop reading: the server's replies pile up in the kernel, then in its own buffer.
    (c.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const pad = 'y'.repeat(3500);
    for (let i = 0; i < 4000 && c.closeCode === null; i++) {
      c.send(['a', String(i), 'echo:x', 'flood', { pad }]);
      if (i % 100 === 99) await new Promise((r) => setTimeout(r, 5));
    }
    await host.waitFor((l) => l.code === 'SANDBAR_ERR_SLOW_CONSUMER', 10000);
    c.terminate();
  });
});
