/**
 * The metrics of a worker's authentication (src/auth/worker-auth.ts keeps
 * the counters; this exports them at each scrape): handshakes refused for
 * their token by code, the authorization proxy's requests and answers, the
 * JWKS URL's fetches, the revoked users remembered. Counters of a feature
 * that is off (no proxy, no JWKS URL) are exported as 0.
 */
import type { Family } from './exposition.js';

/** What WorkerAuth.stats() answers (the shape only: observability imports nothing of auth). */
export interface AuthStats {
  readonly refused: Readonly<Record<string, number>>;
  readonly proxy: { readonly requests: number; readonly allowed: number; readonly denied: number; readonly failures: number; readonly cacheHits: number } | null;
  readonly jwks: { readonly fetches: number; readonly failures: number } | null;
  readonly revokedUsers: number;
}

/** Refusal codes exported from the start, at 0. */
const AUTH_CODES = ['SANDBAR_ERR_AUTH_MISSING', 'SANDBAR_ERR_AUTH_INVALID', 'SANDBAR_ERR_AUTH_EXPIRED', 'SANDBAR_ERR_AUTH_REVOKED'];

function one(name: string, help: string, type: 'counter' | 'gauge', value: number, labels: Record<string, string> = {}): Family {
  return { name, help, type, samples: [{ labels, value }] };
}

export function authFamilies(s: AuthStats): Family[] {
  const codes = new Map<string, number>(AUTH_CODES.map((c) => [c, 0]));
  for (const [code, n] of Object.entries(s.refused)) codes.set(code, n);
  const p = s.proxy;
  return [
    { name: 'sandbar_auth_failures_total', help: 'Handshakes (WebSocket and LongPoll) refused for their token (HTTP 403), by SANDBAR_ERR_* code.', type: 'counter',
      samples: [...codes].map(([code, value]) => ({ labels: { code }, value })) },
    { name: 'sandbar_authz_proxy_answers_total', help: 'Answers of the authorization proxy (authz.proxyUrl) to room actions: allow, deny, or failure (down, slow, garbage: refused unless authz.proxyFailOpen).', type: 'counter',
      samples: [['allow', p?.allowed ?? 0], ['deny', p?.denied ?? 0], ['failure', p?.failures ?? 0]].map(([answer, value]) => ({ labels: { answer: answer as string }, value: value as number })) },
    one('sandbar_authz_proxy_cache_hits_total', 'Room actions answered from the authorization proxy\'s cache (authz.proxyCacheMs).', 'counter', p?.cacheHits ?? 0),
    one('sandbar_jwks_fetches_total', 'Fetches of the JWKS URL (auth.jwksUrl).', 'counter', s.jwks?.fetches ?? 0),
    one('sandbar_jwks_fetch_failures_total', 'Failed fetches of the JWKS URL (the keys already known stay in use).', 'counter', s.jwks?.failures ?? 0),
    one('sandbar_revoked_users', 'Users whose revocation this worker remembers (auth.revocationTtlS).', 'gauge', s.revokedUsers),
  ];
}
