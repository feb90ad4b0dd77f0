/**
 * Regression (docs/reliability.md, open findings 1 and 2, fixed 2026-11-28):
 * one dm whose body was nested about 4,100 levels deep passed every size
 * limit, overflowed the stack in JSON.stringify on its way to the replicas,
 * and the second throw, inside a NATS subscription callback, ended nats.js's
 * reader: the worker never read from NATS again and nothing noticed. Frames
 * nested deeper than 64 levels are now refused with 4400 before they are
 * parsed, so such a body never reaches an actor; the session next to it
 * (the bystander) is untouched.
 */
import { expect } from 'chai';
import { RawClient, token, useBystander, withHost } from '../support/index.js';

describe('regression: a deeply nested dm body cut a worker off NATS', function () {
  this.timeout(30000);
  const { host } = withHost({ workers: 2, flags: { 'session.maxFrameBytes': 4096, 'session.maxBufferedBytes': 65536, 'session.idleTimeoutMs': 1000, 'session.ratePerSecond': 0 } });
  useBystander(() => host.url);

  it('regression: a dm body nested 4,000 levels deep is refused with 4400 before it can reach an actor (it once cut a worker off NATS)', async () => {
    const c = await RawClient.open(host.url, token('offender'));
    await c.join('user:offender', {}, 'u');
    c.sendRaw(`["u","9","user:offender","dm",{"to":"victim","id":"deep","body":${'['.repeat(1500)}${']'.repeat(1500)}}]`);
    expect(await c.closed).to.equal(4400);
    expect(c.closeReason).to.match(/nested deeper than 64/);
  });
});
