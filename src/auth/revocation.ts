/**
 * Revocation: disconnect every session of a user, everywhere, and keep the
 * tokens issued before that out for a while.
 *
 * `revokeUser()` publishes `{user, reason, at}` on the broadcast subject
 * `sandbar.<cluster>.auth.revoke`; every worker subscribes once
 * (RevocationListener). A worker that hears it remembers the user until
 * `auth.revocationTtlS` passes (tokens of that user issued at or before `at`
 * are refused with 403 SANDBAR_ERR_AUTH_REVOKED, else the phoenix client
 * would reconnect at once with the same token) and closes each local session
 * of the user with close code 4403 (SANDBAR_ERR_AUTH_REVOKED) and the reason.
 * Rare control traffic: a broadcast and a scan of the worker's sessions are
 * cheap enough.
 *
 * The memory is per worker process, bounded to MAX_REVOKED users (oldest
 * forgotten first), and lost when the worker restarts: revocation is a
 * disconnect plus a grace period, not a token deny-list. To keep a user out
 * for good, stop minting tokens for them and keep token lifetimes short.
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Subjects } from '../bus/subjects.js';
import type { Logger } from '../observability/logger.js';
import { isValidId } from '../protocol/ids.js';

/** Most revoked users a worker remembers. */
export const MAX_REVOKED = 100_000;

/** What crosses NATS: the user, why, and when (unix seconds; tokens issued at or before it are refused). */
export interface Revocation { readonly user: string; readonly reason: string; readonly at: number }

/** The revoked users a worker remembers: user → revocation time (unix s) and until when (ms). */
export class RevokedUsers {
  private readonly byUser = new Map<string, { at: number; untilMs: number }>();
  constructor(private readonly ttlS: number) {}

  add(user: string, atS: number, nowMs: number = Date.now()): void {
    if (this.ttlS <= 0) return;
    this.byUser.delete(user);
    this.byUser.set(user, { at: atS, untilMs: nowMs + this.ttlS * 1000 });
    if (this.byUser.size > MAX_REVOKED) this.byUser.delete(this.byUser.keys().next().value!);
  }

  /** Whether a token of user issued at iat (unix s; undefined: unknown) is refused. */
  refuses(user: string, iat: number | undefined, nowMs: number = Date.now()): boolean {
    const r = this.byUser.get(user);
    if (!r) return false;
    if (nowMs >= r.untilMs) {
      this.byUser.delete(user);
      return false;
    }
    // A token that does not say when it was issued may be an old one.
    return iat === undefined || iat <= r.at;
  }

  get size(): number { return this.byUser.size; }
}

/**
 * Disconnects every session of `user` on every host, with close code 4403
 * and `reason` (at most 100 characters are kept), and refuses that user's
 * tokens issued until now for auth.revocationTtlS. For operators and the
 * server API: any process with a NATS connection to the cluster may call it.
 */
export function revokeUser(nc: NatsConnection, subjects: Subjects, user: string, reason: string, nowMs: number = Date.now()): Revocation {
  if (!isValidId(user)) throw new TypeError('user must be 1-64 characters of A-Z a-z 0-9 _ - . @');
  const r: Revocation = { user, reason: String(reason).slice(0, 100), at: Math.floor(nowMs / 1000) };
  nc.publish(subjects.revoke(), JSON.stringify(r));
  return r;
}

/** A worker's side: hears revocations, remembers them, and closes its sessions of the user. */
export function listenForRevocations(nc: NatsConnection, subjects: Subjects, revoked: RevokedUsers, closeSessionsOf: (user: string, reason: string) => number, logger: Logger): Subscription {
  return nc.subscribe(subjects.revoke(), { callback: (err, msg) => {
    if (err) return;
    let r: Revocation;
    try {
      r = msg.json<Revocation>();
    } catch {
      logger.warn({ subject: msg.subject }, 'revocation message is not JSON; ignored');
      return;
    }
    if (!r || !isValidId(r.user) || typeof r.at !== 'number' || !Number.isFinite(r.at)) {
      logger.warn({ subject: msg.subject }, 'revocation message lacks a valid user or at; ignored');
      return;
    }
    const reason = typeof r.reason === 'string' ? r.reason.slice(0, 100) : '';
    revoked.add(r.user, r.at);
    const closed = closeSessionsOf(r.user, reason);
    logger.info({ user: r.user, reason, closed }, 'user revoked: sessions closed');
  } });
}
