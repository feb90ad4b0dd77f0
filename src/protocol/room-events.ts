/**
 * What a client may push on a `room:` topic besides `msg`:
 *
 * - **ephemeral events** (`typing`, ...) allowed by room.clientEvents for the
 *   room's namespace (the id before its first "."): relayed at once to every
 *   member, this session included, as `<event> {from, body}`; never stored,
 *   no seq, no history, no event in the events stream. The worker publishes
 *   the frame on the room's subject itself (no actor, no replication): they
 *   may overtake or be lost with a failing NATS connection, as befits a
 *   "typing" hint. Rate-limited like every frame (session.ratePerSecond),
 *   at most message.maxBytes.
 * - **presence** `{...fields}`: the connection's presence meta gets these
 *   fields (at most room.maxMetaBytes) and every member gets a
 *   `presence_diff` with the old meta leaving and the new joining, as
 *   Phoenix's Presence.update; the new meta's `phx_ref` is
 *   `<session id>~<n>` and `phx_ref_prev` the one it replaces. Answered ok
 *   `{phx_ref}` once the room actor has it (replicated like a join).
 */
import { Errors } from '../errors.js';
import type { SessionActor } from '../actors/session.js';
import type { Meta } from '../bus/messages.js';
import type { ChatServices } from './chat-services.js';
import type { JoinedChannel } from './channel-registry.js';
import { encodePush } from './frame.js';
import { checkBody, PushReply } from './user-channel.js';

/** Meta fields the server owns: a client's presence push cannot set them. */
const RESERVED = new Set(['phx_ref', 'phx_ref_prev', 'online_at', 'device']);

export const PRESENCE_EVENT = 'presence';

/** Event names allowed per namespace, from room.clientEvents. */
export function clientEventTable(entries: readonly string[] | undefined): Map<string, Set<string>> {
  const table = new Map<string, Set<string>>();
  for (const e of entries ?? []) {
    const colon = e.indexOf(':');
    const ns = e.slice(0, colon);
    let set = table.get(ns);
    if (!set) table.set(ns, (set = new Set()));
    set.add(e.slice(colon + 1));
  }
  return table;
}

/** The namespace of a room id: the part before its first ".", or "" for none. */
export function namespaceOf(roomId: string): string {
  const dot = roomId.indexOf('.');
  return dot < 0 ? '' : roomId.slice(0, dot);
}

/** The reply to a presence push: the channel's meta becomes the new one once the room has it. */
class MetaReply extends PushReply {
  constructor(session: SessionActor, ch: JoinedChannel, ref: string | null, readonly meta: Meta) { super(session, ch, ref); }
  override run(s: SessionActor): void {
    if (this.ok && s.channel(this.ch.topic) === this.ch) this.ch.state = this.meta;
    super.run(s);
  }
}

export class RoomClientEvents {
  private readonly table: Map<string, Set<string>>;
  private readonly any: Set<string> | undefined;

  constructor(private readonly svc: ChatServices) {
    this.table = clientEventTable(svc.config.room.clientEvents);
    this.any = this.table.get('*');
  }

  allowed(roomId: string, event: string): boolean {
    return this.any?.has(event) === true || this.table.get(namespaceOf(roomId))?.has(event) === true;
  }

  /** Handles a push other than msg; false when the event is not one of ours (the caller refuses it). */
  handle(session: SessionActor, ch: JoinedChannel, event: string, payload: unknown, ref: string | null): boolean {
    if (event === PRESENCE_EVENT) {
      this.presence(session, ch, payload, ref);
      return true;
    }
    if (!this.allowed(ch.id, event)) return false;
    if (!ch.joined) throw Errors.BAD_PAYLOAD(`${ch.topic} is not joined yet`);
    const body = payload ?? {};
    checkBody(body, this.svc.config.message.maxBytes);
    this.svc.bus.publishRoom(ch.id, encodePush(null, ch.topic, event, { from: session.userId, body }));
    session.reply(ch, ref, 'ok', {});
    return true;
  }

  private presence(session: SessionActor, ch: JoinedChannel, payload: unknown, ref: string | null): void {
    if (!ch.joined) throw Errors.BAD_PAYLOAD(`${ch.topic} is not joined yet`);
    if (!payload || typeof payload !== 'object' || Array.isArray(payload)) throw Errors.BAD_PAYLOAD('presence payload must be an object of meta fields');
    const max = this.svc.config.room.maxMetaBytes;
    const size = Buffer.byteLength(JSON.stringify(payload));
    if (size > max) throw Errors.TOO_LARGE(`presence meta is ${size} bytes; at most ${max} (room.maxMetaBytes)`);
    const old = ch.state as Meta;
    const fields: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(payload)) if (!RESERVED.has(k)) fields[k] = v;
    const tilde = old.phx_ref.indexOf('~');
    const n = tilde < 0 ? 1 : Number(old.phx_ref.slice(tilde + 1)) + 1;
    const meta: Meta = {
      ...fields,
      phx_ref: `${session.id}~${n}`,
      phx_ref_prev: old.phx_ref,
      online_at: old.online_at,
      ...(old.device !== undefined ? { device: old.device } : {}),
    };
    this.svc.bus.request(this.svc.shardOf(ch.id), { op: 'r.meta', id: ch.id, sid: session.id, meta, cid: 0, rw: '' }, new MetaReply(session, ch, ref, meta));
  }
}
