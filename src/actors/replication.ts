/**
 * The replication stream of one shard, as the master sends it and replicas
 * apply it (docs/architecture.md, "Replication"): ordered entries (epoch, seq, command), a
 * snapshot for a new or lagging replica, acks back to the master.
 *
 * The user and room actors are deterministic given their commands (the master
 * stamps the time into each command before applying it), so a replica applies
 * the same commands to passive copies of the actors: state-machine
 * replication, with no second code path for state changes.
 */
import type { Cmd, WorkerAddr } from '../bus/messages.js';
import type { UserSnapshot } from './user.js';
import type { RoomSnapshot } from './room.js';

export interface ShardSnapshot { users: UserSnapshot[]; rooms: RoomSnapshot[] }

/** Master → replica, on sandbar.<c>.shard.<n>.repl.<replicaHost>. */
export type ReplMsg =
  /** An entry: apply `c` if e is the current epoch and s follows the last applied seq. `rel`: the master has released the outputs of entries up to rel. */
  | { t: 'e'; n: number; e: number; s: number; m: WorkerAddr; c: Cmd; rel: number }
  /** The whole shard at seq s: replaces whatever the replica had. */
  | { t: 'snap'; n: number; e: number; s: number; m: WorkerAddr; snap: ShardSnapshot };

/** Between the workers of a shard, on sandbar.<c>.w.<host>.<worker>. */
export type ShardMsg =
  /** Replica → master: applied up to s. */
  | { t: 'rack'; n: number; s: number; from: WorkerAddr }
  /** Replica → master: send me a snapshot. */
  | { t: 'sync?'; n: number; from: WorkerAddr }
  /** Old master → new master (planned handoff): the shard's state at s, epoch e. */
  | { t: 'handoff'; n: number; e: number; s: number; from: WorkerAddr; snap: ShardSnapshot }
  /** New master → old master: the handoff is installed and claimed; release what you held. */
  | { t: 'handoff-ok'; n: number; from: WorkerAddr }
  /** The new master serves the shard already (promoted from its replica copy): the old one gives up what it held. */
  | { t: 'handoff-no'; n: number; from: WorkerAddr }
  /** Not the shard's master here (the view moved on): the old master offers its state to the master its own view names. */
  | { t: 'handoff-elsewhere'; n: number; from: WorkerAddr };
