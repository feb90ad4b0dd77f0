/**
 * Minting session tokens: JSON Web Tokens (RFC 7519) whose `sub` is the user.
 *
 * `mintToken` signs HS256 with a shared secret, synchronously: the CLI, the
 * dev token endpoint, the tests and the bench clients (which mint thousands)
 * call it, and benches load it by path (`dist/src/auth/token.js`). It is the
 * JWS compact serialization over node:crypto's HMAC, byte for byte what
 * jose's SignJWT produces for the same header and claims (a unit test checks
 * it). Verifying is jose's job alone (verifier.ts).
 *
 * `signToken` signs with any key and algorithm through jose, for
 * `sandbar token --key <private key file>`.
 */
import { createHmac } from 'node:crypto';
import { SignJWT, type CryptoKey, type JWTPayload, type KeyObject } from 'jose';
import { Errors } from '../errors.js';
import { isValidId } from '../protocol/ids.js';

/** Claims Sandbar sets itself: extra claims may not override them. */
const OWN_CLAIMS = new Set(['sub', 'iat', 'exp']);
const HS256_HEADER = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');

function checkInputs(userId: string, ttlS: number, claims: Record<string, unknown>): void {
  if (!isValidId(userId)) throw Errors.AUTH_INVALID('cannot mint a token: the user id must be 1-64 characters of A-Z a-z 0-9 _ - . @');
  if (!Number.isSafeInteger(ttlS) || ttlS <= 0) throw Errors.CONFIG_INVALID('cannot mint a token: ttl must be a positive integer of seconds');
  for (const k of Object.keys(claims)) if (OWN_CLAIMS.has(k)) throw Errors.CONFIG_INVALID(`cannot mint a token: claim ${k} is set from the user and ttl, not from extra claims`);
}

function payloadOf(userId: string, ttlS: number, nowMs: number, claims: Record<string, unknown>): JWTPayload {
  const iat = Math.floor(nowMs / 1000);
  return { ...claims, sub: userId, iat, exp: iat + ttlS };
}

/**
 * An HS256 JWT for `userId`, valid for `ttlS` seconds from `nowMs`, with
 * `claims` added (e.g. `{rooms: ["team-*"]}`, `aud`, `iss`).
 * @throws SandbarError SANDBAR_ERR_AUTH_INVALID for an invalid user id,
 *   SANDBAR_ERR_CONFIG_INVALID for an empty secret, a bad ttl or a claim that
 *   would override sub, iat or exp.
 */
export function mintToken(secret: string, userId: string, ttlS: number, nowMs: number = Date.now(), claims: Record<string, unknown> = {}): string {
  // An empty key would make every token forgeable by anyone.
  if (typeof secret !== 'string' || secret.length === 0) throw Errors.CONFIG_INVALID('auth.secret must be a non-empty string to mint tokens');
  checkInputs(userId, ttlS, claims);
  const body = `${HS256_HEADER}.${Buffer.from(JSON.stringify(payloadOf(userId, ttlS, nowMs, claims))).toString('base64url')}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

/** A signing key for {@link signToken}: a private key (or an HMAC secret's bytes), its algorithm, and the kid to name. */
export interface SigningKey {
  readonly key: CryptoKey | KeyObject | Uint8Array;
  readonly alg: string;
  readonly kid?: string;
}

/** A JWT signed by jose with any supported algorithm (see {@link mintToken} for the arguments). */
export async function signToken(k: SigningKey, userId: string, ttlS: number, nowMs: number = Date.now(), claims: Record<string, unknown> = {}): Promise<string> {
  checkInputs(userId, ttlS, claims);
  const header = k.kid === undefined ? { alg: k.alg, typ: 'JWT' } : { alg: k.alg, typ: 'JWT', kid: k.kid };
  return new SignJWT(payloadOf(userId, ttlS, nowMs, claims)).setProtectedHeader(header).sign(k.key);
}
