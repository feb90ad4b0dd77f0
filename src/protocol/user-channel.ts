/**
 * `user:<id>`: the user's own channel. Only the token's user may join it.
 *
 * - join `{last_seq?, device?}` → ok `{seq}`, then `presence_state` (the
 *   user's devices) and every inbox message after last_seq as `dm` events
 *   (all unacknowledged ones when last_seq is absent).
 * - push `dm {to, id?, body}` → ok `{seq}` once the recipient's user actor
 *   has stored it; the recipient's connections get `dm {from, seq, id, body, at}`.
 * - push `ack {seq}` → removes delivered messages up to seq.
 */
import { Errors, SandbarError } from '../errors.js';
import type { SessionActor, SessionInfo } from '../actors/session.js';
import type { ReplyTarget } from '../bus/worker-bus.js';
import type { Meta, UserCmd } from '../bus/messages.js';
import type { ChannelHandler, JoinedChannel } from './channel-registry.js';
import type { ChatServices } from './chat-services.js';
import { isValidId } from './ids.js';
import { metaFor } from './presence.js';
import { storageOf } from '../storage/index.js';

export function lastSeqOf(params: unknown): number | null {
  const v = params && typeof params === 'object' ? (params as Record<string, unknown>).last_seq : undefined;
  if (v === undefined || v === null) return null;
  if (!Number.isSafeInteger(v) || (v as number) < 0) throw Errors.BAD_PAYLOAD('last_seq must be a non-negative integer');
  return v as number;
}

/**
 * Validates a message body against message.maxBytes; returns its encoded
 * length, which travels with the command so that no copy measures it again
 * (the storage budget counts it: docs/storage.md).
 */
export function checkBody(body: unknown, maxBytes: number): number {
  if (body === undefined) throw Errors.BAD_PAYLOAD('body is required');
  const size = Buffer.byteLength(JSON.stringify(body));
  if (size > maxBytes) throw Errors.TOO_LARGE(`body is ${size} bytes; at most ${maxBytes} (message.maxBytes)`);
  return size;
}

/** A client message id for dedup: the client's own, else one unique to this push. */
export function messageId(session: SessionActor, ref: string | null, id: unknown): string {
  if (id === undefined || id === null) return `${session.id}:${ref ?? ''}`;
  if (typeof id !== 'string' && typeof id !== 'number') throw Errors.BAD_PAYLOAD('id must be a string or a number');
  const s = String(id);
  if (s.length === 0 || s.length > 128) throw Errors.BAD_PAYLOAD('id must be 1-128 characters');
  return s;
}

function payloadObject(payload: unknown): Record<string, unknown> {
  if (!payload || typeof payload !== 'object' || Array.isArray(payload)) throw Errors.BAD_PAYLOAD('payload must be an object');
  return payload as Record<string, unknown>;
}

/**
 * Replies to one push when the actor answers. It is its own mailbox message
 * (SessionInfo): the reply to every dm and room msg posts this object, not a
 * fresh closure.
 */
export class PushReply implements ReplyTarget, SessionInfo {
  protected ok = false;
  private res: unknown = undefined;
  private err: SandbarError | null = null;
  constructor(readonly session: SessionActor, readonly ch: JoinedChannel, readonly ref: string | null) {}
  onReply(ok: boolean, res: unknown, err: SandbarError | null): void {
    this.ok = ok;
    this.res = res;
    this.err = err;
    this.session.post(this);
  }
  run(s: SessionActor): void {
    if (this.ok) s.reply(this.ch, this.ref, 'ok', this.res);
    else s.replyError(this.ch.joinRef, this.ref, this.ch.topic, this.err!);
  }
}

interface UserJoinResult { seq: number; presence: unknown; replay: unknown[] }

class UserJoinReply implements ReplyTarget {
  constructor(readonly svc: ChatServices, readonly session: SessionActor, readonly ch: JoinedChannel, readonly ref: string | null) {}
  onReply(ok: boolean, res: unknown, err: SandbarError | null): void {
    const { session, ch, ref, svc } = this;
    if (!session.alive) {
      // The session ended while the join was in flight: undo it.
      if (ok) svc.bus.cast(svc.shardOf(session.userId), { op: 'u.leave', id: session.userId, sid: session.id });
      return;
    }
    session.post({ run: (s) => {
      if (!ok) return s.joinError(ch, ref, err!);
      const r = res as UserJoinResult;
      s.joinOk(ch, ref, { seq: r.seq });
      if (!ch.joined) return;
      s.push(ch, 'presence_state', r.presence);
      for (const m of r.replay) s.push(ch, 'dm', m);
    } });
  }
}

export function userChannel(svc: ChatServices): ChannelHandler {
  const maxBytes = svc.config.message.maxBytes;
  const senders = storageOf(svc.bus).senders;
  return {
    join(session, ch, params, ref) {
      if (ch.id !== session.userId) throw Errors.FORBIDDEN(`only ${ch.id} may join ${ch.topic}`);
      const last = lastSeqOf(params);
      const meta: Meta = metaFor(session.id, params);
      ch.state = meta;
      const cmd: UserCmd = { op: 'u.join', id: session.userId, sid: session.id, w: svc.bus.addr, meta, last, cid: 0, rw: '' };
      svc.bus.request(svc.shardOf(session.userId), cmd, new UserJoinReply(svc, session, ch, ref));
    },
    handleIn(session, ch, event, payload, ref) {
      switch (event) {
        case 'dm': {
          const p = payloadObject(payload);
          if (!isValidId(p.to)) throw Errors.INVALID_ID('to must be a user id: 1-64 characters of A-Z a-z 0-9 _ - . @');
          const size = checkBody(p.body, maxBytes);
          const mid = messageId(session, ref, p.id);
          senders.dm(session.userId, p.to, size, Date.now());
          svc.bus.request(svc.shardOf(p.to), { op: 'u.dm', id: p.to, from: session.userId, mid, body: p.body, size, cid: 0, rw: '' }, new PushReply(session, ch, ref));
          return;
        }
        case 'ack': {
          const seq = payloadObject(payload).seq;
          if (!Number.isSafeInteger(seq) || (seq as number) < 0) throw Errors.BAD_PAYLOAD('seq must be a non-negative integer');
          svc.bus.request(svc.shardOf(session.userId), { op: 'u.ack', id: session.userId, seq: seq as number, cid: 0, rw: '' }, new PushReply(session, ch, ref));
          return;
        }
        default:
          throw Errors.UNKNOWN_EVENT(`unknown event ${event} on ${ch.topic} (expected dm or ack)`);
      }
    },
    leave(session) {
      svc.bus.cast(svc.shardOf(session.userId), { op: 'u.leave', id: session.userId, sid: session.id });
    },
  };
}
