import { expect } from 'chai';
import { closeSync, fstatSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { isJournalStream, prefixLine, priorityOf, wantsPrefix } from '../../../src/observability/journald.js';

describe('observability: journald priorities', () => {
  it('maps each pino level to its syslog priority', () => {
    expect([10, 20, 30, 40, 50, 60].map(priorityOf)).to.deep.equal([7, 7, 6, 4, 3, 2]);
    // Custom levels in between go to the priority of the level below them.
    expect([35, 45, 55, 100].map(priorityOf)).to.deep.equal([6, 4, 3, 2]);
  });

  it('prefixes the lines pino really writes, at every level, with the priority journald reads', () => {
    const lines: string[] = [];
    const sink = new Writable({ write(chunk, _enc, cb) { lines.push(String(chunk)); cb(); } });
    const log = pino({ level: 'trace', base: { hostId: 'h', worker: 0 }, timestamp: pino.stdTimeFunctions.isoTime, hooks: { streamWrite: prefixLine } }, sink);
    log.trace('t'); log.debug('d'); log.info('i'); log.warn('w'); log.error({ err: new Error('e') }, 'e'); log.fatal('f');
    expect(lines.map((l) => l.slice(0, 3))).to.deep.equal(['<7>', '<7>', '<6>', '<4>', '<3>', '<2>']);
    // What follows the prefix is the JSON line unchanged.
    for (const l of lines) expect(JSON.parse(l.slice(3))).to.have.property('msg');
  });

  it('reads the level wherever it is when the line is not in pino\'s usual order; no level is info', () => {
    expect(prefixLine('{"time":1,"level":50,"msg":"x"}')).to.equal('<3>{"time":1,"level":50,"msg":"x"}');
    expect(prefixLine('{"level":100,"msg":"x"}')).to.equal('<2>{"level":100,"msg":"x"}');
    expect(prefixLine('plain text')).to.equal('<6>plain text');
  });

  it('knows stdout is the journal only when $JOURNAL_STREAM names that very file descriptor', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sandbar-journal-'));
    const a = openSync(join(dir, 'a'), 'w');
    const b = openSync(join(dir, 'b'), 'w');
    try {
      const st = fstatSync(a, { bigint: true });
      const env = { JOURNAL_STREAM: `${st.dev}:${st.ino}` };
      expect(isJournalStream(a, env)).to.equal(true);
      expect(isJournalStream(b, env), 'another file').to.equal(false);
      expect(isJournalStream(a, {}), 'no variable').to.equal(false);
      expect(isJournalStream(a, { JOURNAL_STREAM: 'garbage' })).to.equal(false);
      expect(wantsPrefix('on', {})).to.equal(true);
      expect(wantsPrefix('off', env)).to.equal(false);
    } finally {
      closeSync(a); closeSync(b);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
