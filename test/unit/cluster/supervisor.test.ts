import { expect } from 'chai';
import { ExitStreaks, RestartPolicy, SAME_EXIT_IN_A_ROW, classifyExit, type ExitFacts } from '../../../src/cluster/supervisor.js';
import { workerExecArgv, workerHeapMb } from '../../../src/cluster/heap.js';
import { loadConfig } from '../../../src/config/index.js';

const keys = { workerHangMs: 5000, workerHeapMb: 256, budgetMb: 0 };
const facts = (f: Partial<ExitFacts>): ExitFacts => ({ code: 1, signal: null, killedAsHung: false, restoring: false, answered: true, started: true, heapShare: 0.2, ...f });

describe('cluster/supervisor: why a worker died, and the same way in a row', () => {
  it('tells hung-while-restoring from hung, out of memory, a failed start and an uncaught exception, each with what to do', () => {
    const hr = classifyExit(facts({ killedAsHung: true, restoring: true, signal: 'SIGKILL', code: null }), keys);
    expect(hr.kind).to.equal('hung-restoring');
    expect(hr.todo).to.match(/cluster\.workerHangMs/);
    expect(classifyExit(facts({ killedAsHung: true, signal: 'SIGKILL', code: null }), keys).kind).to.equal('hung');
    const slow = classifyExit(facts({ killedAsHung: true, answered: false, started: false, signal: 'SIGKILL', code: null }), keys);
    expect(slow.kind).to.equal('hung-starting');
    expect(slow.todo).to.match(/raise it/);
    const oom = classifyExit(facts({ signal: 'SIGABRT', code: null, heapShare: 0.97 }), keys);
    expect(oom.kind).to.equal('out-of-memory');
    expect(oom.why).to.match(/97 %.*256 MiB/);
    expect(oom.todo).to.match(/storage\.budgetMb.*cluster\.workerHeapMb/);
    expect(classifyExit(facts({ code: 134 }), keys).kind).to.equal('out-of-memory');
    expect(classifyExit(facts({ started: false }), keys).kind).to.equal('start-failed');
    expect(classifyExit(facts({ code: 70 }), keys).kind).to.equal('uncaught');
    expect(classifyExit(facts({ code: null, signal: 'SIGTERM' }), keys).kind).to.equal('exit-null-SIGTERM');
  });

  it('counts exits of the same kind in a row per worker slot; another kind starts again; the host gives up naming the loop', () => {
    const s = new ExitStreaks();
    const hung = classifyExit(facts({ killedAsHung: true, signal: 'SIGKILL', code: null }), keys);
    const oom = classifyExit(facts({ signal: 'SIGABRT', code: null }), keys);
    expect(s.givingUp(oom)).to.match(/^last exit: .*aborted/);
    expect([s.record(0, hung), s.record(0, hung), s.record(1, hung), s.record(0, hung)]).to.deep.equal([1, 2, 1, SAME_EXIT_IN_A_ROW]);
    expect(s.record(0, oom)).to.equal(1);
    expect(s.givingUp(oom)).to.match(/keeps dying the same way \(3 times in a row: killed for not answering pings.*What to do:/);
  });

  it('the restart intensity still makes the host give up (OTP intensity/period)', () => {
    const p = new RestartPolicy({ maxRestarts: 2, windowMs: 1000, backoffMs: 10 });
    expect([p.onCrash(0), p.onCrash(1), p.onCrash(2)]).to.deep.equal([10, 20, null]);
  });
});

describe('cluster/heap: the workers\' heap limit', () => {
  const cfg = (...flags: string[]) => loadConfig({ argv: flags, env: {} }).config;
  const GiB = 1024 ** 3;
  it('derives half the machine\'s memory divided among the workers, between 256 and 4096 MiB; a set value wins', () => {
    expect(workerHeapMb(cfg('--cluster.workers=2'), 24 * GiB)).to.equal(4096);
    expect(workerHeapMb(cfg('--cluster.workers=8'), 16 * GiB)).to.equal(1024);
    expect(workerHeapMb(cfg('--cluster.workers=64'), 8 * GiB)).to.equal(256);
    expect(workerHeapMb(cfg('--cluster.workers=2', '--cluster.workerHeapMb=300'), 24 * GiB)).to.equal(300);
  });

  it('puts --max-old-space-size last in the workers\' execArgv, replacing an inherited one', () => {
    expect(workerExecArgv(['--import', 'tsx', '--max-old-space-size=100'], 256)).to.deep.equal(['--import', 'tsx', '--max-old-space-size=256']);
  });
});
