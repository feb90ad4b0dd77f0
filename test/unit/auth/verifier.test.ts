import { expect } from 'chai';
import pino from 'pino';
import { SignJWT } from 'jose';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TokenVerifier, sessionIdentity } from '../../../src/auth/verifier.js';
import { mintToken } from '../../../src/auth/token.js';
import { mintLegacyToken } from '../../../src/auth/legacy-token.js';
import { RevokedUsers } from '../../../src/auth/revocation.js';
import { loadConfig } from '../../../src/config/index.js';
import { SandbarError, type ErrorCode } from '../../../src/errors.js';
import { jwt, keyToml, makeKey, unsigned, type TestKey } from '../../support/auth-keys.js';

const SECRET = 'unit-test-secret-0123456789';
const silent = pino({ level: 'silent' });

/** The auth config a host would have with these flags and this TOML text. */
function authConfig(flags: string[] = [], toml = '') {
  const dir = mkdtempSync(join(tmpdir(), 'sandbar-auth-'));
  const file = join(dir, 'c.toml');
  writeFileSync(file, toml);
  return loadConfig({ argv: ['--config', file, `--auth.secret=${SECRET}`, ...flags], env: {} }).config.auth;
}

async function refused(p: Promise<unknown>, code: ErrorCode, reason: RegExp): Promise<void> {
  let caught: unknown;
  try { await p; } catch (err) { caught = err; }
  expect(caught, 'refused').to.be.instanceOf(SandbarError);
  expect((caught as SandbarError).code).to.equal(code);
  expect((caught as SandbarError).message).to.match(reason);
}

describe('auth/verifier (JWT with jose)', () => {
  let rs: TestKey, es: TestKey, ed: TestKey, rs2: TestKey;
  let v: TokenVerifier;
  before(async () => {
    [rs, es, ed, rs2] = await Promise.all([makeKey('RS256', 'rs-1'), makeKey('ES256', 'es-1'), makeKey('EdDSA', 'ed-1'), makeKey('RS256', 'rs-2')]);
    const dir = mkdtempSync(join(tmpdir(), 'sandbar-jwks-'));
    const jwks = join(dir, 'jwks.json');
    writeFileSync(jwks, JSON.stringify({ keys: [ed.jwk] }));
    const pemFile = join(dir, 'es.pem');
    writeFileSync(pemFile, es.pem);
    v = new TokenVerifier(authConfig([`--auth.jwksFile=${jwks}`, '--auth.audience=sandbar,other', '--auth.issuer=https://issuer.test/'], `
${keyToml('rs-1', 'RS256', { publicKey: rs.pem })}${keyToml('es-1', 'ES256', { file: pemFile })}${keyToml('hs-1', 'HS512', { secret: 'a-second-hmac-secret-for-hs512' })}`), silent);
  });
  const std = { aud: 'sandbar', iss: 'https://issuer.test/' };

  it('mintToken is byte for byte what jose SignJWT makes (HS256, no kid), and verifies', async () => {
    const now = Date.now();
    const mine = mintToken(SECRET, 'ann', 60, now, { ...std, rooms: ['a-*'] });
    const iat = Math.floor(now / 1000);
    const jose = await new SignJWT({ ...std, rooms: ['a-*'], sub: 'ann', iat, exp: iat + 60 }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(new TextEncoder().encode(SECRET));
    expect(mine).to.equal(jose);
    const id = await v.verify(mine);
    expect(id).to.deep.include({ userId: 'ann', exp: iat + 60, iat, kid: '' });
    expect(id.claims.rooms).to.deep.equal(['a-*']);
  });

  it('accepts HS256/384/512 (auth.secret, no kid), HS512 by kid, RS256 and ES256 (auth.keys), EdDSA (JWKS file)', async () => {
    for (const alg of ['HS256', 'HS384', 'HS512']) expect((await v.verify(await jwt({ alg, secret: SECRET }, `u-${alg}`, 60, std))).userId).to.equal(`u-${alg}`);
    expect((await v.verify(await jwt({ alg: 'HS512', secret: 'a-second-hmac-secret-for-hs512', kid: 'hs-1' }, 'h', 60, std))).kid).to.equal('hs-1');
    for (const k of [rs, es, ed]) expect(await v.verify(await jwt(k, `u-${k.alg}`, 60, std))).to.deep.include({ userId: `u-${k.alg}`, kid: k.kid });
  });

  it('refuses each bad token with its reason', async () => {
    const A = 'SANDBAR_ERR_AUTH_INVALID';
    await refused(v.verify(undefined), 'SANDBAR_ERR_AUTH_MISSING', /no token/);
    await refused(v.verify('not-a-jwt'), A, /not a JWT/);
    await refused(v.verify('a.b.c'), A, /header is not base64url JSON|malformed/);
    await refused(v.verify(await jwt(rs, 'ann', -60, std)), 'SANDBAR_ERR_AUTH_EXPIRED', /expired at/);
    await refused(v.verify(await jwt(rs, 'ann', 60, { ...std, aud: 'elsewhere' })), A, /aud/);
    await refused(v.verify(await jwt(rs, 'ann', 60, { ...std, iss: 'https://evil.test/' })), A, /iss/);
    await refused(v.verify(await jwt(rs, 'ann', 60, { ...std, nbf: Math.floor(Date.now() / 1000) + 3600 })), A, /not valid before/);
    await refused(v.verify(await jwt(rs2, 'ann', 60, std)), A, /no configured key has kid "rs-2"/);
    await refused(v.verify(await jwt({ ...rs2, kid: 'rs-1' }, 'ann', 60, std)), A, /signature does not match/);
    await refused(v.verify(unsigned('ann', 60)), A, /"none"/);
    await refused(v.verify(await jwt(rs, undefined, 60, std)), A, /no sub claim/);
    await refused(v.verify(await jwt(rs, 'bad id!', 60, std)), A, /sub is not a valid user id/);
    await refused(v.verify(await jwt({ alg: 'HS256', secret: 'wrong-secret-wrong-secret' }, 'ann', 60, std)), A, /signature does not match/);
    await refused(v.verify('x'.repeat(5000)), A, /longer than 4096/);
  });

  it('never uses an RSA public key as an HMAC secret (algorithm confusion)', async () => {
    // The classic forgery: HS256 signed with the server's public key text, naming the RSA kid.
    const forged = await jwt({ alg: 'HS256', secret: rs.pem, kid: 'rs-1' }, 'admin', 60, std);
    await refused(v.verify(forged), 'SANDBAR_ERR_AUTH_INVALID', /is for RS256, the token says HS256/);
    // A key from a JWKS without alg still only verifies algorithms of its type.
    await refused(v.verify(await jwt({ alg: 'HS256', secret: 'whatever-whatever-whatever', kid: 'ed-1' }, 'admin', 60, std)), 'SANDBAR_ERR_AUTH_INVALID', /cannot verify HS256|is for EdDSA/);
  });

  it('accepts only auth.algorithms, and the legacy format only with auth.legacyTokens', async () => {
    const hsOnly = new TokenVerifier(authConfig(['--auth.algorithms=HS256']), silent);
    await refused(hsOnly.verify(await jwt({ alg: 'HS384', secret: SECRET }, 'ann', 60)), 'SANDBAR_ERR_AUTH_INVALID', /HS384 is not accepted/);
    const legacy = mintLegacyToken(SECRET, 'old', 60);
    await refused(hsOnly.verify(legacy), 'SANDBAR_ERR_AUTH_INVALID', /not a JWT/);
    const withLegacy = new TokenVerifier(authConfig(['--auth.legacyTokens=true']), silent);
    expect((await withLegacy.verify(legacy)).userId).to.equal('old');
    expect((await withLegacy.verify(mintToken(SECRET, 'new', 60))).userId).to.equal('new');
  });

  it('allows auth.clockSkewS past exp, not more', async () => {
    const skew = new TokenVerifier(authConfig(['--auth.clockSkewS=30']), silent);
    const t = mintToken(SECRET, 'ann', 60, Date.now() - 70_000);
    expect((await skew.verify(t)).userId).to.equal('ann');
    await refused(new TokenVerifier(authConfig(['--auth.clockSkewS=0']), silent).verify(t), 'SANDBAR_ERR_AUTH_EXPIRED', /expired/);
  });

  it('refuses tokens issued before a revocation of their user, for revocationTtlS', async () => {
    const revoked = new RevokedUsers(60);
    const rv = new TokenVerifier(authConfig(), silent, revoked);
    const now = Date.now();
    const before = mintToken(SECRET, 'ann', 600, now - 5000);
    revoked.add('ann', Math.floor((now - 1000) / 1000), now);
    await refused(rv.verify(before, now), 'SANDBAR_ERR_AUTH_REVOKED', /revoked/);
    expect((await rv.verify(mintToken(SECRET, 'ann', 600, now + 1000), now)).userId).to.equal('ann');
    expect((await rv.verify(mintToken(SECRET, 'bob', 600, now - 5000), now)).userId).to.equal('bob');
    // After the ttl the memory is gone.
    expect((await rv.verify(before, now + 61_000)).userId).to.equal('ann');
  });
});

describe('auth: what a session keeps of its identity (sessionIdentity)', () => {
  const id = { userId: 'ann', exp: 2000, iat: 1000, kid: 'k1', claims: { sub: 'ann', exp: 2000, iat: 1000, aud: 'x', jti: 'j', rooms: ['team-*'], profile: { name: 'Ann' } } };

  it('keeps the user, exp, iat, kid and the one claim room policies read; nothing else of the payload', () => {
    const s = sessionIdentity(id, 'rooms');
    expect(s).to.deep.equal({ userId: 'ann', exp: 2000, iat: 1000, kid: 'k1', claims: { rooms: ['team-*'] } });
  });

  it('a token without that claim keeps an empty, shared claims object', () => {
    const a = sessionIdentity(id, 'channels');
    const b = sessionIdentity({ ...id, userId: 'bob' }, 'channels');
    expect(a.claims).to.deep.equal({});
    expect(a.claims).to.equal(b.claims);
  });
});
