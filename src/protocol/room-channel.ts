/**
 * `room:<id>`: rooms with Phoenix Presence and history.
 *
 * - join `{last_seq?, device?}` → ok `{seq}`, then `presence_state`, then the
 *   history after last_seq as `msg` events (none when last_seq is absent;
 *   pass 0 for the whole kept history). Then `presence_diff` as members come
 *   and go (coalesced over 50 ms) and `msg {from, seq, id, body, at}`.
 * - push `msg {id?, body}` → ok `{seq}` once the room actor has sequenced and stored it.
 * Who may join, read the history, publish and appear in presence is
 * decided by the room authorizer (auth/room-authorizer.ts, docs/auth.md):
 * before the join is sent, and at each msg when the publish policy is proxy.
 */
import { Errors, SandbarError } from '../errors.js';
import type { SessionActor, SessionInfo } from '../actors/session.js';
import type { ReplyTarget } from '../bus/worker-bus.js';
import type { Meta, RoomCmd } from '../bus/messages.js';
import type { ChannelHandler, JoinedChannel } from './channel-registry.js';
import type { ChatServices } from './chat-services.js';
import { isValidId } from './ids.js';
import { metaFor, type PresenceEntry } from './presence.js';
import { checkBody, lastSeqOf, messageId, PushReply } from './user-channel.js';
import { PRESENCE_EVENT, RoomClientEvents } from './room-events.js';
import { HIDDEN, PUBLISH_ALLOW, PUBLISH_DENY, PUBLISH_MASK, type JoinGrant } from '../auth/room-authorizer.js';
import { storageOf } from '../storage/index.js';

interface RoomJoinResult { seq: number; presence?: Record<string, PresenceEntry>; history: unknown[] }

class RoomJoinReply implements ReplyTarget {
  constructor(readonly svc: ChatServices, readonly session: SessionActor, readonly ch: JoinedChannel, readonly ref: string | null) {}
  onReply(ok: boolean, res: unknown, err: SandbarError | null): void {
    const { session, ch, ref, svc } = this;
    if (!session.alive) {
      svc.rooms.settle(ch.id, null);
      if (ok) svc.bus.cast(svc.shardOf(ch.id), { op: 'r.leave', id: ch.id, sid: session.id });
      return;
    }
    session.post({ run: (s) => {
      if (!ok) {
        svc.rooms.settle(ch.id, null);
        return s.joinError(ch, ref, err!);
      }
      const r = res as RoomJoinResult;
      s.joinOk(ch, ref, { seq: r.seq });
      if (!ch.joined) {
        svc.rooms.settle(ch.id, null);
        return;
      }
      svc.rooms.settle(ch.id, s, r.presence);
      s.push(ch, 'presence_state', r.presence ?? svc.rooms.presenceState(ch.id, (ch.grant & HIDDEN) !== 0 ? null : { uid: s.userId, meta: ch.state as Meta }));
      for (const m of r.history) s.push(ch, 'msg', m);
    } });
  }
}

/** Sends the join to the room actor, once authorized. */
function sendJoin(svc: ChatServices, session: SessionActor, ch: JoinedChannel, params: unknown, ref: string | null, last: number | null, grant: JoinGrant): void {
  ch.grant = grant.publish | (grant.presence ? 0 : HIDDEN);
  const meta: Meta = metaFor(session.id, params);
  ch.state = meta;
  const cmd: RoomCmd = { op: 'r.join', id: ch.id, sid: session.id, w: svc.bus.addr, uid: session.userId, meta, last, cid: 0, rw: '' };
  if (!grant.presence) cmd.hidden = true;
  const target = new RoomJoinReply(svc, session, ch, ref);
  svc.rooms.prepare(ch.id).then(
    (needState) => { cmd.state = needState; svc.bus.request(svc.shardOf(ch.id), cmd, target); },
    (err: unknown) => target.onReply(false, undefined, Errors.UNAVAILABLE('could not subscribe to the room', { cause: err })),
  );
}

/** An authorization that needed the proxy or a subscription token, back in the session's mailbox. */
class JoinAuthorized implements SessionInfo {
  constructor(readonly svc: ChatServices, readonly ch: JoinedChannel, readonly params: unknown, readonly ref: string | null, readonly last: number | null, readonly grant: JoinGrant | SandbarError) {}
  run(s: SessionActor): void {
    // Left or replaced while the authorizer was asked: nothing to do.
    if (s.channel(this.ch.topic) !== this.ch) return;
    if (this.grant instanceof SandbarError) return s.joinError(this.ch, this.ref, this.grant);
    sendJoin(this.svc, s, this.ch, this.params, this.ref, this.last, this.grant);
  }
}

/** A msg whose publish permission the proxy had to be asked for. */
class PublishAuthorized implements SessionInfo {
  constructor(readonly svc: ChatServices, readonly ch: JoinedChannel, readonly ref: string | null, readonly mid: string, readonly body: unknown, readonly size: number, readonly ok: true | SandbarError) {}
  run(s: SessionActor): void {
    if (s.channel(this.ch.topic) !== this.ch) return;
    if (this.ok !== true) return s.replyError(this.ch.joinRef, this.ref, this.ch.topic, this.ok);
    try {
      sendMsg(this.svc, s, this.ch, this.ref, this.mid, this.body, this.size);
    } catch (err) {
      // A sender quota refusal (storage/sender-budget.ts), outside handleIn's guard here.
      if (!(err instanceof SandbarError)) throw err;
      s.replyError(this.ch.joinRef, this.ref, this.ch.topic, err);
    }
  }
}

/** An authorized msg: the sender's quota (storage/sender-budget.ts, throws SANDBAR_ERR_SEND_QUOTA), then the room actor. */
function sendMsg(svc: ChatServices, session: SessionActor, ch: JoinedChannel, ref: string | null, mid: string, body: unknown, size: number): void {
  storageOf(svc.bus).senders.roomMsg(session.userId, ch.id, size, Date.now());
  svc.bus.request(svc.shardOf(ch.id), { op: 'r.msg', id: ch.id, from: session.userId, mid, body, size, cid: 0, rw: '' }, new PushReply(session, ch, ref));
}

export function roomChannel(svc: ChatServices): ChannelHandler {
  const maxBytes = svc.config.message.maxBytes;
  const clientEvents = new RoomClientEvents(svc);
  return {
    join(session, ch, params, ref) {
      if (!isValidId(ch.id)) throw Errors.INVALID_ID('room id must be 1-64 characters of A-Z a-z 0-9 _ - . @');
      const last = lastSeqOf(params);
      const grant = svc.authorizer.join(session.identity, ch.id, params, last !== null);
      if (grant instanceof SandbarError) throw grant;
      if (grant instanceof Promise) {
        grant.then((g) => session.post(new JoinAuthorized(svc, ch, params, ref, last, g)));
        return;
      }
      sendJoin(svc, session, ch, params, ref, last, grant);
    },
    handleIn(session, ch, event, payload, ref) {
      if (event !== 'msg') {
        // Ephemeral client events are publishing too: they need the room's
        // publish policy to allow them outright (a proxy-decided publish is
        // asked per msg, which an ephemeral hint does not wait for).
        if (event !== PRESENCE_EVENT && (ch.grant & PUBLISH_MASK) !== PUBLISH_ALLOW) throw Errors.FORBIDDEN(`${session.userId} may not send events into ${ch.topic}: the room's publish policy does not allow it outright`);
        // Client events and presence updates: room-events.ts.
        if (clientEvents.handle(session, ch, event, payload, ref)) return;
        throw Errors.UNKNOWN_EVENT(`unknown event ${event} on ${ch.topic} (expected msg, presence, or an event of room.clientEvents)`);
      }
      if (!payload || typeof payload !== 'object' || Array.isArray(payload)) throw Errors.BAD_PAYLOAD('payload must be an object');
      const p = payload as Record<string, unknown>;
      const size = checkBody(p.body, maxBytes);
      const mid = messageId(session, ref, p.id);
      const publish = ch.grant & PUBLISH_MASK;
      if (publish === PUBLISH_ALLOW) return sendMsg(svc, session, ch, ref, mid, p.body, size);
      if (publish === PUBLISH_DENY) throw Errors.FORBIDDEN(`${session.userId} may not publish into ${ch.topic}: the room policy does not allow it`);
      const ok = svc.authorizer.publish(session.identity, ch.id);
      if (ok instanceof Promise) ok.then((r) => session.post(new PublishAuthorized(svc, ch, ref, mid, p.body, size, r)));
      else new PublishAuthorized(svc, ch, ref, mid, p.body, size, ok).run(session);
    },
    leave(session, ch) {
      if (ch.joined) svc.rooms.remove(ch.id, session);
      svc.bus.cast(svc.shardOf(ch.id), { op: 'r.leave', id: ch.id, sid: session.id });
    },
  };
}
