/**
 * The user and room actors of the shards this worker masters: started on
 * first need, looked up by id, told of dead workers, stopped when idle.
 * Actors reach the outside only through this host (replies, deliveries to
 * sessions, room broadcasts), so they stay plain state machines.
 */
import { Actor, type ActorLink, type StopReason } from './actor.js';
import type { TimerWheel } from './timer-wheel.js';
import { UserActor } from './user.js';
import { RoomActor } from './room.js';
import type { Cmd, PurgeCmd, WorkerAddr } from '../bus/messages.js';
import type { WorkerBus } from '../bus/worker-bus.js';
import type { SandbarConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';

export class ShardHost implements ActorLink {
  readonly users = new Map<string, UserActor>();
  readonly rooms = new Map<string, RoomActor>();
  crashes = 0;

  constructor(
    readonly bus: WorkerBus,
    readonly config: SandbarConfig,
    readonly wheel: TimerWheel,
    /** Fine-grained wheel (tens of ms) for presence batching. */
    readonly fastWheel: TimerWheel,
    readonly logger: Logger,
  ) {}

  onCmd(cmd: Cmd): void {
    const isUser = cmd.op.charCodeAt(0) === 117; /* 'u' */
    // A leave never starts an actor: there is nothing to leave.
    const starts = cmd.op !== 'u.leave' && cmd.op !== 'r.leave';
    const actor = isUser ? this.user(cmd.id, starts) : this.room(cmd.id, starts);
    if (actor) (actor as Actor<Cmd | PurgeCmd>).send(cmd);
  }

  private user(id: string, start: boolean): UserActor | undefined {
    let a = this.users.get(id);
    if (!a && start) { a = new UserActor(this, id); this.users.set(id, a); }
    return a;
  }

  private room(id: string, start: boolean): RoomActor | undefined {
    let a = this.rooms.get(id);
    if (!a && start) { a = new RoomActor(this, id); this.rooms.set(id, a); }
    return a;
  }

  /** Sessions of a dead worker leave every user and room of this worker. */
  purge(w: WorkerAddr): void {
    const cmd: PurgeCmd = { op: 'purge', w };
    for (const a of this.users.values()) a.send(cmd);
    for (const a of this.rooms.values()) a.send(cmd);
  }

  /** Sends a frame to sessions, grouped by worker: one bus message per worker. */
  deliver(byWorker: Map<WorkerAddr, string[]>, frame: string): void {
    for (const [w, sids] of byWorker) this.bus.toWorker(w, { t: 'deliver', sids, frame });
  }

  onActorExit(actor: Actor<any>, reason: StopReason): void {
    if (actor instanceof UserActor && this.users.get(actor.id) === actor) this.users.delete(actor.id);
    if (actor instanceof RoomActor && this.rooms.get(actor.id) === actor) this.rooms.delete(actor.id);
    if (reason.kind === 'crash') {
      this.crashes++;
      this.logger.error({ err: reason.error, actor: actor instanceof UserActor ? `user:${actor.id}` : `room:${(actor as RoomActor).id}` }, 'actor crashed; its state is lost, every other actor goes on');
    }
  }
}
