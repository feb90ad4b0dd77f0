/**
 * A bystander session for tests that attack another one: joined to
 * echo:calm and heartbeating before each test, and checked after it (it must
 * still answer an echo push and never have been closed).
 */
import { expect } from 'chai';
import { RawClient } from './clients.js';
import { token } from './host.js';

/** Installs the beforeEach/afterEach pair in the calling describe block. */
export function useBystander(url: () => string, opts: { localAddress?: string; heartbeatMs?: number } = {}): void {
  let bystander: RawClient;
  let beat: NodeJS.Timeout;
  beforeEach(async () => {
    bystander = await RawClient.open(url(), token('bystander'), { localAddress: opts.localAddress });
    await bystander.join('echo:calm', {}, 'b');
    // Heartbeats keep the bystander inside a short idle timeout.
    beat = setInterval(() => bystander.send([null, bystander.ref(), 'phoenix', 'heartbeat', {}]), opts.heartbeatMs ?? 250);
  });
  afterEach(async () => {
    // The bystander is untouched by whatever the test did to another session.
    const f = await bystander.request('b', 'echo:calm', 'still-there', { ok: 1 });
    expect(f[4]).to.deep.equal({ status: 'ok', response: { ok: 1 } });
    expect(bystander.closeCode).to.equal(null);
    clearInterval(beat);
    bystander.close();
  });
}
