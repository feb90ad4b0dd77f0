/**
 * `sandbar token`: mint a token with the configured key, or explain why one
 * is refused.
 *
 *   sandbar token <user> [--ttl S] [--claims JSON] [--key private.pem --alg RS256 [--kid K]]
 *   sandbar token --check <token>
 *
 * Without --key the token is HS256 with auth.secret (what the dev endpoint
 * mints). --check verifies with exactly the keys and checks a host would use
 * (fetching auth.jwksUrl once) and prints the claims, or the refusal.
 */
import { readFileSync } from 'node:fs';
import { createPrivateKey } from 'node:crypto';
import { decodeJwt } from 'jose';
import type { SandbarConfig } from '../config/types.js';
import { Errors, SandbarError } from '../errors.js';
import { createLogger } from '../observability/logger.js';
import { mintToken, signToken } from './token.js';
import { TokenVerifier } from './verifier.js';

export const TOKEN_HELP = `usage: sandbar token <userId> [--ttl <s>] [--claims '<JSON object>'] [--key <private key PEM> --alg <alg> [--kid <kid>]] [--config file.toml]
       sandbar token --check <token> [--config file.toml]
Mints a JWT for userId (sub), valid for --ttl seconds (default auth.tokenTtlS), with the extra claims
given (e.g. '{"rooms":["team-*"]}'); signed HS256 with auth.secret, or with --key (PKCS#8 PEM) and --alg.
--check verifies a token with this configuration's keys and checks and prints its claims, or why it is
refused (exit 1). See docs/auth.md.`;

/** The line to print and the exit code (0, 1 for a refused --check, 64 usage). */
export async function tokenCommand(config: SandbarConfig, positionals: string[], opts: Record<string, string>): Promise<{ code: number; line: string }> {
  if (opts.check !== undefined) {
    if (positionals.length) return { code: 64, line: 'token --check takes the token only' };
    return check(config, opts.check);
  }
  const userId = positionals[0];
  if (!userId || positionals.length > 1) return { code: 64, line: 'usage: sandbar token <userId> [--ttl s] [--claims JSON]' };
  const ttl = opts.ttl === undefined ? config.auth.tokenTtlS : Number(opts.ttl);
  let claims: Record<string, unknown> = {};
  if (opts.claims !== undefined) {
    try {
      claims = JSON.parse(opts.claims) as Record<string, unknown>;
    } catch {
      return { code: 64, line: '--claims must be a JSON object' };
    }
    if (!claims || typeof claims !== 'object' || Array.isArray(claims)) return { code: 64, line: '--claims must be a JSON object' };
  }
  try {
    if (opts.key === undefined) return { code: 0, line: mintToken(config.auth.secret, userId, ttl, Date.now(), claims) };
    if (opts.alg === undefined) return { code: 64, line: '--key needs --alg (RS256, ES256, EdDSA, ...)' };
    let key;
    try {
      key = createPrivateKey(readFileSync(opts.key, 'utf8'));
    } catch (err) {
      return { code: 64, line: `--key ${opts.key}: not a readable PEM private key (${(err as Error).message.split('\n')[0]})` };
    }
    return { code: 0, line: await signToken({ key, alg: opts.alg, ...(opts.kid !== undefined ? { kid: opts.kid } : {}) }, userId, ttl, Date.now(), claims) };
  } catch (err) {
    if (err instanceof SandbarError) return { code: 64, line: `${err.code}: ${err.message}` };
    return { code: 64, line: `cannot sign: ${(err as Error).message}` };
  }
}

async function check(config: SandbarConfig, token: string): Promise<{ code: number; line: string }> {
  const verifier = new TokenVerifier(config.auth, createLogger({ level: 'warn', hostId: config.hostId, worker: 'primary' }));
  await verifier.jwks?.refresh('check');
  try {
    const id = await verifier.verify(token);
    return { code: 0, line: JSON.stringify({ valid: true, user: id.userId, kid: id.kid || null, exp: new Date(id.exp * 1000).toISOString(), claims: id.claims }, null, 2) };
  } catch (err) {
    const e = err instanceof SandbarError ? err : Errors.AUTH_INVALID((err as Error).message);
    let claims: unknown = null;
    try { claims = decodeJwt(token); } catch { /* not decodable: the reason says so */ }
    return { code: 1, line: `refused: ${e.code}: ${e.message}${claims ? `\nclaims (unverified): ${JSON.stringify(claims)}` : ''}` };
  }
}
