/**
 * Events out, version 1: what Sandbar tells application backends through the
 * JetStream stream `sandbar_<cluster>_events` (and webhooks). Every event is
 * one JSON object:
 *
 *   {"v": 1, "id": "<unique id>", "type": "<type>", "at": <ms since the epoch>, "data": {...}}
 *
 * `id` is derived from what the event is about (room and seq, user and seq,
 * session id, ...), never random, so the same fact published twice (a
 * promoted master re-sends what its dead predecessor may not have) has the
 * same id: the stream drops the copy (`Nats-Msg-Id`, within its 2-minute
 * duplicate window) and a consumer can drop any copy left. docs/api.md is the
 * reference for the fields; a field is never removed or changes meaning
 * within v 1, new ones may be added.
 */
import type { EventType } from '../config/integration-rules.js';
import type { Meta } from '../bus/messages.js';

export const EVENT_VERSION = 1;

/** A message as the room and user actors store it. */
interface Stored { readonly seq: number; readonly from: string; readonly id: string; readonly body: unknown; readonly at: number }

export interface SandbarEvent<T extends EventType = EventType, D = unknown> {
  readonly v: 1;
  readonly id: string;
  readonly type: T;
  readonly at: number;
  readonly data: D;
}

/** The sender of messages published by the API without a user (`from` in msg and dm pushes too). */
export const SYSTEM_SENDER = '$system';

function ev<T extends EventType, D>(type: T, id: string, at: number, data: D): SandbarEvent<T, D> {
  return { v: EVENT_VERSION, id, type, at, data };
}

/** A room message was stored (and replicated) with this seq. */
export function roomMessage(room: string, m: Stored) {
  return ev('room.message', `room.message:${room}:${m.seq}`, m.at, { room, seq: m.seq, from: m.from, id: m.id, body: m.body, at: m.at });
}

/** A dm was stored in the recipient's inbox with this seq. */
export function dmStored(to: string, m: Stored) {
  return ev('dm.stored', `dm.stored:${to}:${m.seq}`, m.at, { to, seq: m.seq, from: m.from, id: m.id, body: m.body, at: m.at });
}

/**
 * The recipient's inbox messages first..last were pushed to `sessions` of its
 * connections: at once when stored (first = last), or replayed to a device
 * that joined (`session` names it).
 */
export function dmDelivered(user: string, first: number, last: number, sessions: number, at: number, session?: string) {
  const id = session === undefined ? `dm.delivered:${user}:${first}:${last}` : `dm.delivered:${user}:${first}:${last}:${session}`;
  return ev('dm.delivered', id, at, session === undefined ? { user, first, last, sessions } : { user, first, last, sessions, session });
}

/** The user acknowledged its inbox up to seq; `pending` messages remain. */
export function dmAcked(user: string, seq: number, pending: number, at: number) {
  return ev('dm.acked', `dm.acked:${user}:${seq}`, at, { user, seq, pending });
}

/**
 * A connection joined or left a room's presence. `online_at` tells one join
 * of a session apart from its next (a rejoin), and a re-announced join (after
 * a worker restart) from a new one.
 */
export function presence(kind: 'presence.join' | 'presence.leave', room: string, user: string, meta: Meta, at: number) {
  return ev(kind, `${kind}:${room}:${meta.phx_ref}:${meta.online_at}`, at, { room, user, session: sessionOf(meta.phx_ref), meta });
}

/** A session opened (authenticated WebSocket or LongPoll) or closed. */
export function sessionEvent(kind: 'session.connected' | 'session.disconnected', user: string, session: string, at: number, extra?: { code?: number; reason?: string; transport?: string }) {
  return ev(kind, `${kind}:${session}`, at, { user, session, ...extra });
}

/** The API disconnected every session of a user; `request` is the caller's id of that request. */
export function userDisconnected(user: string, request: string, code: number, reason: string, at: number) {
  return ev('user.disconnected', `user.disconnected:${user}:${request}`, at, { user, code, reason, request });
}

/** The session id a phx_ref belongs to (an updated meta's ref is `<session>~<n>`). */
export function sessionOf(phxRef: string): string {
  const t = phxRef.indexOf('~');
  return t < 0 ? phxRef : phxRef.slice(0, t);
}

/** Where events go: the worker's publisher (events.enabled) or nothing. */
export interface EventSink {
  /** Whether events of this type are published (events.types): callers skip building the others. */
  wants(type: EventType): boolean;
  /** Publishes asynchronously; never throws, never waits. `key`: the room or user id (partition). */
  publish(event: SandbarEvent, key: string): void;
}

/** What an actor's host offers for events (ShardHost). */
export interface EventHost {
  readonly events: EventSink | null;
  /** A replica applying a command: its outputs go nowhere. */
  readonly silent: boolean;
  event(event: SandbarEvent, key: string): void;
}

/** Whether an actor should build an event of this type now (events on, this type wanted, not a replica). */
export function emitting(host: EventHost, type: EventType): boolean {
  return host.events !== null && !host.silent && host.events.wants(type);
}
