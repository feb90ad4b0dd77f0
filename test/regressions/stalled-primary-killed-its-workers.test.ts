/**
 * Regression (docs/reliability.md, finding 5, fixed 2026-11-29): 10,000
 * connections in one instant kept the primary busy passing them to the
 * workers; its ping timer fired late, the workers' pongs were still unread
 * in its IPC pipes, and it killed both workers as hung, then gave up after
 * their restarts met the same burst. The primary now credits every worker
 * with its own delay and reads the pending pongs before it judges one
 * silent. Stopping the primary itself (SIGSTOP for 3 x workerHangMs) is the
 * same stall, reproducible: before the fix both workers were killed.
 */
import { expect } from 'chai';
import { withHost } from '../support/index.js';

describe('regression: a stalled primary took its workers for hung', function () {
  this.timeout(30000);
  const hangMs = 1000;
  const { host } = withHost({ workers: 2, flags: { 'cluster.workerPingMs': 100, 'cluster.workerHangMs': hangMs } });

  it('a primary that was itself stalled (SIGSTOP for 3 × workerHangMs) does not take the workers for hung', async () => {
    const pids = host.workerPids();
    const from = host.lines.length;
    process.kill(host.proc.pid!, 'SIGSTOP');
    await new Promise((r) => setTimeout(r, 3 * hangMs));
    process.kill(host.proc.pid!, 'SIGCONT');
    // Several ping rounds after the stall.
    await new Promise((r) => setTimeout(r, 5 * 100 + hangMs));
    expect(host.lines.slice(from).filter((l) => /answering pings|worker died/.test(String(l.msg)))).to.deep.equal([]);
    expect(host.workerPids()).to.deep.equal(pids);
  });
});
