/**
 * What travels between workers over NATS (JSON), and in-process when the
 * target lives in the same worker: commands to the master of a shard, and
 * messages to a worker (replies, deliveries to its sessions).
 *
 * `cid` is the correlation id of a request (0: no reply wanted) and `rw` the
 * address of the worker waiting for the reply: replies are published to that
 * worker's subject, not to a per-request inbox (no request() per message on
 * hot paths: docs/architecture.md, "Users, rooms and shards").
 */
import type { WireError } from '../errors.js';

/** `<hostId>.<worker>`: the address of a worker, as in its subject sandbar.<c>.w.<hostId>.<worker>. */
export type WorkerAddr = string;

/**
 * A connection's Phoenix Presence meta. A client's presence push may add its
 * own fields (room.maxMetaBytes); the updated meta then gets a new `phx_ref`
 * (`<session id>~<n>`) and names the one it replaces in `phx_ref_prev`, as
 * Phoenix's Presence.update does.
 */
export interface Meta { readonly phx_ref: string; readonly online_at: number; readonly device?: string; readonly phx_ref_prev?: string; readonly [field: string]: unknown }

interface Req { cid: number; rw: WorkerAddr }

/**
 * Stamped by the master while it applies a write, so that every copy applies
 * the same decision (docs/storage.md): `at`, the master's time; `refused`,
 * why the master refused it (its storage budget is its own, never a
 * replica's). `size` is the body's encoded length, measured once by the
 * sender's worker.
 */
interface Stamps { at?: number; refused?: 'full' | 'share' | 'shard' | 'log' }

export type UserCmd =
  | ({ op: 'u.join'; id: string; sid: string; w: WorkerAddr; meta: Meta; last: number | null } & Req)
  | { op: 'u.leave'; id: string; sid: string }
  /** `at` is stamped by the master before applying, so replicas apply the same value. */
  | ({ op: 'u.dm'; id: string; from: string; mid: string; body: unknown; size?: number } & Stamps & Req)
  | ({ op: 'u.ack'; id: string; seq: number } & Req)
  /** Drops the inbox messages older than user.inboxTtlMs at the master's `at` (sent by the user actor's timer; no reply). */
  | { op: 'u.expire'; id: string; at?: number };

export type RoomCmd =
  /** `state`: the joining worker has no presence copy of the room yet and needs the whole state in the reply. */
  | ({ op: 'r.join'; id: string; sid: string; w: WorkerAddr; uid: string; meta: Meta; last: number | null; state?: boolean; /** A member the presence policy keeps out of presence (docs/auth.md). */ hidden?: true; refused?: Stamps['refused'] } & Req)
  | { op: 'r.leave'; id: string; sid: string }
  | ({ op: 'r.msg'; id: string; from: string; mid: string; body: unknown; size?: number } & Stamps & Req)
  /** A member's new presence meta (a client's presence push): presence_diff with the old meta leaving and the new one joining. */
  | ({ op: 'r.meta'; id: string; sid: string; meta: Meta } & Req);

/** Sessions of a dead worker must leave every user and room (sent to each actor by its shard host). */
export interface PurgeCmd { op: 'purge'; w: WorkerAddr }

export type Cmd = UserCmd | RoomCmd;

/**
 * A page of a room's history or a user's inbox (server API history): read by
 * the serving master alone, never replicated, answered as a NATS request
 * like the operators' info queries. `maxBytes` bounds the answer (half the
 * NATS max_payload).
 */
export interface HistoryQuery { op: 'u.hist' | 'r.hist'; id: string; after: number; before: number | null; limit: number; maxBytes: number }

export type WorkerMsg =
  | { t: 'reply'; cid: number; ok: true; res: unknown }
  | { t: 'reply'; cid: number; ok: false; err: WireError }
  /** A frame (already encoded) for some sessions of this worker. */
  | { t: 'deliver'; sids: string[]; frame: string }
  /** Several of the above (and shard messages) for one worker, sent in one turn of the event loop, in order. */
  | { t: 'batch'; m: WorkerMsg[] };

/** Control messages every worker of the cluster hears. */
export type CtlMsg =
  /** A worker (re)started and masters its shards anew: re-announce your sessions joined there. */
  | { t: 'resync'; w: WorkerAddr };
