/**
 * Token buckets, refilled lazily: a bucket holds up to `burst` tokens and
 * gains `perSecond` of them each second, but nothing runs between takes; the
 * refill is computed from the time elapsed when the next take arrives. So a
 * bucket costs two numbers and no timer, which is what lets every session
 * actor have one (no per-actor timers: docs/architecture.md, "Actors").
 */

/** The state of one bucket: tokens left and when they were counted (ms, monotonic). */
export interface Bucket {
  tokens: number;
  at: number;
}

/** A refill rate and capacity, precomputed once. */
export interface Rate {
  /** Tokens gained per ms. */
  readonly perMs: number;
  /** Most tokens a bucket holds (and starts with). */
  readonly burst: number;
}

export function rate(perSecond: number, burst: number): Rate {
  return { perMs: perSecond / 1000, burst: Math.max(1, burst) };
}

/** Refills b for the time since its last take, then takes one token: false when none was left. */
export function take(b: Bucket, now: number, r: Rate): boolean {
  const tokens = Math.min(r.burst, b.tokens + Math.max(0, now - b.at) * r.perMs);
  b.at = now;
  if (tokens >= 1) {
    b.tokens = tokens - 1;
    return true;
  }
  b.tokens = tokens;
  return false;
}

/** Milliseconds until b holds a whole token again (0 when it does). */
export function msUntilToken(b: Bucket, r: Rate): number {
  return b.tokens >= 1 ? 0 : Math.ceil((1 - b.tokens) / r.perMs);
}
