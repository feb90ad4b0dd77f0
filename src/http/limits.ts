/**
 * Connection limits, checked before the WebSocket upgrade so that a refused
 * client costs an HTTP response and nothing else:
 *
 * - per client IP: a connection-rate token bucket (http.ipConnectRate,
 *   http.ipConnectBurst) and a cap on open sessions (http.ipMaxSessions),
 *   answered 429 (SANDBAR_ERR_TOO_MANY_CONNECTIONS);
 * - per worker: an admission-rate bucket (http.acceptRate, http.acceptBurst)
 *   that sheds a reconnect storm with 503 (SANDBAR_ERR_OVERLOADED).
 *
 * Every refusal carries `Retry-After` (seconds).
 *
 * node:cluster spreads connections over the workers, and each worker keeps its
 * own counts (sharing them would cost an IPC round trip per handshake). So
 * the per-IP settings are per host and each worker enforces its share:
 * rate / workers, ceil(burst / workers), ceil(maxSessions / workers). With the
 * default round-robin scheduling one address's connections alternate over
 * the workers, so the host-wide figure holds to within one connection per
 * worker; with scheduling "none" it is approximate. The accept rate is per
 * worker, as is the work it protects.
 */
import type { Socket } from 'node:net';
import { Errors, httpStatusOf, type ErrorCode, type SandbarError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { metrics, type UpgradeRefusal } from '../observability/metrics.js';
import { msUntilToken, rate, take, type Bucket, type Rate } from '../actors/rate-limit.js';

export interface ConnectionLimitSettings {
  readonly workers: number;
  readonly ipConnectRate: number;
  readonly ipConnectBurst: number;
  readonly ipMaxSessions: number;
  readonly acceptRate: number;
  readonly acceptBurst: number;
}

/** Why a connection is refused, as the HTTP answer gives it. */
export interface Refusal {
  /** The code's status in the error registry (429, 503). */
  readonly status: number;
  readonly code: ErrorCode;
  readonly message: string;
  readonly retryAfterS: number;
}

/**
 * Most client addresses whose connection-rate bucket a worker remembers. An
 * address evicted (least recently seen first) starts again with a full
 * bucket, so this bounds memory (about 100 bytes an entry) at the cost of
 * forgetting one of more than this many addresses opening connections at once.
 */
export const MAX_TRACKED_IPS = 100_000;
/** Retry-After for an address at its session cap: sessions end on their own schedule. */
const SESSIONS_RETRY_S = 5;
/** Longest Retry-After the accept-rate shedding gives. */
const MAX_RETRY_S = 60;

/** The address a tracked socket was counted under; the count drops when the socket closes. */
const IP = Symbol('sandbar.ip');
type TrackedSocket = Socket & { [IP]?: string };

export class ConnectionLimits {
  private readonly ipRate: Rate | null;
  private readonly ipBuckets = new Map<string, Bucket>();
  private readonly maxPerIp: number;
  private readonly ipSessions = new Map<string, number>();
  private readonly acceptRate: Rate | null;
  private readonly acceptBucket: Bucket;
  /** Connections shed in the current one-second window (sizes the Retry-After hint). */
  private shed = 0;
  private shedSince = 0;
  /** Refusals since the last log line (one line a second at most). */
  private refusedSinceLog: Partial<Record<ErrorCode, number>> = {};
  private lastLog = -Infinity;
  private readonly onClose: (this: TrackedSocket) => void;

  constructor(s: ConnectionLimitSettings, private readonly logger: Logger, private readonly now: () => number = () => performance.now()) {
    const w = Math.max(1, s.workers);
    this.ipRate = s.ipConnectRate > 0 ? rate(s.ipConnectRate / w, Math.ceil(s.ipConnectBurst / w)) : null;
    this.maxPerIp = s.ipMaxSessions > 0 ? Math.ceil(s.ipMaxSessions / w) : 0;
    this.acceptRate = s.acceptRate > 0 ? rate(s.acceptRate, s.acceptBurst) : null;
    this.acceptBucket = { tokens: this.acceptRate?.burst ?? 0, at: this.now() };
    const limits = this;
    // One listener for every socket: the address rides on the socket itself.
    this.onClose = function (this: TrackedSocket) { limits.release(this[IP]!); };
  }

  /** Open sessions (and upgrades in progress) counted for an address. */
  sessionsOf(ip: string): number { return this.ipSessions.get(ip) ?? 0; }

  /**
   * Checks a new connection. null admits it: it counts against its address
   * until the socket closes (an upgrade refused later, or the session's end).
   */
  admit(socket: Socket): Refusal | null {
    const ip = socket.remoteAddress ?? 'unknown';
    const now = this.now();
    const held = this.ipSessions.get(ip) ?? 0;
    if (this.maxPerIp > 0 && held >= this.maxPerIp) {
      return this.refuse('ip_sessions', ip, now, Errors.TOO_MANY_CONNECTIONS(`${ip} holds ${held} sessions on this worker, the most http.ipMaxSessions allows`), SESSIONS_RETRY_S);
    }
    const refused = this.rates(ip, now);
    if (refused) return refused;
    this.ipSessions.set(ip, held + 1);
    const ts = socket as TrackedSocket;
    ts[IP] = ip;
    ts.once('close', this.onClose);
    return null;
  }

  /**
   * The rate checks alone (per-IP connection rate, accept rate), for a
   * session that holds no socket of its own: a LongPoll handshake. null
   * admits it.
   */
  admitRate(ip: string): Refusal | null {
    return this.rates(ip, this.now());
  }

  private rates(ip: string, now: number): Refusal | null {
    if (this.ipRate !== null) {
      const b = this.ipBucket(ip, now);
      if (!take(b, now, this.ipRate)) {
        return this.refuse('ip_rate', ip, now, Errors.TOO_MANY_CONNECTIONS(`${ip} opens connections faster than http.ipConnectRate`), Math.ceil(msUntilToken(b, this.ipRate) / 1000));
      }
    }
    if (this.acceptRate !== null && !take(this.acceptBucket, now, this.acceptRate)) {
      if (now - this.shedSince >= 1000) {
        this.shedSince = now;
        this.shed = 0;
      }
      // Spread the refused clients over the seconds this worker needs to
      // admit them all, instead of sending them all back in one second.
      const retry = Math.ceil(++this.shed / (this.acceptRate.perMs * 1000));
      return this.refuse('accept_rate', ip, now, Errors.OVERLOADED('this worker admits new sessions at http.acceptRate; retry later'), Math.min(MAX_RETRY_S, retry));
    }
    return null;
  }

  private release(ip: string): void {
    const n = (this.ipSessions.get(ip) ?? 1) - 1;
    if (n <= 0) this.ipSessions.delete(ip);
    else this.ipSessions.set(ip, n);
  }

  /** The address's bucket, most recently used last; the least recently used one goes when the map is full. */
  private ipBucket(ip: string, now: number): Bucket {
    let b = this.ipBuckets.get(ip);
    if (b !== undefined) {
      this.ipBuckets.delete(ip);
    } else {
      if (this.ipBuckets.size >= MAX_TRACKED_IPS) {
        const oldest = this.ipBuckets.keys().next().value as string;
        this.ipBuckets.delete(oldest);
      }
      b = { tokens: this.ipRate!.burst, at: now };
    }
    this.ipBuckets.set(ip, b);
    return b;
  }

  private refuse(why: UpgradeRefusal, ip: string, now: number, err: SandbarError, retryAfterS: number): Refusal {
    metrics.upgradesRefused.inc(why);
    const { code, message } = err;
    this.refusedSinceLog[code] = (this.refusedSinceLog[code] ?? 0) + 1;
    if (now - this.lastLog >= 1000) {
      // One line a second at most, however hard the flood: counts since the last line and the latest address.
      // Shedding a reconnect storm (accept rate) is the limit doing its job: info. Clients refused for
      // their address may be many users behind one proxy, which a person may need to fix: warn.
      const byAddress = (this.refusedSinceLog.SANDBAR_ERR_TOO_MANY_CONNECTIONS ?? 0) > 0;
      this.logger[byAddress ? 'warn' : 'info']({ refused: this.refusedSinceLog, ip, code }, 'connections refused before the upgrade (connection limits)');
      this.refusedSinceLog = {};
      this.lastLog = now;
    }
    return { status: httpStatusOf(code), code, message, retryAfterS: Math.max(1, retryAfterS) };
  }
}
