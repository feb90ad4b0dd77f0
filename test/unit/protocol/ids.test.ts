import { expect } from 'chai';
import { isValidId, parseTopic } from '../../../src/protocol/index.js';

describe('protocol/ids', () => {
  it('isValidId accepts 1-64 characters of A-Z a-z 0-9 _ - . @', () => {
    for (const id of ['a', 'lobby', 'Ann_01', 'ann.lee@example.com', 'x-y', '_', 'a'.repeat(64)]) {
      expect(isValidId(id), id).to.equal(true);
    }
  });

  it('isValidId refuses anything else', () => {
    for (const id of ['', 'a'.repeat(65), 'a b', 'room:x', 'a*', 'a>', 'é', 'a\n', 'a/b', ' a']) {
      expect(isValidId(id), JSON.stringify(id)).to.equal(false);
    }
    for (const id of [undefined, null, 1, ['a'], { id: 'a' }]) expect(isValidId(id)).to.equal(false);
  });

  it('parseTopic splits at the first colon', () => {
    expect(parseTopic('room:lobby')).to.deep.equal({ kind: 'room', id: 'lobby' });
    expect(parseTopic('user:ann:extra')).to.deep.equal({ kind: 'user', id: 'ann:extra' });
    expect(parseTopic('room:')).to.deep.equal({ kind: 'room', id: '' });
    expect(parseTopic(':x')).to.deep.equal({ kind: '', id: 'x' });
    expect(parseTopic('phoenix')).to.deep.equal({ kind: 'phoenix', id: '' });
  });
});
