/**
 * Slow consumers and memory bounds (issue 7, item 4): 1,000 room members stop
 * reading while the room broadcasts. Runs test/scenarios/slow-consumers.ts in
 * a network namespace with small TCP buffers (test/support/unshare.ts), so the
 * kernel absorbs about 200 KB per paused socket instead of 4 MB and the
 * server's own bound, session.maxBufferedBytes, is what ends each session.
 */
import { expect } from 'chai';
import { join } from 'node:path';
import { runInNetns } from '../support/unshare.js';

interface SlowResult {
  slow: number; fast: number; maxBufferedBytes: number; messages: number;
  slowClosed: number; slowClosedUsers: number; fastInOrder: boolean; fastClosed: number;
  sessionsLeft: number; crashes: number; slowClosedMetric: number; floodMs: number;
  baselineP50: number; baselineP99: number; floodP50: number; floodP99: number;
  rssIdle: number; rssMax: number; workerRestarts: number;
}

/** The documented ceiling (docs/reliability.md): idle RSS + its sessions' buffer bound + 64 MiB for the runtime. */
const RSS_SLACK = 64 * 1024 * 1024;

describe('slow consumers: 1,000 members stop reading while the room broadcasts', function () {
  this.timeout(150000);

  it('each paused session is closed at session.maxBufferedBytes (4408); worker RSS stays under the ceiling; the fast members get every message with their latency near the baseline', async () => {
    const { result: r } = await runInNetns<SlowResult>(join(import.meta.dirname, '../scenarios/slow-consumers.ts'), {
      tcpWmem: '4096 16384 131072', tcpRmem: '4096 16384 65536', timeoutMs: 140000,
    });
    console.log(`      slow consumers: ${JSON.stringify(r)}`);
    expect(r.slowClosed, 'paused sessions closed with SANDBAR_ERR_SLOW_CONSUMER').to.equal(r.slow);
    expect(r.slowClosedUsers).to.equal(r.slow);
    expect(r.slowClosedMetric, 'sandbar_session_closes_total{reason="SANDBAR_ERR_SLOW_CONSUMER"}').to.equal(r.slow);
    expect(r.fastClosed, 'fast members closed').to.equal(0);
    expect(r.fastInOrder, 'fast members got every message, in order').to.equal(true);
    expect(r.sessionsLeft, 'sessions left: the fast members and the sender').to.equal(r.fast + 1);
    expect(r.crashes).to.equal(0);
    expect(r.workerRestarts).to.equal(0);
    // Half the paused sessions per worker, each at most its bound plus one message.
    const ceiling = r.rssIdle + (r.slow / 2) * (r.maxBufferedBytes + 8192) + RSS_SLACK;
    expect(r.rssMax, `max worker RSS ${r.rssMax} vs ceiling ${ceiling}`).to.be.below(ceiling);
    // Latency while the server sheds the slow members: the median within 4 times the baseline (+ 50 ms for loopback noise).
    expect(r.floodP50).to.be.below(r.baselineP50 * 4 + 50);
  });
});
