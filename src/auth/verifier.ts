/**
 * Verifies a session token and says who it names, or why it is refused.
 *
 * Tokens are JSON Web Tokens verified by jose (RFC 7515/7519): the algorithm
 * must be in `auth.algorithms` ("none" never is) and fit the key the header
 * selects (keys.ts), the signature must match, `exp` must be present and
 * not passed, `nbf` not in the future (both with `auth.clockSkewS`), `iss`
 * and `aud` as configured, and `sub` must be a valid user id. With
 * `auth.legacyTokens` the pre-JWT format is accepted too. A user revoked
 * after the token was issued is refused (revocation.ts).
 *
 * Every refusal is a SandbarError whose message an operator can read in the
 * log and a client in the 403 body; it never contains the token.
 */
import { readFileSync } from 'node:fs';
import { decodeProtectedHeader, errors, jwtVerify, type CryptoKey, type JWTHeaderParameters, type JWTVerifyOptions } from 'jose';
import type { SandbarConfig } from '../config/types.js';
import { Errors, SandbarError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { isValidId } from '../protocol/ids.js';
import { KeyRefused, noKidKey, staticKeys, type KeyEntry } from './keys.js';
import { RemoteJwks } from './jwks-remote.js';
import { isLegacyShape, verifyLegacyToken } from './legacy-token.js';
import type { RevokedUsers } from './revocation.js';

/** Who a verified token names, and what else it says. */
export interface Identity {
  readonly userId: string;
  /** Expiry, unix seconds. */
  readonly exp: number;
  /** Issued at, unix seconds, when the token says. */
  readonly iat: number | undefined;
  /** Every claim of the token (the claims policy reads `authz.roomsClaim` here). */
  readonly claims: Readonly<Record<string, unknown>>;
  /** The kid of the key that verified it; '' for a token without kid, 'legacy' for a legacy token. */
  readonly kid: string;
}

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

const NO_CLAIMS: Readonly<Record<string, unknown>> = Object.freeze({});

/**
 * What a session keeps of its token's identity: the claims policy reads one
 * claim (`authz.roomsClaim`) of it, so only that one stays. A session lives
 * for hours and there may be millions: the whole payload (sub, iat, exp, aud,
 * iss, jti, an app's own fields) cost a few hundred bytes each.
 */
export function sessionIdentity(id: Identity, roomsClaim: string): Identity {
  const rooms = id.claims[roomsClaim];
  return { userId: id.userId, exp: id.exp, iat: id.iat, kid: id.kid, claims: rooms === undefined ? NO_CLAIMS : { [roomsClaim]: rooms } };
}

export class TokenVerifier {
  private readonly byKid: Map<string, KeyEntry>;
  private readonly noKid: KeyEntry[];
  private readonly remote: RemoteJwks | null;
  private readonly options: JWTVerifyOptions;
  /** jose's key callback, bound once (no closure per token). */
  private readonly getKey: (h: JWTHeaderParameters) => Promise<CryptoKey>;

  constructor(private readonly auth: SandbarConfig['auth'], logger: Logger, private readonly revoked: RevokedUsers | null = null) {
    const jwks = auth.jwksFile === undefined ? undefined : JSON.parse(readFileSync(auth.jwksFile, 'utf8')) as unknown;
    ({ byKid: this.byKid, noKid: this.noKid } = staticKeys(auth.secret, auth.keys, jwks));
    this.remote = auth.jwksUrl === undefined ? null : new RemoteJwks(auth.jwksUrl, auth.jwksRefreshMs, auth.jwksTimeoutMs, logger);
    this.options = {
      algorithms: [...auth.algorithms],
      clockTolerance: auth.clockSkewS,
      requiredClaims: ['sub', 'exp'],
      ...(auth.issuer !== undefined ? { issuer: auth.issuer } : {}),
      ...(auth.audience !== undefined ? { audience: [...auth.audience] } : {}),
    };
    this.getKey = (h) => this.keyFor(h);
  }

  /** Starts the JWKS URL fetches (if any). */
  start(): void { this.remote?.start(); }
  stop(): void { this.remote?.stop(); }
  get jwks(): RemoteJwks | null { return this.remote; }

  /**
   * The identity a token names.
   * @throws SandbarError SANDBAR_ERR_AUTH_MISSING, SANDBAR_ERR_AUTH_INVALID,
   *   SANDBAR_ERR_AUTH_EXPIRED or SANDBAR_ERR_AUTH_REVOKED, with the reason.
   */
  async verify(token: unknown, nowMs: number = Date.now()): Promise<Identity> {
    if (token === undefined || token === null || token === '') throw Errors.AUTH_MISSING('no token given');
    if (typeof token !== 'string') throw Errors.AUTH_INVALID('token is not a string');
    if (token.length > this.auth.maxTokenBytes) throw Errors.AUTH_INVALID(`token is longer than ${this.auth.maxTokenBytes} bytes (auth.maxTokenBytes)`);
    let id: Identity;
    if (this.auth.legacyTokens && isLegacyShape(token)) {
      const t = verifyLegacyToken(this.auth.secret, token, nowMs);
      id = { userId: t.userId, exp: t.exp, iat: undefined, claims: { sub: t.userId, exp: t.exp }, kid: 'legacy' };
    } else {
      id = await this.verifyJwt(token, nowMs);
    }
    if (this.revoked?.refuses(id.userId, id.iat, nowMs)) throw Errors.AUTH_REVOKED(`user ${id.userId} was revoked after this token was issued`);
    return id;
  }

  private async verifyJwt(token: string, nowMs: number): Promise<Identity> {
    if (!JWT_SHAPE.test(token)) throw Errors.AUTH_INVALID(this.auth.legacyTokens ? 'token is neither a JWT (header.payload.signature) nor a legacy token' : 'token is not a JWT (three base64url parts: header.payload.signature)');
    let header: JWTHeaderParameters;
    try {
      header = decodeProtectedHeader(token) as JWTHeaderParameters;
    } catch {
      throw Errors.AUTH_INVALID('token header is not base64url JSON');
    }
    // jose refuses it too (it is not in auth.algorithms); said plainly, since it is an attack.
    if (typeof header.alg === 'string' && header.alg.toLowerCase() === 'none') throw Errors.AUTH_INVALID('algorithm "none" (an unsigned token) is never accepted');
    let payload: Record<string, unknown>;
    const kid = typeof header.kid === 'string' ? header.kid : '';
    try {
      ({ payload } = await jwtVerify(token, this.getKey, { ...this.options, currentDate: new Date(nowMs) }));
    } catch (err) {
      throw refusal(err, header);
    }
    const sub = payload.sub;
    if (!isValidId(sub)) throw Errors.AUTH_INVALID('claim sub is not a valid user id (1-64 characters of A-Z a-z 0-9 _ - . @)');
    const exp = payload.exp as number;
    if (!Number.isFinite(exp)) throw Errors.AUTH_INVALID('claim exp is not a number');
    const iat = typeof payload.iat === 'number' && Number.isFinite(payload.iat) ? payload.iat : undefined;
    return { userId: sub, exp, iat, claims: payload, kid };
  }

  private async keyFor(h: JWTHeaderParameters): Promise<CryptoKey> {
    const alg = h.alg;
    const kid = h.kid;
    let entry: KeyEntry | undefined;
    if (kid === undefined) {
      entry = noKidKey(this.noKid, alg);
    } else {
      if (typeof kid !== 'string') throw new KeyRefused('kid is not a string');
      entry = this.byKid.get(kid) ?? await this.remote?.find(kid);
      if (!entry) throw new KeyRefused(`no configured key has kid "${printable(kid)}"`);
    }
    return entry.key(alg);
  }
}

/** A jose error (or a KeyRefused) as the SandbarError a client and the log get. */
function refusal(err: unknown, header: JWTHeaderParameters): SandbarError {
  if (err instanceof SandbarError) return err;
  const alg = typeof header.alg === 'string' ? printable(header.alg) : String(header.alg);
  const say = (m: string) => Errors.AUTH_INVALID(m);
  if (err instanceof KeyRefused) return say(err.message);
  if (err instanceof errors.JWTExpired) return Errors.AUTH_EXPIRED(`token expired at ${isoOf((err.payload as { exp?: unknown }).exp)}`);
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf') return say(`token is not valid before ${isoOf((err.payload as { nbf?: unknown }).nbf)} (nbf)`);
    if (err.reason === 'missing') return say(`token has no ${err.claim} claim`);
    if (err.claim === 'aud') return say('claim aud does not name this server (auth.audience)');
    if (err.claim === 'iss') return say('claim iss is not auth.issuer');
    return say(`claim ${err.claim}: ${err.message}`);
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return say(`algorithm ${alg} is not accepted (auth.algorithms)`);
  if (err instanceof errors.JWSSignatureVerificationFailed) return say('token signature does not match');
  if (err instanceof errors.JOSENotSupported) return say(`algorithm ${alg} or a header field is not supported: ${err.message}`);
  if (err instanceof errors.JOSEError || err instanceof TypeError) return say(`token is malformed: ${err.message}`);
  return Errors.AUTH_INVALID('token could not be verified', { cause: err });
}

function isoOf(s: unknown): string {
  return typeof s === 'number' && Number.isFinite(s) ? new Date(s * 1000).toISOString() : String(s);
}

/** Header text from a client, safe for a log line: printable ASCII, at most 64 characters. */
function printable(s: string): string {
  const t = s.replace(/[^\x20-\x7e]/g, '?');
  return t.length > 64 ? `${t.slice(0, 61)}...` : t;
}
