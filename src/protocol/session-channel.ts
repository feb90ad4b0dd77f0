/**
 * `sandbar:session`: the session's own channel (docs/auth.md). Joining it is
 * optional; a client that joins gets its token's expiry pushes here
 * (`token_expiring {exp, in_ms}`) and refreshes with
 * `push("refresh", {token})` → ok `{exp}`, using only the phoenix client's
 * public channel API. A client that does not join gets `token_expiring` on
 * the `phoenix` topic and may push `refresh` there.
 *
 * - join `{}` → ok `{user, exp}`
 * - push `refresh {token}` → ok `{exp}`, or an error (SANDBAR_ERR_AUTH_*:
 *   the token is refused or names another user); the old exp then stands.
 */
import { Errors } from '../errors.js';
import type { ChannelHandler } from './channel-registry.js';

export function sessionChannel(): ChannelHandler {
  return {
    join(session, ch, _params, ref) {
      if (ch.id !== 'session') throw Errors.UNMATCHED_TOPIC('unmatched topic (the session channel is sandbar:session)');
      session.joinOk(ch, ref, { user: session.userId, exp: session.identity.exp });
    },
    handleIn(session, ch, event, payload, ref) {
      if (event !== 'refresh') throw Errors.UNKNOWN_EVENT(`unknown event ${event} on ${ch.topic} (expected refresh)`);
      session.refresh(payload, ch.joinRef, ref, ch.topic);
    },
    leave() {},
  };
}
