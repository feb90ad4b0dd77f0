/**
 * `room:<id>`: rooms with Phoenix Presence and history.
 *
 * - join `{last_seq?, device?}` → ok `{seq}`, then `presence_state`, then the
 *   history after last_seq as `msg` events (none when last_seq is absent;
 *   pass 0 for the whole kept history). Then `presence_diff` as members come
 *   and go (coalesced over 50 ms) and `msg {from, seq, id, body, at}`.
 * - push `msg {id?, body}` → ok `{seq}` once the room actor has sequenced and stored it.
 * Who may join is the `authorizeRoom` hook (default: any authenticated user).
 */
import { SandbarError } from '../errors.js';
import type { SessionActor } from '../actors/session.js';
import type { ReplyTarget } from '../bus/worker-bus.js';
import type { Meta, RoomCmd } from '../bus/messages.js';
import type { ChannelHandler, JoinedChannel } from './channel-registry.js';
import type { ChatServices } from './chat-services.js';
import { isValidId } from './ids.js';
import { metaFor, type PresenceEntry } from './presence.js';
import { checkBody, lastSeqOf, messageId, PushReply } from './user-channel.js';
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
      s.push(ch, 'presence_state', r.presence ?? svc.rooms.presenceState(ch.id, { uid: s.userId, meta: ch.state as Meta }));
      for (const m of r.history) s.push(ch, 'msg', m);
    } });
  }
}

export function roomChannel(svc: ChatServices): ChannelHandler {
  const maxBytes = svc.config.message.maxBytes;
  const senders = storageOf(svc.bus).senders;
  return {
    join(session, ch, params, ref) {
      if (!isValidId(ch.id)) throw new SandbarError('SANDBAR_ERR_INVALID_ID', 'room id must be 1-64 characters of A-Z a-z 0-9 _ - . @');
      if (!svc.authorizeRoom(session.userId, ch.id)) throw new SandbarError('SANDBAR_ERR_FORBIDDEN', `${session.userId} may not join ${ch.topic}`);
      const last = lastSeqOf(params);
      const meta: Meta = metaFor(session.id, params);
      ch.state = meta;
      const cmd: RoomCmd = { op: 'r.join', id: ch.id, sid: session.id, w: svc.bus.addr, uid: session.userId, meta, last, cid: 0, rw: '' };
      const target = new RoomJoinReply(svc, session, ch, ref);
      svc.rooms.prepare(ch.id).then(
        (needState) => { cmd.state = needState; svc.bus.request(svc.shardOf(ch.id), cmd, target); },
        (err: unknown) => target.onReply(false, undefined, new SandbarError('SANDBAR_ERR_UNAVAILABLE', 'could not subscribe to the room', { cause: err })),
      );
    },
    handleIn(session, ch, event, payload, ref) {
      if (event !== 'msg') throw new SandbarError('SANDBAR_ERR_UNKNOWN_EVENT', `unknown event ${event} on ${ch.topic} (expected msg)`);
      if (!payload || typeof payload !== 'object' || Array.isArray(payload)) throw new SandbarError('SANDBAR_ERR_BAD_PAYLOAD', 'payload must be an object');
      const p = payload as Record<string, unknown>;
      const size = checkBody(p.body, maxBytes);
      const mid = messageId(session, ref, p.id);
      senders.roomMsg(session.userId, ch.id, size, Date.now());
      svc.bus.request(svc.shardOf(ch.id), { op: 'r.msg', id: ch.id, from: session.userId, mid, body: p.body, size, cid: 0, rw: '' }, new PushReply(session, ch, ref));
    },
    leave(session, ch) {
      if (ch.joined) svc.rooms.remove(ch.id, session);
      svc.bus.cast(svc.shardOf(ch.id), { op: 'r.leave', id: ch.id, sid: session.id });
    },
  };
}
