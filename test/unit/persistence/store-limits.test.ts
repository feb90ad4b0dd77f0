import { expect } from 'chai';
import { isStoreFull } from '../../../src/persistence/store-limits.js';
import { LogFill } from '../../../src/persistence/log-fill.js';

describe('persistence/store-limits: a full JetStream store', () => {
  it('recognises JetStream\'s "full" answers (a PubAck error, an API error), and nothing else', () => {
    expect(isStoreFull({ code: 503, err_code: 10077, description: 'maximum bytes exceeded' })).to.equal(true);
    expect(isStoreFull(Object.assign(new Error('maximum bytes exceeded'), { code: 10077 }))).to.equal(true);
    expect(isStoreFull(new Error('insufficient resources'))).to.equal(true);
    expect(isStoreFull({ code: 503, err_code: 10008, description: 'stream not found' })).to.equal(false);
    expect(isStoreFull(new Error('timeout'))).to.equal(false);
    expect(isStoreFull(undefined)).to.equal(false);
  });

  it('the log counts as full past max_bytes less an eighth (with this worker\'s appends since the last read), or once JetStream refused an append', () => {
    const f = new LogFill(8000);
    expect(f.full).to.equal(false);
    for (let i = 0; i < 6; i++) f.appended(1000);
    expect(f.full).to.equal(false); // 6 × 1,096
    f.appended(1000);
    expect(f.full).to.equal(true); // 7,672 ≥ 7,000
    const g = new LogFill(0);
    for (let i = 0; i < 1000; i++) g.appended(1_000_000);
    expect(g.full).to.equal(false);
    g.refused = true;
    expect(g.full).to.equal(true);
  });
});
