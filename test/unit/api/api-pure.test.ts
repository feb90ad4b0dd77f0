import { expect } from 'chai';
import fc from 'fast-check';
import { ApiKeys } from '../../../src/api/keys.js';
import { page } from '../../../src/api/history.js';
import { sign, verify } from '../../../src/events/sign.js';
import { backoffMs } from '../../../src/events/webhooks.js';
import { clientEventTable, namespaceOf } from '../../../src/protocol/room-events.js';
import { parseApiKey, isLoopback } from '../../../src/config/integration-rules.js';
import { loadConfig } from '../../../src/config/index.js';
import type { HistoryQuery } from '../../../src/bus/messages.js';

describe('server API: keys, history pages, webhook signatures and backoff, client event table', () => {
  it('parses api.keys entries and finds a key whatever its position; a wrong key or a prefix of one is none', () => {
    expect(parseApiKey('svc:publish|dm:abcdefghijklmnop')).to.deep.include({ name: 'svc', key: 'abcdefghijklmnop' });
    expect(parseApiKey('svc:fly:abcdefghijklmnop')).to.be.a('string').and.include('fly');
    expect(parseApiKey('svc:*:short')).to.be.a('string').and.include('16-256');
    const keys = new ApiKeys(['a:*:aaaaaaaaaaaaaaaaaaaa', 'b:presence:bbbbbbbbbbbbbbbbbbbb']);
    expect(keys.find('bbbbbbbbbbbbbbbbbbbb')?.name).to.equal('b');
    expect(keys.find('bbbbbbbbbbbbbbbbbbb')).to.equal(null);
    expect(keys.find('')).to.equal(null);
    expect(ApiKeys.allows(keys.find('bbbbbbbbbbbbbbbbbbbb')!, 'publish')).to.equal(false);
    expect(ApiKeys.allows(keys.find('aaaaaaaaaaaaaaaaaaaa')!, 'unsubscribe')).to.equal(true);
    expect(new ApiKeys(undefined).open).to.equal(true);
  });

  it('knows loopback addresses (the API may run without keys only there) and checks the integration keys at load', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) expect(isLoopback(h), h).to.equal(true);
    for (const h of ['0.0.0.0', '10.0.0.1', '::', 'example.com']) expect(isLoopback(h), h).to.equal(false);
    expect(() => loadConfig({ argv: ['--api.port=1', '--api.host=10.0.0.1'], env: {} })).to.throw(/api\.host = "10\.0\.0\.1".*api\.keys/);
    expect(() => loadConfig({ argv: ['--webhooks.urls=http://x/h', '--webhooks.secret=s'], env: {} })).to.throw(/events\.enabled/);
    expect(() => loadConfig({ argv: ['--webhooks.urls=ftp://x/h', '--webhooks.secret=s', '--events.enabled=true'], env: {} })).to.throw(/webhooks\.urls\[0\]/);
    expect(() => loadConfig({ argv: ['--room.clientEvents=*:msg'], env: {} })).to.throw(/room\.clientEvents\[0\]/);
    expect(() => loadConfig({ argv: ['--events.types=room.message,nope'], env: {} })).to.throw(/events\.types\[1\]/);
    expect(() => loadConfig({ argv: ['--api.keys=a:*:aaaaaaaaaaaaaaaaaaaa,a:dm:bbbbbbbbbbbbbbbbbbbb'], env: {} })).to.throw(/used twice/);
  });

  it('pages by seq forwards and backwards, never past the limit or the byte bound (but at least one message)', () => {
    const list = Array.from({ length: 30 }, (_, i) => ({ seq: i + 11, body: 'x'.repeat(i) }));
    const q = (o: Partial<HistoryQuery>): HistoryQuery => ({ op: 'r.hist', id: 'r', after: 0, before: null, limit: 100, maxBytes: 1e9, ...o });
    const seqs = (p: { messages: unknown[] }) => p.messages.map((m) => (m as { seq: number }).seq);
    expect(page(list, 40, q({ after: 35, limit: 3 }))).to.deep.include({ seq: 40, more: true });
    expect(seqs(page(list, 40, q({ after: 35, limit: 3 })))).to.deep.equal([36, 37, 38]);
    expect(seqs(page(list, 40, q({ before: 13 })))).to.deep.equal([11, 12]);
    expect(seqs(page(list, 40, q({ before: 30, limit: 2 })))).to.deep.equal([28, 29]);
    expect(page(list, 40, q({ maxBytes: 1 })).messages).to.have.length(1);
    fc.assert(fc.property(fc.integer({ min: 0, max: 45 }), fc.integer({ min: 1, max: 40 }), (after, limit) => {
      const p = page(list, 40, q({ after, limit }));
      const want = list.filter((m) => m.seq > after).map((m) => m.seq);
      expect(seqs(p)).to.deep.equal(want.slice(0, limit));
      expect(p.more).to.equal(want.length > limit);
    }));
  });

  it('signs webhook bodies; verify refuses another body, another secret, an old timestamp and a malformed header', () => {
    const now = 1_800_000_000_000;
    const h = sign('s3cret', '{"a":1}', now);
    expect(h).to.match(/^t=1800000000000,v1=[0-9a-f]{64}$/);
    expect(verify('s3cret', '{"a":1}', h, now + 1000)).to.equal(true);
    expect(verify('s3cret', '{"a":2}', h, now)).to.equal(false);
    expect(verify('other', '{"a":1}', h, now)).to.equal(false);
    expect(verify('s3cret', '{"a":1}', h, now + 600_000)).to.equal(false);
    expect(verify('s3cret', '{"a":1}', 'v1=abc', now)).to.equal(false);
    expect(verify('s3cret', '{"a":1}', undefined, now)).to.equal(false);
  });

  it('backs off from webhooks.backoffMs, doubling, capped at webhooks.maxBackoffMs', () => {
    const config = loadConfig({ argv: ['--webhooks.backoffMs=100', '--webhooks.maxBackoffMs=1000'], env: {} }).config;
    expect([1, 2, 3, 4, 5, 50].map((n) => backoffMs(config, n))).to.deep.equal([100, 200, 400, 800, 1000, 1000]);
  });

  it('allows client events by namespace ("*" for every room)', () => {
    const t = clientEventTable(['*:typing', 'game:move', 'game:resign']);
    expect([...t.get('game')!].sort()).to.deep.equal(['move', 'resign']);
    expect(t.get('*')!.has('typing')).to.equal(true);
    expect([namespaceOf('game.7'), namespaceOf('lobby'), namespaceOf('a.b.c')]).to.deep.equal(['game', '', 'a']);
  });
});
