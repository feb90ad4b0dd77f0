/**
 * IPC messages between bench/presence-churn.ts and its forked client
 * processes (bench/load/churn-client.ts). Every request carries an `id` its
 * answer echoes.
 */
import type { WireProto } from './workload-protocol.js';

export interface ChurnConfig {
  readonly childIndex: number;
  /** phoenix: ws://…/socket/websocket?vsn=2.0.0 (token appended); socketio: ws://…/socket.io/?EIO=4&transport=websocket. */
  readonly url: string;
  readonly proto: WireProto;
  readonly localAddress: string;
  readonly secret: string;
  readonly tokenModule: string;
  /** phoenix: the topic `room:<id>`; socketio: the room id. */
  readonly room: string;
  readonly prefix: string;
  /** Observers of this child: users `${prefix}o${firstObserver + k}`. */
  readonly firstObserver: number;
  readonly observers: number;
  /** Churn slots of this child; each cycles join, hold `holdMs`, close, wait `gapMs`. */
  readonly slots: number;
  readonly holdMs: number;
  readonly gapMs: number;
}

export interface ChurnCounts {
  readonly childIndex: number;
  /** Churn cycles started, and those whose join was acknowledged. */
  readonly ops: number;
  readonly opsJoined: number;
  /** Churn metas seen in presence changes by this child's observers (joins and leaves). */
  readonly diffsSeen: number;
  readonly errors: Record<string, number>;
  readonly cpuMicros: number;
}

export type ChurnToChild =
  | { readonly t: 'setup'; readonly id: number; readonly config: ChurnConfig }
  | { readonly t: 'go'; readonly id: number }
  | { readonly t: 'record'; readonly id: number; readonly on: boolean }
  | { readonly t: 'stop'; readonly id: number }
  | { readonly t: 'close' };

export type ChurnToParent =
  | { readonly t: 'ready' }
  | { readonly t: 'setup-done'; readonly id: number; readonly ready: number }
  | { readonly t: 'ok'; readonly id: number; readonly counts: ChurnCounts }
  | { readonly t: 'report'; readonly id: number; readonly counts: ChurnCounts; readonly hJoin: string; readonly hLeave: string }
  | { readonly t: 'fatal'; readonly error: string };
