/**
 * A worker's authentication and authorization, built once from the frozen
 * configuration: the token verifier (with the JWKS URL fetcher), the revoked
 * users, the bounded log of refused tokens, the authorization proxy and the
 * room authorizer.
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { SandbarConfig } from '../config/types.js';
import type { Subjects } from '../bus/subjects.js';
import type { Logger } from '../observability/logger.js';
import { AuthzProxy } from './authz-proxy.js';
import { RefusalLog } from './refusal-log.js';
import { listenForRevocations, RevokedUsers } from './revocation.js';
import { RoomAuthorizer } from './room-authorizer.js';
import { TokenVerifier } from './verifier.js';

/** The shipped development secret: a host that verifies with it accepts tokens anyone can mint. */
export const DEV_SECRET = 'dev-secret-change-me';

export class WorkerAuth {
  readonly revoked: RevokedUsers;
  readonly verifier: TokenVerifier;
  readonly refusals: RefusalLog;
  readonly proxy: AuthzProxy | null;
  readonly rooms: RoomAuthorizer;
  private sub: Subscription | null = null;

  constructor(config: SandbarConfig, private readonly logger: Logger) {
    const a = config.auth;
    this.revoked = new RevokedUsers(a.revocationTtlS);
    this.verifier = new TokenVerifier(a, logger, this.revoked);
    this.refusals = new RefusalLog(logger);
    const z = config.authz;
    this.proxy = z.proxyUrl === undefined ? null : new AuthzProxy({
      url: z.proxyUrl, timeoutMs: z.proxyTimeoutMs, cacheMs: z.proxyCacheMs, cacheMax: z.proxyCacheMax, failOpen: z.proxyFailOpen,
      ...(z.proxyToken !== undefined ? { token: z.proxyToken } : {}),
    }, logger);
    this.rooms = new RoomAuthorizer(z, (t) => this.verifier.verify(t), this.proxy);
    this.verifier.start();
    if (a.secret === DEV_SECRET && a.algorithms.some((x) => x.startsWith('HS'))) {
      logger.warn('auth.secret is the shipped development secret: anyone can mint tokens this host accepts; set your own (docs/auth.md)');
    }
  }

  /** Subscribes the revocation subject; closeSessionsOf closes the local sessions of a revoked user. */
  listen(nc: NatsConnection, subjects: Subjects, closeSessionsOf: (user: string, reason: string) => number): void {
    this.sub = listenForRevocations(nc, subjects, this.revoked, closeSessionsOf, this.logger);
  }

  /** Counters for the worker's stats: refused tokens by code, proxy requests and failures, JWKS URL fetches. */
  stats(): { refused: Record<string, number>; proxy: AuthzProxy['counters'] | null; jwks: { fetches: number; failures: number } | null; revokedUsers: number } {
    const j = this.verifier.jwks;
    return { refused: { ...this.refusals.total }, proxy: this.proxy ? { ...this.proxy.counters } : null, jwks: j ? { fetches: j.fetches, failures: j.failures } : null, revokedUsers: this.revoked.size };
  }

  stop(): void {
    this.verifier.stop();
    this.sub?.unsubscribe();
  }
}
