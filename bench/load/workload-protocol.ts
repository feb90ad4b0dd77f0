/**
 * IPC messages between the workload parent (workload.ts) and its forked
 * workload client processes (workload-client.ts), for the message benches
 * (bench/dm.ts, bench/room-fanout.ts). Plain JSON over the child_process IPC
 * channel; every request that wants an answer carries an `id` the answer echoes.
 *
 * Wire protocols a client process speaks (one per run):
 *   phoenix   Phoenix Channels V2 text frames (Sandbar; also the bare ws peer
 *             started with --broadcast, which answers the same frames).
 *   socketio  Socket.IO 4 over a plain WebSocket (engine.io v4 "websocket"
 *             transport, no polling), framed by hand so that the client side
 *             costs the same as the phoenix one.
 */

export type WireProto = 'phoenix' | 'socketio';

export interface WorkloadInit {
  readonly childIndex: number;
  /** phoenix: ws://…/socket/websocket?vsn=2.0.0 (token appended per connection); socketio: ws://…/socket.io/?EIO=4&transport=websocket. */
  readonly url: string;
  /** Source address of this child's connections: 127.0.0.(2+childIndex). */
  readonly localAddress: string;
  readonly proto: WireProto;
  /** Token signing secret (Sandbar's auth.secret; the Socket.IO peer checks the same token when started with --secret). */
  readonly secret: string;
  readonly tokenTtlS: number;
  /** Absolute path of the module exporting mintToken(secret, userId, ttlS). */
  readonly tokenModule: string;
  /** Most handshakes (upgrade + joins) in flight at once in this child. */
  readonly connectConcurrency: number;
  /** A connection not ready (joined) after this long counts as failed. */
  readonly connectTimeoutMs: number;
}

export type Placement = 'cross' | 'random';

export interface DmSetup {
  /** Pair p has users `${prefix}a${p}` and `${prefix}b${p}`; this child holds pairs firstPair .. firstPair+pairs-1. */
  readonly firstPair: number;
  readonly pairs: number;
  readonly prefix: string;
  /** cross: reconnect b (at most maxRetries times) until it lands on another worker than a; random: keep where the server put it. */
  readonly placement: Placement;
  readonly maxRetries: number;
}

export interface DmGo {
  /** window: each client keeps `window` dms outstanding (closed loop); paced: each client sends ratePerClient/s on schedule (open loop). */
  readonly mode: 'window' | 'paced';
  readonly window: number;
  readonly ratePerClient: number;
  /** JSON of the dm body (same for every message). */
  readonly bodyJson: string;
  /** A dm not both acknowledged and delivered after this long is given up ("timeout-ok" / "timeout-delivery"). */
  readonly timeoutMs: number;
  /** paced: most messages one client may have outstanding; past it, scheduled sends are skipped and counted. */
  readonly maxOutstanding: number;
}

export interface RoomSetup {
  readonly room: string;
  /** Members of this child: users `${prefix}m${first + k}` for k < members. */
  readonly first: number;
  readonly members: number;
  readonly prefix: string;
  /** This child also holds the sender (user `${prefix}sender`, a member not counted in `members`). */
  readonly sender: boolean;
}

export interface RoomSend {
  readonly count: number;
  readonly intervalMs: number;
  /** Padding string put into every body (message size). */
  readonly pad: string;
}

export type WorkloadToChild =
  | { readonly t: 'init'; readonly init: WorkloadInit }
  | { readonly t: 'dm-setup'; readonly id: number; readonly setup: DmSetup }
  | { readonly t: 'room-setup'; readonly id: number; readonly setup: RoomSetup }
  | { readonly t: 'dm-go'; readonly id: number; readonly go: DmGo }
  | { readonly t: 'mark'; readonly id: number; readonly on: boolean }
  | { readonly t: 'snap'; readonly id: number }
  | { readonly t: 'dm-stop'; readonly id: number; readonly drainMs: number }
  | { readonly t: 'room-send'; readonly id: number; readonly send: RoomSend }
  | { readonly t: 'room-report'; readonly id: number }
  | { readonly t: 'close'; readonly graceMs: number };

export interface SetupResult {
  readonly childIndex: number;
  /** Connections that reached "ready" (joined), of those asked for. */
  readonly ready: number;
  readonly wanted: number;
  readonly failed: Record<string, number>;
  /** Ready connections per server process (as the server told: the session id of Sandbar's echo join reply without its counter, the peers' own answer). */
  readonly perWorker: Record<string, number>;
  /** dm: pairs whose two clients are on different workers / the same worker / unknown. */
  readonly pairsCross: number;
  readonly pairsSame: number;
  readonly reconnects: number;
  /** Connections that were ready and then closed by the server during the set-up, by close code. */
  readonly closedByServer: Record<string, number>;
  /** Connect + join latency (µs), hdr-histogram-js compressed base64. */
  readonly histogram: string;
  readonly ms: number;
}

export interface DmCounts {
  readonly childIndex: number;
  readonly sent: number;
  readonly oks: number;
  readonly delivered: number;
  readonly errors: Record<string, number>;
  /** paced: scheduled sends skipped because the client had maxOutstanding in flight. */
  readonly skipped: number;
  readonly outstanding: number;
  readonly cpuMicros: number;
  readonly closedByServer: Record<string, number>;
}

export interface DmReport extends DmCounts {
  /** Messages sent while recording was on, and of those the ones fully completed. */
  readonly recordedSent: number;
  readonly recordedDone: number;
  /** send → recipient got the dm event; send → sender got ok; paced only: how late each send was against its schedule (µs). */
  readonly hDelivery: string;
  readonly hOk: string;
  readonly hLag: string;
}

export interface RoomReport {
  readonly childIndex: number;
  /** Per message index k: members of this child that received it, and the first and last receive time (monotonic ms, comparable across processes). */
  readonly received: number[];
  readonly first: number[];
  readonly last: number[];
  /** Sender only: monotonic ms at which message k was written, and its ok time. */
  readonly sentAt: number[];
  readonly okAt: number[];
  /** Per server process (the connection's worker key): first and last receive time of message k among this child's members there. */
  readonly firstByWorker: Record<string, number[]>;
  readonly lastByWorker: Record<string, number[]>;
  /** Every delivery's latency (send → member received, µs). */
  readonly hDelivery: string;
  readonly errors: Record<string, number>;
  readonly closedByServer: Record<string, number>;
  readonly cpuMicros: number;
}

export type WorkloadToParent =
  | { readonly t: 'ready'; readonly childIndex: number }
  | { readonly t: 'setup-done'; readonly id: number; readonly result: SetupResult }
  | { readonly t: 'ok'; readonly id: number }
  | { readonly t: 'snap'; readonly id: number; readonly counts: DmCounts }
  | { readonly t: 'dm-report'; readonly id: number; readonly report: DmReport }
  | { readonly t: 'room-report'; readonly id: number; readonly report: RoomReport }
  | { readonly t: 'fatal'; readonly childIndex: number; readonly error: string }
  | { readonly t: 'closed'; readonly childIndex: number };
