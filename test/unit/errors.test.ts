import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { ErrorCodes, SandbarError, fromWire, toWire } from '../../src/errors.js';

describe('error registry', () => {
  const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  const documented = new Set([...doc.matchAll(/`(SANDBAR_ERR_[A-Z_]+)`/g)].map((m) => m[1]));

  it('docs/errors.md lists every code of src/errors.ts, and no other', () => {
    expect([...documented].sort()).to.deep.equal(Object.keys(ErrorCodes).sort());
  });

  it('each documented close code and HTTP status matches the registry', () => {
    for (const [code, spec] of Object.entries(ErrorCodes)) {
      const row = doc.split('\n').find((l) => l.startsWith(`| \`${code}\``));
      expect(row, code).to.be.a('string');
      if (spec.closeCode) expect(row, code).to.include(String(spec.closeCode));
      if (spec.httpStatus) expect(row, code).to.include(String(spec.httpStatus));
    }
  });

  it('errors cross NATS as plain data without stacks, and come back typed', () => {
    const w = toWire(new SandbarError('SANDBAR_ERR_UNAVAILABLE', 'shard 7 has no master'));
    expect(w).to.deep.equal({ code: 'SANDBAR_ERR_UNAVAILABLE', message: 'shard 7 has no master', retryable: true });
    const back = fromWire(JSON.parse(JSON.stringify(w)));
    expect(back).to.be.instanceOf(SandbarError);
    expect(back.code).to.equal('SANDBAR_ERR_UNAVAILABLE');
    expect(toWire(new TypeError('secret detail')).message).to.equal('internal error');
  });
});
