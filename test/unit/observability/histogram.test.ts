import { expect } from 'chai';
import fc from 'fast-check';
import { Histogram, LATENCY_BUCKETS_S, TAKEOVER_BUCKETS_S } from '../../../src/observability/histogram.js';

describe('observability: fixed-bucket histogram', () => {
  it('puts a value in the first bucket whose bound is at least the value (Prometheus "le"), seconds out', () => {
    const h = new Histogram([0.001, 0.01, 0.1]);
    for (const ms of [0.5, 1, 1.0001, 10, 50, 100, 100.5, 5000]) h.observeMs(ms);
    // le=0.001: 0.5, 1 | le=0.01: +1.0001, 10 | le=0.1: +50, 100 | +Inf: +100.5, 5000
    expect(h.cumulative()).to.deep.equal([2, 4, 6, 8]);
    expect(h.count).to.equal(8);
    expect(h.sumS).to.be.closeTo((0.5 + 1 + 1.0001 + 10 + 50 + 100 + 100.5 + 5000) / 1000, 1e-9);
  });

  it('refuses bounds that do not ascend', () => {
    expect(() => new Histogram([0.1, 0.1])).to.throw(/ascend/);
    expect(() => new Histogram([1, 0.5])).to.throw(/ascend/);
  });

  it('the shipped bucket sets ascend', () => {
    expect(() => new Histogram(LATENCY_BUCKETS_S)).to.not.throw();
    expect(() => new Histogram(TAKEOVER_BUCKETS_S)).to.not.throw();
  });

  it('cumulative counts never fall, end at count, and match a direct count per bound (property)', () => {
    fc.assert(fc.property(fc.array(fc.double({ min: 0, max: 20000, noNaN: true }), { maxLength: 200 }), (values) => {
      const h = new Histogram(LATENCY_BUCKETS_S);
      for (const v of values) h.observeMs(v);
      const cum = h.cumulative();
      expect(cum).to.have.length(LATENCY_BUCKETS_S.length + 1);
      for (let i = 1; i < cum.length; i++) expect(cum[i]).to.be.at.least(cum[i - 1]!);
      expect(cum[cum.length - 1]).to.equal(values.length);
      LATENCY_BUCKETS_S.forEach((le, i) => expect(cum[i], `le=${le}`).to.equal(values.filter((v) => v <= le * 1000).length));
    }), { numRuns: 200 });
  });
});
