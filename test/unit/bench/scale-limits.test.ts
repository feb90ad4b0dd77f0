import { expect } from 'chai';
import { plan, type MachineLimits } from '../../../bench/scale/limits.js';

const GiB = 2 ** 30;
/** The 16-core, 128 GiB device machine, 20,000 files per process, the Linux default port range, no conntrack. */
const device: MachineLimits = {
  cores: 16, memTotalBytes: 128 * GiB, memAvailableBytes: 125 * GiB, fdSoft: 20000, fdHard: 20000,
  portsPerAddress: 28232, conntrackMax: undefined, conntrackCount: undefined, filesLeft: 13_000_000,
};

describe('bench/scale plan', () => {
  it('2,000,000 sessions on the device machine: 15,000 per process, 134 workers and 134 client processes, not lowered', () => {
    const p = plan(device, { target: 2_000_000 });
    expect(p).to.include({ target: 2_000_000, perProcess: 15000, workers: 134, clients: 134, cut: undefined });
    expect(p.memNeededBytes).to.be.below(125 * GiB * 0.8);
  });

  it('a low open-files limit shrinks sessions per process, and 253 source addresses then cap the target', () => {
    const p = plan({ ...device, fdSoft: 4096, fdHard: 4096 }, { target: 2_000_000 });
    expect(p.perProcess).to.equal(Math.floor((4096 - 1000) * 0.8));
    expect(p.clients).to.equal(253);
    expect(p.target).to.equal(253 * p.perProcess);
    expect(p.cut).to.match(/^source addresses/);
  });

  it('lowers the target to what memory allows and says so', () => {
    const p = plan({ ...device, memAvailableBytes: 8 * GiB }, { target: 2_000_000 });
    expect(p.target).to.be.below(400_000).and.above(100_000);
    expect(p.memNeededBytes).to.be.at.most(8 * GiB * 0.8 * 1.05);
    expect(p.cut).to.match(/^memory/);
  });

  it('two files per loopback session: fs.file-max caps the target', () => {
    const p = plan({ ...device, filesLeft: 1_000_000 }, { target: 2_000_000 });
    expect(p.target).to.equal(450_000);
    expect(p.cut).to.match(/^fs\.file-max/);
  });

  it('given client processes cap the target at per-process sessions each; given workers are kept, with a warning when overfull', () => {
    const p = plan(device, { target: 100_000, workers: 3, clients: 4 });
    expect(p).to.include({ workers: 3, clients: 4, target: 60_000 });
    expect(p.cut).to.match(/^source addresses: 4 client processes x 15000/);
    expect(p.warnings.join(' ')).to.match(/20000 sessions per worker passes 15000/);
  });
});
