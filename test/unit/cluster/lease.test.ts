import { expect } from 'chai';
import { majorityHeardAt } from '../../../src/cluster/membership.js';

describe('cluster lease: when a majority of known hosts was last heard', () => {
  it('alone, the host itself is the majority', () => {
    expect(majorityHeardAt([], 1000)).to.equal(1000);
  });
  it('3 hosts: the more recent of the two others counts (self + one = 2 of 3)', () => {
    expect(majorityHeardAt([400, 900], 1000)).to.equal(900);
    expect(majorityHeardAt([900, 400], 1000)).to.equal(900);
  });
  it('2 hosts: both are needed (2 of 2)', () => {
    expect(majorityHeardAt([300], 1000)).to.equal(300);
  });
  it('5 hosts: the third most recent, self included', () => {
    expect(majorityHeardAt([100, 700, 200, 800], 1000)).to.equal(700);
  });
});
