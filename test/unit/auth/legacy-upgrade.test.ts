import { expect } from 'chai';
import { createHmac } from 'node:crypto';
// @ts-ignore -- phoenix ships no type declarations; the shape used is typed below.
import * as phoenix from 'phoenix';
import { SandbarError } from '../../../src/errors.js';
import type { ErrorCode } from '../../../src/errors.js';
import { AUTH_TOKEN_PREFIX, MAX_TOKEN_BYTES, mintLegacyToken, mintToken, selectProtocol, tokenFromUpgrade, verifyLegacyToken } from '../../../src/auth/index.js';

const SECRET = 'test-secret';
const NOW = Date.UTC(2026, 0, 1, 12, 0, 0, 500);
const NOW_S = Math.floor(NOW / 1000);

function expectCode(fn: () => unknown, code: ErrorCode, reason?: RegExp): void {
  let caught: unknown;
  try { fn(); } catch (err) { caught = err; }
  expect(caught).to.be.instanceOf(SandbarError);
  expect((caught as SandbarError).code).to.equal(code);
  if (reason) expect((caught as SandbarError).message).to.match(reason);
}

/** A token signed with SECRET over an arbitrary payload, to test the claim checks. */
function signRaw(payload: unknown): string {
  const p = Buffer.from(JSON.stringify(payload)).toString('base64url');
  return `${p}.${createHmac('sha256', SECRET).update(p).digest('base64url')}`;
}

/**
 * The Sec-WebSocket-Protocol header the phoenix client produces for its
 * `authToken` option: a real phoenix Socket is connected through a stand-in
 * transport that records the protocols it is constructed with.
 */
function phoenixUpgrade(opts: { authToken?: string; params?: Record<string, unknown> }): { url: URL; header: string | undefined } {
  let seen: { url: string; protocols?: string[] } | undefined;
  class RecordingTransport {
    readyState = 0;
    constructor(url: string, protocols?: string[]) { seen = { url, protocols }; }
    close(): void { /* nothing to close */ }
    send(): void { /* never opened */ }
  }
  const { Socket } = phoenix as unknown as { Socket: new (url: string, opts: object) => { connect(): void; disconnect(): void } };
  const socket = new Socket('ws://sandbar.test/socket', { transport: RecordingTransport, ...opts });
  socket.connect();
  socket.disconnect();
  if (!seen) throw new Error('the phoenix socket did not construct its transport');
  // A WebSocket client sends the protocols list as one comma-separated header.
  return { url: new URL(seen.url), header: seen.protocols?.join(', ') };
}

describe('auth/legacy-token and auth/upgrade', () => {
  describe('mintLegacyToken / verifyLegacyToken (auth.legacyTokens)', () => {
    it('round-trips the user id and sets exp = now (s) + ttl', () => {
      const token = mintLegacyToken(SECRET, 'ann.lee@example.com', 60, NOW);
      expect(token).to.match(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
      expect(JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString())).to.deep.equal({ u: 'ann.lee@example.com', exp: NOW_S + 60 });
      expect(verifyLegacyToken(SECRET, token, NOW)).to.deep.equal({ userId: 'ann.lee@example.com', exp: NOW_S + 60 });
    });

    it('expires exactly at exp', () => {
      const token = mintLegacyToken(SECRET, 'ann', 60, NOW);
      expect(verifyLegacyToken(SECRET, token, (NOW_S + 60) * 1000 - 1).userId).to.equal('ann');
      expectCode(() => verifyLegacyToken(SECRET, token, (NOW_S + 60) * 1000), 'SANDBAR_ERR_AUTH_EXPIRED');
    });

    it('refuses a token signed with another secret', () => {
      expectCode(() => verifyLegacyToken(SECRET, mintLegacyToken('other', 'ann', 60, NOW), NOW), 'SANDBAR_ERR_AUTH_INVALID', /signature/);
    });

    it('refuses a tampered payload or signature', () => {
      const [, sig] = mintLegacyToken(SECRET, 'ann', 60, NOW).split('.');
      const forged = Buffer.from(JSON.stringify({ u: 'admin', exp: NOW_S + 60 })).toString('base64url');
      expectCode(() => verifyLegacyToken(SECRET, `${forged}.${sig}`, NOW), 'SANDBAR_ERR_AUTH_INVALID', /signature/);
      const token = mintLegacyToken(SECRET, 'ann', 60, NOW);
      // The last of 43 signature characters carries 4 bits and 2 unused ones: flipping an
      // unused bit keeps the same 32 bytes, refused only because the canonical text is compared.
      const b64url = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      const flipped = token.slice(0, -1) + b64url[b64url.indexOf(token.slice(-1)) ^ 1];
      expect(Buffer.from(flipped.split('.')[1], 'base64url')).to.deep.equal(Buffer.from(token.split('.')[1], 'base64url'));
      expectCode(() => verifyLegacyToken(SECRET, flipped, NOW), 'SANDBAR_ERR_AUTH_INVALID', /signature/);
      expectCode(() => verifyLegacyToken(SECRET, token.slice(0, -1), NOW), 'SANDBAR_ERR_AUTH_INVALID', /signature/);
    });

    it('refuses an expired token only after checking its signature', () => {
      const old = mintLegacyToken('other', 'ann', 1, NOW - 10_000);
      expectCode(() => verifyLegacyToken(SECRET, old, NOW), 'SANDBAR_ERR_AUTH_INVALID');
    });

    it('refuses malformed and oversized tokens', () => {
      for (const t of ['abc', 'a.b.c', '.sig', 'payload.', 'pay load.sig', 'p.s=']) {
        expectCode(() => verifyLegacyToken(SECRET, t, NOW), 'SANDBAR_ERR_AUTH_INVALID');
      }
      expectCode(() => verifyLegacyToken(SECRET, 'a'.repeat(1024) + '.b', NOW), 'SANDBAR_ERR_AUTH_INVALID', /not <payload>/);
    });

    it('refuses genuine signatures over bad claims', () => {
      expectCode(() => verifyLegacyToken(SECRET, signRaw({ u: 'bad id', exp: NOW_S + 60 }), NOW), 'SANDBAR_ERR_AUTH_INVALID', /user id/);
      expectCode(() => verifyLegacyToken(SECRET, signRaw({ u: 'a'.repeat(65), exp: NOW_S + 60 }), NOW), 'SANDBAR_ERR_AUTH_INVALID', /user id/);
      expectCode(() => verifyLegacyToken(SECRET, signRaw({ exp: NOW_S + 60 }), NOW), 'SANDBAR_ERR_AUTH_INVALID', /user id/);
      expectCode(() => verifyLegacyToken(SECRET, signRaw({ u: 'ann', exp: '9999999999' }), NOW), 'SANDBAR_ERR_AUTH_INVALID', /expiry/);
      expectCode(() => verifyLegacyToken(SECRET, signRaw({ u: 'ann', exp: 1.5e9 + 0.5 }), NOW), 'SANDBAR_ERR_AUTH_INVALID', /expiry/);
      expectCode(() => verifyLegacyToken(SECRET, signRaw(null), NOW), 'SANDBAR_ERR_AUTH_INVALID', /user id/);
      const notJson = Buffer.from('{nope').toString('base64url');
      expectCode(() => verifyLegacyToken(SECRET, `${notJson}.${createHmac('sha256', SECRET).update(notJson).digest('base64url')}`, NOW), 'SANDBAR_ERR_AUTH_INVALID', /not JSON/);
    });

    it('refuses to mint for a bad user id, a bad ttl or an empty secret', () => {
      for (const id of ['', 'a b', 'room:x', 'a'.repeat(65)]) expectCode(() => mintLegacyToken(SECRET, id, 60, NOW), 'SANDBAR_ERR_AUTH_INVALID');
      for (const ttl of [0, -1, 1.5, Number.NaN, Infinity]) expectCode(() => mintLegacyToken(SECRET, 'ann', ttl, NOW), 'SANDBAR_ERR_CONFIG_INVALID');
      expectCode(() => mintLegacyToken('', 'ann', 60, NOW), 'SANDBAR_ERR_CONFIG_INVALID');
      expectCode(() => verifyLegacyToken('', 'a.b', NOW), 'SANDBAR_ERR_CONFIG_INVALID');
    });
  });

  describe('tokenFromUpgrade', () => {
    it('reads the authToken sub-protocol exactly as the phoenix client builds it', () => {
      const token = mintToken(SECRET, 'ann', 60, NOW);
      const { header } = phoenixUpgrade({ authToken: token });
      expect(header).to.match(/^phoenix, base64url\.bearer\.phx\.[A-Za-z0-9]+$/);
      expect(header).to.equal(`phoenix, ${AUTH_TOKEN_PREFIX}${btoa(token).replace(/=/g, '')}`);
      const got = tokenFromUpgrade({}, header);
      expect(got).to.equal(token);
    });

    it('reads params.token from the query string the phoenix client builds', () => {
      const token = mintToken(SECRET, 'bob', 60, NOW);
      const { url, header } = phoenixUpgrade({ params: { token } });
      expect(header).to.equal(undefined);
      expect(url.searchParams.get('vsn')).to.equal('2.0.0');
      expect(tokenFromUpgrade(Object.fromEntries(url.searchParams), header)).to.equal(token);
    });

    it('prefers query.token over the sub-protocol', () => {
      expect(tokenFromUpgrade({ token: 'from-query' }, `phoenix, ${AUTH_TOKEN_PREFIX}${btoa('from-protocol')}`)).to.equal('from-query');
      expect(tokenFromUpgrade({ token: '' }, `${AUTH_TOKEN_PREFIX}${btoa('from-protocol').replace(/=/g, '')}`)).to.equal('from-protocol');
    });

    it('decodes both base64 alphabets, with or without padding', () => {
      const raw = '\u00fb\u00ff\u00be?>'; // btoa gives "+/++Pz4=": both non-url characters
      expect(btoa(raw)).to.match(/[+/]/);
      expect(tokenFromUpgrade({}, AUTH_TOKEN_PREFIX + btoa(raw).replace(/=/g, ''))).to.equal(raw);
      expect(tokenFromUpgrade({}, AUTH_TOKEN_PREFIX + Buffer.from(raw, 'latin1').toString('base64url'))).to.equal(raw);
    });

    it('our token alphabet never makes btoa emit + or /, so the client always sends a valid sub-protocol', () => {
      // WebSocket clients refuse a sub-protocol containing '/'. btoa encodes 3-byte groups
      // independently, so trying every triple of the token alphabet covers every token.
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.';
      for (const a of alphabet) for (const b of alphabet) for (const c of alphabet) {
        const enc = btoa(a + b + c);
        if (/[+/]/.test(enc)) expect.fail(`btoa(${a + b + c}) = ${enc}`);
      }
    });

    it('returns undefined when there is no token', () => {
      expect(tokenFromUpgrade({}, undefined)).to.equal(undefined);
      expect(tokenFromUpgrade({ other: 'x' }, 'phoenix')).to.equal(undefined);
      expect(tokenFromUpgrade({}, '')).to.equal(undefined);
    });

    it('refuses a repeated query token, two bearer entries and entries that are not base64', () => {
      expectCode(() => tokenFromUpgrade({ token: ['a', 'b'] }, undefined), 'SANDBAR_ERR_AUTH_INVALID', /once/);
      expectCode(() => tokenFromUpgrade({ token: { a: 'b' } }, undefined), 'SANDBAR_ERR_AUTH_INVALID', /once/);
      expectCode(() => tokenFromUpgrade({}, `${AUTH_TOKEN_PREFIX}YQ, ${AUTH_TOKEN_PREFIX}Yg`), 'SANDBAR_ERR_AUTH_INVALID', /more than one/);
      expectCode(() => tokenFromUpgrade({}, `${AUTH_TOKEN_PREFIX}a!b`), 'SANDBAR_ERR_AUTH_INVALID', /not base64/);
      expectCode(() => tokenFromUpgrade({}, `${AUTH_TOKEN_PREFIX}abcde`), 'SANDBAR_ERR_AUTH_INVALID', /not base64/);
      expectCode(() => tokenFromUpgrade({}, AUTH_TOKEN_PREFIX + 'A'.repeat(Math.ceil(MAX_TOKEN_BYTES / 3) * 4 + 4)), 'SANDBAR_ERR_AUTH_INVALID', /longer than/);
    });
  });

  describe('selectProtocol', () => {
    it('echoes phoenix when offered, and never the bearer entry', () => {
      const { header } = phoenixUpgrade({ authToken: 'abc' });
      expect(selectProtocol(header)).to.equal('phoenix');
      expect(selectProtocol(new Set(['phoenix', `${AUTH_TOKEN_PREFIX}YWJj`]))).to.equal('phoenix');
      expect(selectProtocol(`${AUTH_TOKEN_PREFIX}YWJj,phoenix`)).to.equal('phoenix');
    });

    it('selects nothing when phoenix is not offered', () => {
      expect(selectProtocol(undefined)).to.equal(undefined);
      expect(selectProtocol('')).to.equal(undefined);
      expect(selectProtocol(`${AUTH_TOKEN_PREFIX}YWJj`)).to.equal(undefined);
      expect(selectProtocol(new Set<string>())).to.equal(undefined);
      expect(selectProtocol('phoenixx, mqtt')).to.equal(undefined);
    });
  });
});
