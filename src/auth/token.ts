/**
 * Session tokens: `base64url(JSON {u, exp}) + "." + base64url(HMAC-SHA256(secret, first part))`.
 *
 * The signature covers the encoded payload text, so the payload is only parsed
 * after the signature matched: nothing a forger sends reaches JSON.parse.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { SandbarError } from '../errors.js';
import { isValidId } from '../protocol/ids.js';

/** Tokens longer than this are refused before any work is done on them. */
export const MAX_TOKEN_BYTES = 1024;

/** Sub-protocol prefix the phoenix client puts before its `authToken` (AUTH_TOKEN_PREFIX in its constants.js). */
export const AUTH_TOKEN_PREFIX = 'base64url.bearer.phx.';

/** Sub-protocol the server echoes so that the client accepts the upgrade. */
export const PHOENIX_PROTOCOL = 'phoenix';

/** What a verified token says. */
export interface TokenClaims {
  userId: string;
  /** Expiry, unix seconds; the token is valid while now < exp. */
  exp: number;
}

const TOKEN_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

function sign(secret: string, payloadB64: string): string {
  return createHmac('sha256', secret).update(payloadB64).digest('base64url');
}

function requireSecret(secret: string): void {
  // An empty key would make every token forgeable by anyone.
  if (typeof secret !== 'string' || secret.length === 0) throw new SandbarError('SANDBAR_ERR_CONFIG_INVALID', 'auth.secret must be a non-empty string');
}

/**
 * Mint a token for `userId`, valid for `ttlS` seconds from `nowMs`.
 * @throws SandbarError SANDBAR_ERR_AUTH_INVALID for an invalid user id,
 *   SANDBAR_ERR_CONFIG_INVALID for an empty secret or a ttl that is not a positive integer.
 */
export function mintToken(secret: string, userId: string, ttlS: number, nowMs: number = Date.now()): string {
  requireSecret(secret);
  if (!isValidId(userId)) throw new SandbarError('SANDBAR_ERR_AUTH_INVALID', 'cannot mint a token: the user id must be 1-64 characters of A-Z a-z 0-9 _ - . @');
  if (!Number.isSafeInteger(ttlS) || ttlS <= 0) throw new SandbarError('SANDBAR_ERR_CONFIG_INVALID', 'cannot mint a token: ttl must be a positive integer of seconds');
  const exp = Math.floor(nowMs / 1000) + ttlS;
  const payload = Buffer.from(JSON.stringify({ u: userId, exp }), 'utf8').toString('base64url');
  return `${payload}.${sign(secret, payload)}`;
}

/**
 * Verify a token and return its claims. The signature is checked before the
 * expiry, so an expired answer is only ever given for a genuine token.
 * @throws SandbarError SANDBAR_ERR_AUTH_MISSING (no token), SANDBAR_ERR_AUTH_INVALID
 *   (malformed, oversized, bad signature, bad claims), SANDBAR_ERR_AUTH_EXPIRED.
 */
export function verifyToken(secret: string, token: unknown, nowMs: number = Date.now()): TokenClaims {
  requireSecret(secret);
  if (token === undefined || token === null || token === '') throw new SandbarError('SANDBAR_ERR_AUTH_MISSING', 'no token given');
  if (typeof token !== 'string') throw new SandbarError('SANDBAR_ERR_AUTH_INVALID', 'token is not a string');
  if (token.length > MAX_TOKEN_BYTES) throw new SandbarError('SANDBAR_ERR_AUTH_INVALID', `token is longer than ${MAX_TOKEN_BYTES} bytes`);
  if (!TOKEN_SHAPE.test(token)) throw new SandbarError('SANDBAR_ERR_AUTH_INVALID', 'token is not <payload>.<signature> in base64url');
  const dot = token.indexOf('.');
  const payloadB64 = token.slice(0, dot);
  // Compare the canonical base64url text, not decoded bytes: two spellings of the
  // same signature bytes would otherwise both pass. Lengths are public, so the
  // early length check leaks nothing.
  const expected = Buffer.from(sign(secret, payloadB64), 'latin1');
  const given = Buffer.from(token.slice(dot + 1), 'latin1');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new SandbarError('SANDBAR_ERR_AUTH_INVALID', 'token signature does not match');
  }
  let claims: unknown;
  try {
    claims = JSON.parse(Buffer.from(payloadB64, 'base64url').toString('utf8'));
  } catch {
    throw new SandbarError('SANDBAR_ERR_AUTH_INVALID', 'token payload is not JSON');
  }
  const { u, exp } = (claims ?? {}) as { u?: unknown; exp?: unknown };
  if (!isValidId(u)) throw new SandbarError('SANDBAR_ERR_AUTH_INVALID', 'token user id is not valid');
  if (typeof exp !== 'number' || !Number.isSafeInteger(exp)) throw new SandbarError('SANDBAR_ERR_AUTH_INVALID', 'token expiry is not an integer');
  if (nowMs >= exp * 1000) throw new SandbarError('SANDBAR_ERR_AUTH_EXPIRED', 'token has expired');
  return { userId: u, exp };
}

/** Split a Sec-WebSocket-Protocol header into its entries. */
function protocols(header: string): string[] {
  return header.split(',').map((p) => p.trim()).filter((p) => p.length > 0);
}

const BASE64_NO_PAD = /^[A-Za-z0-9+/_-]*$/;

/**
 * The token a WebSocket upgrade carries, or undefined when it carries none.
 *
 * `query.token` (socket params, e.g. `new Socket(url, {params: {token}})`) wins;
 * otherwise the `base64url.bearer.phx.<b64>` sub-protocol that the phoenix
 * client sends for its `authToken` option. Despite the name, the client
 * encodes it with `btoa(token)` minus `=` padding, i.e. standard base64; both
 * alphabets are accepted, and decoding is byte-per-char as `btoa` expects.
 * @throws SandbarError SANDBAR_ERR_AUTH_INVALID when the token is given twice,
 *   is not a string, or the bearer entry is not base64.
 */
export function tokenFromUpgrade(query: Record<string, unknown>, secWebSocketProtocol: string | undefined): string | undefined {
  const fromQuery = query.token;
  if (fromQuery !== undefined && fromQuery !== '') {
    // A repeated or nested `token` parameter parses to an array or object: refuse rather than pick one.
    if (typeof fromQuery !== 'string') throw new SandbarError('SANDBAR_ERR_AUTH_INVALID', 'query parameter token must be given once, as a string');
    return fromQuery;
  }
  if (secWebSocketProtocol === undefined) return undefined;
  const bearers = protocols(secWebSocketProtocol).filter((p) => p.startsWith(AUTH_TOKEN_PREFIX));
  if (bearers.length === 0) return undefined;
  if (bearers.length > 1) throw new SandbarError('SANDBAR_ERR_AUTH_INVALID', 'more than one bearer sub-protocol');
  const encoded = bearers[0].slice(AUTH_TOKEN_PREFIX.length);
  // Base64 of MAX_TOKEN_BYTES bytes has at most this many characters; longer cannot verify.
  if (encoded.length > Math.ceil(MAX_TOKEN_BYTES / 3) * 4) throw new SandbarError('SANDBAR_ERR_AUTH_INVALID', `token is longer than ${MAX_TOKEN_BYTES} bytes`);
  // Length 1 mod 4 cannot come from any base64 encoder.
  if (!BASE64_NO_PAD.test(encoded) || encoded.length % 4 === 1) {
    throw new SandbarError('SANDBAR_ERR_AUTH_INVALID', 'bearer sub-protocol is not base64');
  }
  return Buffer.from(encoded, 'base64').toString('latin1');
}

/**
 * The sub-protocol to echo in the upgrade response: `phoenix` when the client
 * offered it (the phoenix client offers it next to its bearer token, and a
 * WebSocket client fails the handshake if the server selects none). Never the
 * bearer entry, which would send the token back in a response header.
 * Accepts the raw header or the parsed set that `ws`'s `handleProtocols` gets.
 */
export function selectProtocol(secWebSocketProtocol: string | Iterable<string> | undefined): typeof PHOENIX_PROTOCOL | undefined {
  if (secWebSocketProtocol === undefined) return undefined;
  const offered = typeof secWebSocketProtocol === 'string' ? protocols(secWebSocketProtocol) : secWebSocketProtocol;
  for (const p of offered) if (p === PHOENIX_PROTOCOL) return PHOENIX_PROTOCOL;
  return undefined;
}
