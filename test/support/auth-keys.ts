/**
 * Keys and tokens for the auth tests: a key pair per asymmetric algorithm
 * (made with jose), their public halves as PEM and JWK, and tokens signed by
 * jose's SignJWT with any header and claims (including broken ones).
 */
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';

export interface TestKey { readonly alg: string; readonly kid: string; readonly privateKey: CryptoKey; readonly pem: string; readonly jwk: JWK }

export async function makeKey(alg: 'RS256' | 'ES256' | 'EdDSA' | 'PS256' | 'ES384', kid: string): Promise<TestKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg };
  return { alg, kid, privateKey, pem: await exportSPKI(publicKey), jwk };
}

/** A JWT for user with ttlS, signed by key (a TestKey, or an HMAC secret for HS*), header and claims as given. */
export async function jwt(key: TestKey | { alg: string; secret: string; kid?: string }, user: string | undefined, ttlS: number, claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const payload: Record<string, unknown> = { iat: now, exp: now + ttlS, ...claims };
  if (user !== undefined) payload.sub = user;
  const kid = 'kid' in key ? key.kid : undefined;
  const h = { alg: key.alg, typ: 'JWT', ...(kid !== undefined ? { kid } : {}), ...header };
  const signer = new SignJWT(payload).setProtectedHeader(h as { alg: string });
  return signer.sign('privateKey' in key ? key.privateKey : new TextEncoder().encode(key.secret));
}

/** An unsigned token (alg none), which must never be accepted. */
export function unsigned(user: string, ttlS: number): string {
  const b = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b({ alg: 'none', typ: 'JWT' })}.${b({ sub: user, exp: Math.floor(Date.now() / 1000) + ttlS })}.`;
}

/** One [[auth.keys]] table of a config file: its kid and alg, and the key as a PEM, a PEM file or an HMAC secret. */
export function keyToml(kid: string, alg: string, key: { publicKey: string } | { file: string } | { secret: string }): string {
  const [field, value] = Object.entries(key)[0]!;
  return `[[auth.keys]]\nkid = "${kid}"\nalg = "${alg}"\n${field} = ${field === 'publicKey' ? `"""${value}"""` : `"${value}"`}\n`;
}
