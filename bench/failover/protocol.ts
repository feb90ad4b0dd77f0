/**
 * IPC messages between bench/failover.ts and its forked client processes
 * (bench/failover/client.ts). Every request carries an `id` its answer echoes.
 */

export interface FailoverClientConfig {
  readonly childIndex: number;
  /** ws://127.0.0.1:<port>/socket/websocket?vsn=2.0.0 of every host, in host order. */
  readonly urls: readonly string[];
  readonly localAddress: string;
  readonly secret: string;
  readonly tokenModule: string;
  /** Pairs firstPair .. firstPair+pairs-1: users `${prefix}a<p>` (global index 2p) and `${prefix}b<p>` (2p+1); user i starts on host i mod hosts. */
  readonly firstPair: number;
  readonly pairs: number;
  readonly prefix: string;
  readonly connectConcurrency: number;
  /** A dm acknowledged later than this after its (re)send counts as stalled; a delivery later than delayedMs after its first send as delayed. */
  readonly stallMs: number;
  readonly delayedMs: number;
}

export interface FailoverCounts {
  readonly childIndex: number;
  readonly ready: number;
  /** Distinct dms sent, acknowledged; sends that got an error reply or no reply in time (retried with the same id). */
  readonly sent: number;
  readonly acked: number;
  readonly retries: number;
  readonly errors: Record<string, number>;
  readonly reconnects: number;
  readonly received: number;
  readonly cpuMicros: number;
}

export interface FailoverReport extends FailoverCounts {
  /** Users whose connection the kill closed / whose dm stalled or failed after the kill, and of those the ones that recovered. */
  readonly affectedDisconnected: number;
  readonly affectedStalled: number;
  readonly recovered: number;
  /** Kill → the affected user was served again (rejoined ok, and its pending dm acknowledged), µs. */
  readonly hRecovery: string;
  /** Send → delivered, before and after the kill, µs. */
  readonly hBefore: string;
  readonly hAfter: string;
  /** Acknowledged dms never delivered live, of those found by the inbox replay of a fresh join, and still missing (lost). */
  readonly missingLive: number;
  readonly foundByReplay: number;
  readonly lost: number;
  /** Missing live, and the recipient's replay join failed (server still degraded at the end): neither delivered nor known lost. */
  readonly unverified: number;
  /** Acknowledged dms delivered more than delayedMs after their first send (replayed ones included). */
  readonly delayed: number;
  /** Delivered twice with different seqs (a dm stored twice). */
  readonly duplicates: number;
  readonly unacked: number;
}

export type FailoverToChild =
  | { readonly t: 'setup'; readonly id: number; readonly config: FailoverClientConfig }
  /** window: every user keeps one dm in flight; paced: every user sends one dm each intervalMs (one in flight at most). */
  | { readonly t: 'go'; readonly id: number; readonly mode: 'window' | 'paced'; readonly intervalMs: number }
  | { readonly t: 'snap'; readonly id: number }
  /** The host was killed at `at` (CLOCK_MONOTONIC ms). */
  | { readonly t: 'killed'; readonly id: number; readonly at: number }
  /** Stop sending, wait up to drainMs for what is in flight, then check every acknowledged dm. */
  | { readonly t: 'finish'; readonly id: number; readonly drainMs: number }
  | { readonly t: 'close' };

export type FailoverToParent =
  | { readonly t: 'ready' }
  | { readonly t: 'counts'; readonly id: number; readonly counts: FailoverCounts }
  | { readonly t: 'report'; readonly id: number; readonly report: FailoverReport }
  | { readonly t: 'fatal'; readonly error: string };
