/**
 * The pre-JWT session token, accepted only with `auth.legacyTokens = true`
 * (a migration aid; docs/auth.md):
 * `base64url(JSON {u, exp}) + "." + base64url(HMAC-SHA256(auth.secret, first part))`.
 *
 * The signature covers the encoded payload text, so the payload is only parsed
 * after the signature matched: nothing a forger sends reaches JSON.parse.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { Errors } from '../errors.js';
import { isValidId } from '../protocol/ids.js';

/** Legacy tokens longer than this are refused before any work is done on them. */
const MAX_LEGACY_BYTES = 1024;
const LEGACY_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** Whether a token has the legacy shape (two base64url parts; a JWT has three). */
export function isLegacyShape(token: string): boolean {
  return token.length <= MAX_LEGACY_BYTES && LEGACY_SHAPE.test(token);
}

function sign(secret: string, payloadB64: string): string {
  return createHmac('sha256', secret).update(payloadB64).digest('base64url');
}

function requireSecret(secret: string): void {
  // An empty key would make every token forgeable by anyone.
  if (typeof secret !== 'string' || secret.length === 0) throw Errors.CONFIG_INVALID('auth.secret must be a non-empty string for legacy tokens');
}

/** Mints a legacy token (tests and the handshake bench). */
export function mintLegacyToken(secret: string, userId: string, ttlS: number, nowMs: number = Date.now()): string {
  requireSecret(secret);
  if (!isValidId(userId)) throw Errors.AUTH_INVALID('cannot mint a token: the user id must be 1-64 characters of A-Z a-z 0-9 _ - . @');
  if (!Number.isSafeInteger(ttlS) || ttlS <= 0) throw Errors.CONFIG_INVALID('cannot mint a token: ttl must be a positive integer of seconds');
  const payload = Buffer.from(JSON.stringify({ u: userId, exp: Math.floor(nowMs / 1000) + ttlS }), 'utf8').toString('base64url');
  return `${payload}.${sign(secret, payload)}`;
}

/**
 * Verifies a legacy token and returns its user and expiry. The signature is
 * checked before the expiry, so an expired answer is only ever given for a
 * genuine token.
 * @throws SandbarError SANDBAR_ERR_AUTH_INVALID (malformed, bad signature, bad claims), SANDBAR_ERR_AUTH_EXPIRED.
 */
export function verifyLegacyToken(secret: string, token: string, nowMs: number = Date.now()): { userId: string; exp: number } {
  requireSecret(secret);
  if (!isLegacyShape(token)) throw Errors.AUTH_INVALID('legacy token is not <payload>.<signature> in base64url');
  const dot = token.indexOf('.');
  const payloadB64 = token.slice(0, dot);
  // Compare the canonical base64url text, not decoded bytes: two spellings of the
  // same signature bytes would otherwise both pass. Lengths are public, so the
  // early length check leaks nothing.
  const expected = Buffer.from(sign(secret, payloadB64), 'latin1');
  const given = Buffer.from(token.slice(dot + 1), 'latin1');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw Errors.AUTH_INVALID('legacy token signature does not match');
  }
  let claims: unknown;
  try {
    claims = JSON.parse(Buffer.from(payloadB64, 'base64url').toString('utf8'));
  } catch {
    throw Errors.AUTH_INVALID('legacy token payload is not JSON');
  }
  const { u, exp } = (claims ?? {}) as { u?: unknown; exp?: unknown };
  if (!isValidId(u)) throw Errors.AUTH_INVALID('legacy token user id is not valid');
  if (typeof exp !== 'number' || !Number.isSafeInteger(exp)) throw Errors.AUTH_INVALID('legacy token expiry is not an integer');
  if (nowMs >= exp * 1000) throw Errors.AUTH_EXPIRED('token has expired');
  return { userId: u, exp };
}
