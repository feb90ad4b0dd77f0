/**
 * Who may do what in a room: the `[[authz.rooms]]` rules (first match wins,
 * `authz.default` when none matches) give each action a policy:
 *
 * - `public`: any signed-in user;
 * - `claims`: the session token's `authz.roomsClaim` claim lists the room (an
 *   array of ids or globs for every action, or an object of such arrays per
 *   action), or the join carries a subscription token for the room;
 * - `proxy`: the application is asked (authz-proxy.ts);
 * - `deny`: nobody.
 *
 * Actions: `join` (subscribe, get msgs and presence), `history` (a join with
 * last_seq replays the kept history), `publish` (push msg), `presence`
 * (appear in the room's presence; a user who may join but not appear joins
 * hidden).
 *
 * A subscription token (join param `token`) is a JWT signed by a configured
 * key, naming the session's user (`sub`) and the room (`room`: the exact id),
 * with an optional `actions` array (default: every action): it satisfies
 * `claims` policies for that room, so an application can decide per room
 * without a claim listing every room. It is checked at join.
 *
 * Decisions for join, history and presence are taken at join; publish is
 * taken at join too, except under `proxy`, which is asked (through its cache)
 * at each msg. A refresh's new claims apply to later joins.
 */
import type { SandbarConfig } from '../config/types.js';
import { globMatches, type Policy, type RoomAction, type RoomRule } from '../config/tables.js';
import { Errors, SandbarError } from '../errors.js';
import type { AuthzProxy } from './authz-proxy.js';
import type { Identity } from './verifier.js';

/** Publish permission of a joined room channel. */
export const PUBLISH_DENY = 0;
export const PUBLISH_ALLOW = 1;
/** Ask the proxy (through its cache) at each msg. */
export const PUBLISH_ASK = 2;
export type PublishGrant = typeof PUBLISH_DENY | typeof PUBLISH_ALLOW | typeof PUBLISH_ASK;
/** Bits of a joined room channel's `grant`: the publish permission, and this flag when it joined hidden (presence denied). */
export const PUBLISH_MASK = 3;
export const HIDDEN = 4;

/** What a join was granted beyond joining. */
export interface JoinGrant { readonly publish: PublishGrant; readonly presence: boolean }

/** Every action granted, no proxy: the grant of a public room (shared). */
const ALL: JoinGrant = Object.freeze({ publish: PUBLISH_ALLOW, presence: true });

/** The claims of a verified subscription token, as far as the room check needs them. */
interface SubClaims { readonly room: unknown; readonly actions: unknown }

export class RoomAuthorizer {
  private readonly fallback: RoomRule;
  constructor(
    private readonly authz: SandbarConfig['authz'],
    /** Verifies a subscription token (the session verifier). */
    private readonly verify: (token: unknown) => Promise<Identity>,
    private readonly proxy: AuthzProxy | null,
  ) {
    const d = authz.default;
    this.fallback = { match: '*', join: d, history: d, publish: d, presence: d };
  }

  /** The rule for a room: the first that matches, else authz.default for every action. */
  ruleFor(roomId: string): RoomRule {
    const rules = this.authz.rooms;
    for (let i = 0; i < rules.length; i++) if (globMatches(rules[i]!.match, roomId)) return rules[i]!;
    return this.fallback;
  }

  /**
   * The join of `roomId` by `id`'s user: what it is granted, or the
   * FORBIDDEN error saying why not. Synchronous unless a proxy must be asked
   * or a subscription token verified.
   */
  join(id: Identity, roomId: string, params: unknown, history: boolean): JoinGrant | SandbarError | Promise<JoinGrant | SandbarError> {
    const rule = this.ruleFor(roomId);
    const token = params && typeof params === 'object' ? (params as { token?: unknown }).token : undefined;
    if (token !== undefined || rule.join === 'proxy' || (history && rule.history === 'proxy') || rule.presence === 'proxy') {
      return this.joinAsync(id, roomId, rule, params, history, token);
    }
    if (rule.join === 'public' && rule.publish === 'public' && rule.presence === 'public' && (!history || rule.history === 'public')) return ALL;
    return this.decide(id, roomId, rule, history, null, new Map());
  }

  /** A msg into a room whose publish policy is proxy: the proxy's answer (cached), or the error. */
  publish(id: Identity, roomId: string): true | SandbarError | Promise<true | SandbarError> {
    const hit = this.proxy!.cached(id.userId, roomId, 'publish');
    if (hit) return hit.allow ? true : this.forbidden(id, roomId, 'publish', hit.reason);
    return this.proxy!.ask(id.userId, roomId, 'publish', {}).then((a) => a.allow ? true as const : this.forbidden(id, roomId, 'publish', a.reason));
  }

  private async joinAsync(id: Identity, roomId: string, rule: RoomRule, params: unknown, history: boolean, token: unknown): Promise<JoinGrant | SandbarError> {
    let sub: SubClaims | null = null;
    if (token !== undefined) {
      let t: Identity;
      try {
        t = await this.verify(token);
      } catch (err) {
        return this.forbidden(id, roomId, 'join', `the subscription token is refused: ${(err as Error).message}`);
      }
      if (t.userId !== id.userId) return this.forbidden(id, roomId, 'join', `the subscription token names user ${t.userId}`);
      if (t.claims.room !== roomId) return this.forbidden(id, roomId, 'join', 'the subscription token is for another room (claim room)');
      sub = { room: t.claims.room, actions: t.claims.actions };
    }
    const asked = new Map<RoomAction, string | null>();
    const forProxy = stripToken(params);
    for (const action of ['join', 'history', 'presence'] as const) {
      if (rule[action] !== 'proxy' || (action === 'history' && !history)) continue;
      const a = await this.proxy!.ask(id.userId, roomId, action, forProxy);
      asked.set(action, a.allow ? null : a.reason);
      if (!a.allow && action === 'join') break;
    }
    return this.decide(id, roomId, rule, history, sub, asked);
  }

  /** Applies the policies; proxy answers already in `asked` (action → null: allowed, or the refusal reason). */
  private decide(id: Identity, roomId: string, rule: RoomRule, history: boolean, sub: SubClaims | null, asked: ReadonlyMap<RoomAction, string | null>): JoinGrant | SandbarError {
    const why = (action: RoomAction): string | null => {
      const p = rule[action];
      if (p === 'proxy') return asked.get(action) ?? null;
      return this.refusal(p, id, roomId, action, sub);
    };
    const join = why('join');
    if (join !== null) return this.forbidden(id, roomId, 'join', join);
    if (history) {
      const h = why('history');
      if (h !== null) return this.forbidden(id, roomId, 'history', `${h}; join without last_seq`);
    }
    const publish: PublishGrant = rule.publish === 'proxy' ? PUBLISH_ASK : this.refusal(rule.publish, id, roomId, 'publish', sub) === null ? PUBLISH_ALLOW : PUBLISH_DENY;
    return { publish, presence: why('presence') === null };
  }

  /** Why a non-proxy policy refuses the action, or null when it allows it. */
  private refusal(p: Policy, id: Identity, roomId: string, action: RoomAction, sub: SubClaims | null): string | null {
    switch (p) {
      case 'public': return null;
      case 'deny': return 'the room policy is deny';
      case 'claims':
        if (claimAllows(id.claims[this.authz.roomsClaim], roomId, action)) return null;
        if (sub && (sub.actions === undefined || (Array.isArray(sub.actions) && sub.actions.includes(action)))) return null;
        return `the token's ${this.authz.roomsClaim} claim does not list it for ${action}`;
      case 'proxy': return 'the authorization proxy was not asked';
    }
  }

  private forbidden(id: Identity, roomId: string, action: RoomAction, reason: string): SandbarError {
    const what = action === 'join' ? 'join' : action === 'history' ? 'read the history of' : action === 'publish' ? 'publish into' : 'appear in the presence of';
    return Errors.FORBIDDEN(`${id.userId} may not ${what} room:${roomId}: ${reason}`);
  }
}

/** Whether a rooms claim (array of ids/globs, or {action: array}) lists roomId for action. */
export function claimAllows(claim: unknown, roomId: string, action: RoomAction): boolean {
  const list = Array.isArray(claim) ? claim : claim && typeof claim === 'object' ? (claim as Record<string, unknown>)[action] : undefined;
  if (!Array.isArray(list)) return false;
  // Bounded: a claim is part of a token of at most auth.maxTokenBytes.
  for (const g of list) if (typeof g === 'string' && g.length <= 64 && globMatches(g, roomId)) return true;
  return false;
}

/** Join params as the proxy gets them: the subscription token is not passed on. */
function stripToken(params: unknown): unknown {
  if (!params || typeof params !== 'object' || Array.isArray(params) || !('token' in params)) return params ?? {};
  const { token: _t, ...rest } = params as Record<string, unknown>;
  return rest;
}
