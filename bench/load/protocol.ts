/**
 * IPC messages between the fleet parent (fleet.ts) and its forked client
 * processes (client.ts). Plain JSON over the child_process IPC channel.
 */

export type Mode = 'raw' | 'phoenix';

/** What one client process is asked to do. */
export interface ClientConfig {
  readonly childIndex: number;
  /** Full ws:// URL. In phoenix mode `token=<minted>` is appended per connection. */
  readonly url: string;
  /** Source address for this child's connections (127.0.0.(2+childIndex)). */
  readonly localAddress: string;
  readonly mode: Mode;
  /** Sessions this child opens. */
  readonly sessions: number;
  /** Global session index of this child's k-th session is firstIndex + k * stride. */
  readonly firstIndex: number;
  readonly stride: number;
  /** Connection attempts per second for this child; 0 = as fast as `concurrency` allows. */
  readonly rate: number;
  /** Most handshakes (upgrade + join) in flight at once in this child. */
  readonly concurrency: number;
  readonly connectTimeoutMs: number;
  /** Heartbeat period per connection (phoenix mode); 0 disables heartbeats. */
  readonly heartbeatMs: number;
  /** phoenix mode: token signing secret, token lifetime, user id prefix, distinct users (ids wrap modulo). */
  readonly secret: string;
  readonly tokenTtlS: number;
  readonly userPrefix: string;
  readonly users: number;
  /** phoenix: sessions join `<topicKind>:<userId>` (Sandbar's per-user channel is `user`). */
  readonly topicKind: string;
  /** Absolute path of the module exporting mintToken(secret, userId, ttlS). */
  readonly tokenModule: string;
  /** Offer permessage-deflate in the upgrade request. */
  readonly deflate: boolean;
}

export interface ClientCounts {
  readonly childIndex: number;
  readonly attempted: number;
  /** Sessions that reached the goal (raw: upgrade done; phoenix: join acknowledged ok). */
  readonly opened: number;
  /** Sessions open right now. */
  readonly open: number;
  readonly inFlight: number;
  /** Failures before a session was opened, by reason (error code, http status, timeout, join status). */
  readonly failed: Record<string, number>;
  readonly failedTotal: number;
  /** Sessions closed by the server after they were opened, by close code. */
  readonly closedByServer: Record<string, number>;
  readonly heartbeatsSent: number;
  readonly framesReceived: number;
  /** Epoch ms of the first attempt and of the moment every attempt had settled (0 = not yet). */
  readonly firstAttemptAt: number;
  readonly rampDoneAt: number;
  /** This client process's CPU time (user + system, µs) and RSS at the time of the report. */
  readonly cpuMicros: number;
  readonly rssBytes: number;
}

export interface ClientReport extends ClientCounts {
  /** Connect latency in µs (hdr-histogram-js encodeIntoCompressedBase64). */
  readonly histogram: string;
}

export type ParentToChild =
  | { readonly t: 'start'; readonly config: ClientConfig }
  | { readonly t: 'halt' }
  | { readonly t: 'report'; readonly id: number }
  | { readonly t: 'close'; readonly graceMs: number };

export type ChildToParent =
  | { readonly t: 'ready'; readonly childIndex: number }
  | { readonly t: 'progress'; readonly counts: ClientCounts }
  | { readonly t: 'ramp-done'; readonly counts: ClientCounts }
  | { readonly t: 'report'; readonly id: number; readonly report: ClientReport }
  | { readonly t: 'fatal'; readonly childIndex: number; readonly error: string }
  | { readonly t: 'closed'; readonly childIndex: number };
