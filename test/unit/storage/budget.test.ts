import { expect } from 'chai';
import { StorageBudget, budgetLimits, refusalError, DEFAULT_HEAP_SHARE } from '../../../src/storage/index.js';
import { loadConfig } from '../../../src/config/index.js';
import type { Logger } from '../../../src/observability/logger.js';

/** A logger that keeps its lines (level, fields, message). */
function recorder(): { logger: Logger; lines: { level: string; obj: Record<string, unknown>; msg: string }[] } {
  const lines: { level: string; obj: Record<string, unknown>; msg: string }[] = [];
  const at = (level: string) => (obj: Record<string, unknown>, msg: string) => { lines.push({ level, obj, msg }); };
  return { logger: { warn: at('warn'), error: at('error'), info: at('info') } as unknown as Logger, lines };
}

const MiB = 1024 * 1024;

describe('storage/budget: the per-worker storage budget', () => {
  it('derives from the heap limit (40 %) unless storage.budgetMb is set; the warning mark is storage.warnPercent of it', () => {
    const d = budgetLimits(loadConfig({ argv: [], env: {} }).config, 1000 * MiB);
    expect(d.budget).to.equal(Math.floor(1000 * MiB * DEFAULT_HEAP_SHARE));
    expect(d.warnAt).to.equal(Math.floor(d.budget * 0.8));
    expect(d.perShard).to.equal(64 * MiB); // persistence.maxSnapshotBytes
    const set = budgetLimits(loadConfig({ argv: ['--storage.budgetMb=48', '--storage.warnPercent=50', '--persistence.mode=none'], env: {} }).config, 1000 * MiB);
    expect(set).to.include({ budget: 48 * MiB, warnAt: 24 * MiB, perShard: Infinity, perSender: Math.floor(48 * MiB * 0.02) });
  });

  it('counts bytes in and out, in total and per shard', () => {
    const b = new StorageBudget({ budget: 1000, warnAt: 900, perShard: 600, perSender: Infinity, shards: 4 });
    b.add(1, 300);
    b.add(2, 200);
    b.add(1, -100);
    expect(b.bytes).to.equal(400);
    expect([0, 1, 2, 3].map((n) => b.shardBytes(n))).to.deep.equal([0, 200, 200, 0]);
  });

  it('refuses past the budget ("full") and past the shard cap ("shard"), counts each, and admits again once bytes are freed', () => {
    const b = new StorageBudget({ budget: 1000, warnAt: 2000, perShard: 600, perSender: Infinity, shards: 2 });
    b.add(0, 550);
    expect(b.admit(0, 50, 'a')).to.equal(undefined);
    expect(b.admit(0, 51, 'a')).to.equal('shard');
    b.add(1, 400);
    expect(b.admit(1, 51, 'a')).to.equal('full');
    expect(b.admit(1, 50, 'a')).to.equal(undefined);
    expect([b.refusedFull, b.refusedShard]).to.deep.equal([1, 1]);
    b.add(0, -500);
    expect(b.admit(0, 51, 'a')).to.equal(undefined);
  });

  it('past the warning mark, a sender holding more than its share is refused ("share") while others still get in', () => {
    const b = new StorageBudget({ budget: 1000, warnAt: 800, perShard: Infinity, perSender: 50, shards: 1 });
    b.entry(0, 'mallory', 790);
    expect(b.admit(0, 10, 'mallory')).to.equal(undefined); // below the mark: anyone
    b.entry(0, 'mallory', 10);
    expect(b.admit(0, 10, 'mallory')).to.equal('share');
    expect(b.admit(0, 10, 'alice')).to.equal(undefined);
    b.entry(0, 'alice', 45);
    expect(b.admit(0, 10, 'alice')).to.equal('share');
    expect(b.admit(0, 5, 'alice')).to.equal(undefined);
    expect(b.senderBytes('mallory')).to.equal(800);
    expect(b.senders).to.equal(2);
    b.entry(0, 'alice', -45);
    expect(b.senders).to.equal(1);
    expect(b.refusedShare).to.equal(2);
    // The budget itself binds everyone.
    b.entry(0, 'mallory', 195);
    expect(b.admit(0, 10, 'bob')).to.equal('full');
  });

  it('refuses with "log" while the durable log says it is full', () => {
    let full = true;
    const b = new StorageBudget({ budget: 1000, warnAt: 900, perShard: Infinity, perSender: Infinity, shards: 1 });
    b.logFull = () => full;
    expect(b.admit(0, 1, 'a')).to.equal('log');
    full = false;
    expect(b.admit(0, 1, 'a')).to.equal(undefined);
    expect(b.refusedLog).to.equal(1);
  });

  it('logs refusals at error level at most once per 10 s per kind, with how many were refused', () => {
    const { logger, lines } = recorder();
    let now = 0;
    const b = new StorageBudget({ budget: 10, warnAt: 100, perShard: Infinity, perSender: Infinity, shards: 1 }, logger, () => now);
    for (let i = 0; i < 1000; i++) b.admit(0, 11, 'a');
    now = 10_000;
    b.admit(0, 11, 'a');
    const errors = lines.filter((l) => l.level === 'error');
    expect(errors).to.have.length(2);
    expect(errors[0]!.obj).to.include({ code: 'SANDBAR_ERR_STORAGE_FULL', refused: 1 });
    expect(errors[1]!.obj.refused).to.equal(1000);
    expect(b.refusedFull).to.equal(1001);
  });

  it('warns when passing the warning mark, at most once a minute while above, and again after falling below and passing it', () => {
    const { logger, lines } = recorder();
    let now = 0;
    const b = new StorageBudget({ budget: 1000, warnAt: 800, perShard: Infinity, perSender: Infinity, shards: 1 }, logger, () => now);
    b.add(0, 799);
    expect(b.warnings).to.equal(0);
    for (let i = 0; i < 50; i++) b.add(0, 1);
    expect(b.warnings).to.equal(1);
    now = 30_000;
    b.add(0, 1);
    expect(b.warnings).to.equal(1);
    now = 61_000;
    b.add(0, 1);
    expect(b.warnings).to.equal(2);
    b.add(0, -200); // below 95 % of the mark
    now = 62_000;
    b.add(0, 200);
    expect(b.warnings).to.equal(3);
    expect(lines.filter((l) => l.level === 'warn')).to.have.length(3);
  });

  it('gives a refused sender a retryable reply error with a stable code', () => {
    expect(refusalError('full', 'user bob')).to.include({ code: 'SANDBAR_ERR_STORAGE_FULL', retryable: true });
    expect(refusalError('shard', 'room r')).to.include({ code: 'SANDBAR_ERR_STORAGE_FULL' });
    expect(refusalError('log', 'user bob')).to.include({ code: 'SANDBAR_ERR_JETSTREAM_FULL', retryable: true });
  });
});
