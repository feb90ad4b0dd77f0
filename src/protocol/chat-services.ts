/**
 * What the user and room channels need from their worker, created once per
 * worker and shared by every session (no per-session closures).
 */
import type { SessionActor } from '../actors/session.js';
import type { WorkerBus } from '../bus/worker-bus.js';
import type { SandbarConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import type { Meta } from '../bus/messages.js';
import type { PresenceDiff, PresenceEntry } from './presence.js';
import type { RoomAuthorizer } from '../auth/room-authorizer.js';

export interface ChatServices {
  readonly bus: WorkerBus;
  readonly config: SandbarConfig;
  readonly logger: Logger;
  readonly shardOf: (id: string) => number;
  /** Who may join, read the history of, publish into and appear in a room (auth/room-authorizer.ts). */
  readonly authorizer: RoomAuthorizer;
  readonly rooms: LocalRooms;
}

interface LocalRoom {
  members: Set<SessionActor>;
  joining: number;
  /** This worker's copy of the room's presence: user → phx_ref → meta; null until the first join reply brings it. */
  presence: Map<string, Map<string, Meta>> | null;
  /** Frame prefixes of presence broadcasts, to spot them without parsing every message. */
  diffPrefix: Buffer;
  statePrefix: Buffer;
}

/**
 * The sessions of this worker joined to each room. The worker subscribes a
 * room's subject once, while at least one local session is joined or joining,
 * and writes each broadcast (already a complete frame) to every local member.
 *
 * It also keeps its own copy of the room's presence, kept current by the
 * presence_diff and presence_state broadcasts it relays anyway (as Phoenix
 * keeps a Presence replica on every node): a session joining a room this
 * worker already follows gets presence_state from the copy, and the room
 * actor's join reply stays small.
 */
export class LocalRooms {
  private readonly byRoom = new Map<string, LocalRoom>();
  deliveries = 0;

  constructor(private readonly bus: WorkerBus) {}

  /**
   * Subscribes before the join is sent, so no broadcast after the join can
   * miss this worker. Returns whether the join must ask for the whole state.
   */
  async prepare(roomId: string): Promise<boolean> {
    let r = this.byRoom.get(roomId);
    if (!r) {
      const topic = JSON.stringify(`room:${roomId}`);
      r = { members: new Set(), joining: 0, presence: null, diffPrefix: Buffer.from(`[null,null,${topic},"presence_diff",`), statePrefix: Buffer.from(`[null,null,${topic},"presence_state",`) };
      this.byRoom.set(roomId, r);
    }
    r.joining++;
    await this.bus.subscribeRoom(roomId, (frame) => this.fanout(roomId, frame));
    return r.presence === null;
  }

  /** The join finished (ok or not): the session is a member only if added. A state in the reply seeds the copy. */
  settle(roomId: string, session: SessionActor | null, state?: Record<string, PresenceEntry>): void {
    const r = this.byRoom.get(roomId);
    if (!r) return;
    r.joining--;
    if (state) r.presence = fromState(state);
    if (session) r.members.add(session);
    this.gc(roomId);
  }

  /**
   * presence_state for a joining session, from this worker's copy, with the
   * joiner's own meta in it (the copy hears of the join with the next diff).
   */
  presenceState(roomId: string, self: { uid: string; meta: Meta } | null): Record<string, PresenceEntry> {
    const out: Record<string, PresenceEntry> = {};
    const p = this.byRoom.get(roomId)?.presence;
    if (p) for (const [uid, metas] of p) if (metas.size > 0) out[uid] = { metas: [...metas.values()] };
    // A member who joined hidden (presence policy) is not in it, not even for itself.
    if (self === null) return out;
    const mine = (out[self.uid] ??= { metas: [] });
    if (!mine.metas.some((m) => m.phx_ref === self.meta.phx_ref)) mine.metas.push(self.meta);
    return out;
  }

  remove(roomId: string, session: SessionActor): void {
    const r = this.byRoom.get(roomId);
    if (!r) return;
    r.members.delete(session);
    this.gc(roomId);
  }

  private gc(roomId: string): void {
    const r = this.byRoom.get(roomId)!;
    if (r.members.size === 0 && r.joining === 0) {
      this.byRoom.delete(roomId);
      this.bus.unsubscribeRoom(roomId);
    }
  }

  private fanout(roomId: string, frame: Buffer): void {
    const r = this.byRoom.get(roomId);
    if (!r) return;
    for (const s of r.members) s.write(frame, true);
    this.deliveries += r.members.size;
    if (r.presence && frame.length > r.diffPrefix.length) {
      if (startsWith(frame, r.diffPrefix)) applyDiff(r.presence, (JSON.parse(frame.toString()) as [null, null, string, string, PresenceDiff])[4]);
      else if (startsWith(frame, r.statePrefix)) r.presence = fromState((JSON.parse(frame.toString()) as [null, null, string, string, Record<string, PresenceEntry>])[4]);
    }
  }

  get roomCount(): number { return this.byRoom.size; }
}

function startsWith(buf: Buffer, prefix: Buffer): boolean {
  return buf.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}

function fromState(state: Record<string, PresenceEntry>): Map<string, Map<string, Meta>> {
  const m = new Map<string, Map<string, Meta>>();
  for (const [uid, e] of Object.entries(state)) m.set(uid, new Map(e.metas.map((meta) => [meta.phx_ref, meta])));
  return m;
}

function applyDiff(p: Map<string, Map<string, Meta>>, d: PresenceDiff): void {
  for (const [uid, e] of Object.entries(d.joins)) {
    let metas = p.get(uid);
    if (!metas) p.set(uid, (metas = new Map()));
    for (const meta of e.metas) metas.set(meta.phx_ref, meta);
  }
  for (const [uid, e] of Object.entries(d.leaves)) {
    const metas = p.get(uid);
    if (!metas) continue;
    for (const meta of e.metas) metas.delete(meta.phx_ref);
    if (metas.size === 0) p.delete(uid);
  }
}
