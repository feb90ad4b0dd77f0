import { expect } from 'chai';
import fc from 'fast-check';
import { SenderBudget } from '../../../src/storage/index.js';
import { SandbarError } from '../../../src/errors.js';
import type { Logger } from '../../../src/observability/logger.js';

const limits = { newRecipientsPerMin: 10, newRoomsPerMin: 4, bytesPerMin: 10_000, maxBodyBytes: 1_000 };

/** The code a check threw, or 'ok'. */
function outcome(fn: () => void): string {
  try { fn(); return 'ok'; } catch (err) {
    if (err instanceof SandbarError) return err.code;
    throw err;
  }
}

describe('storage/sender-budget: per-sender budgets in the push path', () => {
  it('ordinary use is untouched: 16 friends, messaged in turn at the frame-rate limit for ten minutes (default budgets), never refused', () => {
    const b = new SenderBudget({ newRecipientsPerMin: 100, newRoomsPerMin: 30, bytesPerMin: 0, maxBodyBytes: 16384 });
    let refused = 0;
    for (let t = 0; t < 600_000; t += 10) refused += outcome(() => b.dm('alice', `friend${(t / 10) % 16}`, 100, t)) === 'ok' ? 0 : 1;
    expect(refused).to.equal(0);
  });

  it('ordinary use is untouched: a new contact every 10 s (below newRecipientsPerMin) among chats with the last few', () => {
    const b = new SenderBudget({ ...limits, bytesPerMin: 0 });
    let refused = 0;
    for (let t = 0; t < 600_000; t += 100) {
      const contact = Math.floor(t / 10_000);
      refused += outcome(() => b.dm('alice', `c${contact - (t / 100) % 4}`, 100, t)) === 'ok' ? 0 : 1;
    }
    expect(refused).to.equal(0);
  });

  it('a spray of new recipients is refused past newRecipientsPerMin with SANDBAR_ERR_SEND_QUOTA, and refills over the minute', () => {
    const b = new SenderBudget(limits);
    const first = Array.from({ length: 15 }, (_, i) => outcome(() => b.dm('mallory', `r${i}`, 10, 0)));
    expect(first.filter((o) => o === 'ok')).to.have.length(10);
    expect(first.slice(10)).to.deep.equal(Array(5).fill('SANDBAR_ERR_SEND_QUOTA'));
    // A recent recipient still gets messages; a new one waits 6 s for one token.
    expect(outcome(() => b.dm('mallory', 'r3', 10, 1000))).to.equal('ok');
    expect(outcome(() => b.dm('mallory', 'new', 10, 5000))).to.equal('SANDBAR_ERR_SEND_QUOTA');
    expect(outcome(() => b.dm('mallory', 'new', 10, 6001))).to.equal('ok');
    expect(b.refused.recipients).to.equal(6);
    // Another sender has its own budget.
    expect(outcome(() => b.dm('bob', 'r100', 10, 6001))).to.equal('ok');
  });

  it('logs refusals as one warning per 10 s at most, with the sender and how many were refused', () => {
    const lines: Record<string, unknown>[] = [];
    const logger = { warn: (o: Record<string, unknown>) => { lines.push(o); } } as unknown as Logger;
    const b = new SenderBudget(limits, 100, logger);
    for (let i = 0; i < 500; i++) outcome(() => b.dm('mallory', `r${i}`, 10, 0));
    // 10 s later 1.7 tokens have come back: one new recipient passes, the next is refused and logged.
    expect([outcome(() => b.dm('mallory', 'again1', 10, 10_000)), outcome(() => b.dm('mallory', 'again2', 10, 10_000))]).to.deep.equal(['ok', 'SANDBAR_ERR_SEND_QUOTA']);
    expect(lines).to.have.length(2);
    expect(lines[0]).to.include({ code: 'SANDBAR_ERR_SEND_QUOTA', user: 'mallory', quota: 'recipients', refused: 1 });
    // The 490 refused at 0 s, less the one the first line stood for, and this one.
    expect(lines[1]!.refused).to.equal(490);
  });

  it('the error says which key and when to retry', () => {
    const b = new SenderBudget(limits);
    for (let i = 0; i < 10; i++) b.dm('m', `r${i}`, 1, 0);
    try { b.dm('m', 'x', 1, 0); expect.fail('not refused'); } catch (err) {
      expect((err as SandbarError).message).to.match(/sender\.newRecipientsPerMin.*retry in 6 s/);
      expect((err as SandbarError).retryable).to.equal(true);
    }
  });

  it('rooms: new rooms per minute, recent rooms free', () => {
    const b = new SenderBudget(limits);
    const got = Array.from({ length: 6 }, (_, i) => outcome(() => b.roomMsg('m', `room${i}`, 10, 0)));
    expect(got).to.deep.equal(['ok', 'ok', 'ok', 'ok', 'SANDBAR_ERR_SEND_QUOTA', 'SANDBAR_ERR_SEND_QUOTA']);
    for (let i = 0; i < 50; i++) expect(outcome(() => b.roomMsg('m', `room${i % 4}`, 10, 1))).to.equal('ok');
    expect(b.refused.rooms).to.equal(2);
  });

  it('bytes per minute: refused past the bucket, which holds at least one largest message', () => {
    const b = new SenderBudget(limits);
    let ok = 0;
    for (let i = 0; i < 20; i++) if (outcome(() => b.dm('m', 'friend', 1000, 0)) === 'ok') ok++;
    expect(ok).to.equal(10);
    expect(outcome(() => b.dm('m', 'friend', 1000, 6000))).to.equal('ok'); // 6 s refill 1,000 bytes
    const tiny = new SenderBudget({ ...limits, bytesPerMin: 10 });
    expect(outcome(() => tiny.dm('m', 'friend', 1000, 0))).to.equal('ok');
  });

  it('0 turns each budget off', () => {
    const b = new SenderBudget({ newRecipientsPerMin: 0, newRoomsPerMin: 0, bytesPerMin: 0, maxBodyBytes: 1 });
    for (let i = 0; i < 10_000; i++) b.dm('m', `r${i}`, 1_000_000, 0);
    for (let i = 0; i < 10_000; i++) b.roomMsg('m', `r${i}`, 1_000_000, 0);
    expect(b.refused).to.deep.equal({ recipients: 0, rooms: 0, bytes: 0 });
  });

  it('remembers at most maxSenders senders, forgetting the least recently refreshed first', () => {
    const b = new SenderBudget(limits, 100);
    for (let i = 0; i < 1000; i++) b.dm(`s${i}`, 'x', 1, i * 10_000);
    expect(b.size).to.equal(100);
  });

  it('property: whatever the sequence, new recipients accepted within any time t stay within perMin + perMin × t / 1 min', () => {
    fc.assert(fc.property(
      fc.array(fc.record({ dt: fc.integer({ min: 0, max: 3000 }), to: fc.integer({ min: 0, max: 200 }) }), { maxLength: 400 }),
      (steps) => {
        const b = new SenderBudget({ ...limits, bytesPerMin: 0 });
        let t = 0;
        const accepted: { t: number; to: number }[] = [];
        const seen = new Set<number>();
        for (const s of steps) {
          t += s.dt;
          if (outcome(() => b.dm('m', `u${s.to}`, 1, t)) === 'ok' && !seen.has(s.to)) { accepted.push({ t, to: s.to }); seen.add(s.to); }
        }
        // Distinct recipients ever accepted bound the new ones from below.
        return accepted.length <= limits.newRecipientsPerMin + Math.floor(limits.newRecipientsPerMin * t / 60_000) + 1;
      },
    ), { numRuns: 200 });
  });
});
