/**
 * The keys that verify tokens, chosen per token by its header: a `kid` names
 * one key (from auth.keys, auth.jwksFile or auth.jwksUrl, in that order of
 * precedence); a token without kid uses the key for its algorithm that has
 * none (auth.secret for HS*, or an auth.keys entry without kid).
 *
 * A key verifies only algorithms of its own type: an RSA public key is never
 * used as an HMAC secret (the classic algorithm-confusion forgery), and a key
 * with an `alg` accepts that algorithm alone. Imported keys (WebCrypto
 * CryptoKeys) are cached per key and algorithm, so a handshake does no key
 * parsing.
 */
import { importJWK, importSPKI, type CryptoKey, type JWK } from 'jose';
import type { KeyConfig } from '../config/tables.js';

/** Why no key verifies a token (the verifier answers 403 with this reason). */
export class KeyRefused extends Error {}

/** One verification key and its imports per algorithm. */
export class KeyEntry {
  private readonly imported = new Map<string, Promise<CryptoKey>>();
  constructor(
    readonly kid: string | undefined,
    /** The one algorithm this key accepts, or undefined: any algorithm of its type. */
    readonly alg: string | undefined,
    private readonly material: { readonly secret: Uint8Array } | { readonly pem: string } | { readonly jwk: JWK },
    /** Where it came from, for reasons and logs: `auth.secret`, `auth.keys[1]`, `jwks file`, `jwks url`. */
    readonly origin: string,
  ) {}

  /** The key type's algorithm family check; throws KeyRefused when the key cannot verify alg. */
  private fits(alg: string): void {
    if (this.alg !== undefined && this.alg !== alg) throw new KeyRefused(`key ${this.name} is for ${this.alg}, the token says ${alg}`);
    const m = this.material;
    const kty = 'secret' in m ? 'oct' : 'pem' in m ? 'pem' : m.jwk.kty;
    const ok =
      kty === 'oct' ? alg.startsWith('HS')
      : kty === 'RSA' ? alg.startsWith('RS') || alg.startsWith('PS')
      : kty === 'EC' ? alg === ({ 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512' } as Record<string, string>)[String((m as { jwk: JWK }).jwk.crv)]
      : kty === 'OKP' ? alg === 'EdDSA' && (m as { jwk: JWK }).jwk.crv === 'Ed25519'
      : kty === 'pem';
    if (!ok) throw new KeyRefused(`key ${this.name} (${kty}) cannot verify ${alg}`);
  }

  /** Same key material and algorithm (a JWKS fetched again): the imports can be kept. */
  sameAs(o: KeyEntry): boolean {
    return this.kid === o.kid && this.alg === o.alg && JSON.stringify(this.material) === JSON.stringify(o.material);
  }

  get name(): string { return this.kid === undefined ? this.origin : `"${this.kid}"`; }

  /** The CryptoKey for alg, imported once. */
  key(alg: string): Promise<CryptoKey> {
    this.fits(alg);
    let p = this.imported.get(alg);
    if (!p) {
      p = this.importFor(alg);
      // A failed import is not cached: the next token tries again (and is refused again).
      p.catch(() => this.imported.delete(alg));
      this.imported.set(alg, p);
    }
    return p;
  }

  private async importFor(alg: string): Promise<CryptoKey> {
    const m = this.material;
    try {
      if ('pem' in m) return await importSPKI(m.pem, alg);
      if ('secret' in m || m.jwk.kty === 'oct') {
        const bytes = 'secret' in m ? m.secret : Buffer.from(String(m.jwk.k ?? ''), 'base64url');
        // Imported as a CryptoKey here: jose would import raw bytes again at every verify.
        return await crypto.subtle.importKey('raw', new Uint8Array(bytes), { name: 'HMAC', hash: `SHA-${alg.slice(2)}` }, false, ['verify']) as CryptoKey;
      }
      return await importJWK(m.jwk, alg) as CryptoKey;
    } catch (err) {
      throw new KeyRefused(`key ${this.name} cannot be used for ${alg}: ${(err as Error).message}`);
    }
  }
}

/** Keys from a JSON Web Key Set (file or URL): public keys with a kid; the others are skipped with a reason. */
export function keysFromJwks(set: unknown, origin: string, skipped: (reason: string) => void = () => {}): KeyEntry[] {
  const keys = (set as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) throw new Error('not a JSON Web Key Set: no "keys" array');
  const out: KeyEntry[] = [];
  keys.forEach((k: unknown, i) => {
    const jwk = k as JWK & { d?: unknown; use?: unknown };
    if (typeof jwk !== 'object' || jwk === null || typeof jwk.kid !== 'string' || jwk.kid === '') return skipped(`keys[${i}] has no kid`);
    if (!['oct', 'RSA', 'EC', 'OKP'].includes(String(jwk.kty))) return skipped(`keys[${i}] (kid ${jwk.kid}) has an unsupported kty ${String(jwk.kty)}`);
    if (jwk.kty !== 'oct' && jwk.d !== undefined) return skipped(`keys[${i}] (kid ${jwk.kid}) is a private key`);
    if (jwk.use !== undefined && jwk.use !== 'sig') return skipped(`keys[${i}] (kid ${jwk.kid}) is for use ${String(jwk.use)}, not sig`);
    out.push(new KeyEntry(jwk.kid, typeof jwk.alg === 'string' ? jwk.alg : undefined, { jwk }, origin));
  });
  return out;
}

/** The keys of the configuration that never change while the worker runs. */
export function staticKeys(secret: string, keys: readonly KeyConfig[], jwksFile: unknown | undefined): { byKid: Map<string, KeyEntry>; noKid: KeyEntry[] } {
  const byKid = new Map<string, KeyEntry>();
  const noKid: KeyEntry[] = [];
  // auth.keys first: a kid there wins over the same kid in a JWKS.
  keys.forEach((k, i) => {
    const material = k.secret !== undefined ? { secret: Buffer.from(k.secret, 'utf8') } : { pem: k.publicKey! };
    const e = new KeyEntry(k.kid, k.alg, material, `auth.keys[${i}]`);
    if (k.kid === undefined) noKid.push(e);
    else byKid.set(k.kid, e);
  });
  if (secret !== '') noKid.push(new KeyEntry(undefined, undefined, { secret: Buffer.from(secret, 'utf8') }, 'auth.secret'));
  if (jwksFile !== undefined) for (const e of keysFromJwks(jwksFile, 'auth.jwksFile')) if (!byKid.has(e.kid!)) byKid.set(e.kid!, e);
  return { byKid, noKid };
}

/** The key without kid for alg: an auth.keys entry for exactly alg first, then one of alg's type (auth.secret). */
export function noKidKey(noKid: readonly KeyEntry[], alg: string): KeyEntry {
  const exact = noKid.find((e) => e.alg === alg);
  if (exact) return exact;
  const hmac = alg.startsWith('HS');
  const any = noKid.find((e) => e.alg === undefined && hmac);
  if (any) return any;
  throw new KeyRefused(`the token has no kid and no key without kid is configured for ${alg}`);
}
