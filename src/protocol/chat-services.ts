/**
 * What the user and room channels need from their worker, created once per
 * worker and shared by every session (no per-session closures).
 */
import type { SessionActor } from '../actors/session.js';
import type { WorkerBus } from '../bus/worker-bus.js';
import type { SandbarConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';

/** Decides whether a user may join a room. Default: any authenticated user may join any room. */
export type RoomAuthorizer = (userId: string, roomId: string) => boolean;
export const allowAllRooms: RoomAuthorizer = () => true;

export interface ChatServices {
  readonly bus: WorkerBus;
  readonly config: SandbarConfig;
  readonly logger: Logger;
  readonly shardOf: (id: string) => number;
  readonly authorizeRoom: RoomAuthorizer;
  readonly rooms: LocalRooms;
}

/**
 * The sessions of this worker joined to each room. The worker subscribes a
 * room's subject once, while at least one local session is joined or joining,
 * and writes each broadcast (already a complete frame) to every local member.
 */
export class LocalRooms {
  private readonly byRoom = new Map<string, { members: Set<SessionActor>; joining: number }>();
  deliveries = 0;

  constructor(private readonly bus: WorkerBus) {}

  /** Subscribes before the join is sent, so no broadcast after the join can miss this worker. */
  async prepare(roomId: string): Promise<void> {
    let r = this.byRoom.get(roomId);
    if (!r) {
      r = { members: new Set(), joining: 0 };
      this.byRoom.set(roomId, r);
    }
    r.joining++;
    await this.bus.subscribeRoom(roomId, (frame) => this.fanout(roomId, frame));
  }

  /** The join finished (ok or not): the session is a member only if added. */
  settle(roomId: string, session: SessionActor | null): void {
    const r = this.byRoom.get(roomId);
    if (!r) return;
    r.joining--;
    if (session) r.members.add(session);
    this.gc(roomId);
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
  }

  get roomCount(): number { return this.byRoom.size; }
}
