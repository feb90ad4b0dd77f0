/**
 * The "proxy" room policy: Sandbar asks the application.
 *
 * `POST authz.proxyUrl` with `{"user", "room", "action", "params"}` (JSON;
 * `Authorization: Bearer <authz.proxyToken>` when set); the application
 * answers 200 `{"allow": true}` or `{"allow": false, "reason": "..."}`.
 * An answer is reused for the same user, room and action for
 * `authz.proxyCacheMs` (at most `authz.proxyCacheMax` answers, oldest dropped
 * first), and concurrent asks for the same key share one request.
 *
 * A proxy that does not answer within `authz.proxyTimeoutMs`, answers another
 * status, or answers something that is not `{"allow": boolean}` is a
 * failure: the action is refused (fail-closed, the default) or allowed
 * (`authz.proxyFailOpen = true`), the failure is counted, and a warning is
 * logged at most once per {@link FAILURE_LOG_MS}. Failures are not cached.
 */
import type { Logger } from '../observability/logger.js';

/** What the proxy (or its failure) decided. */
export interface ProxyAnswer { readonly allow: boolean; readonly reason: string }

export interface ProxyOptions {
  readonly url: string;
  readonly timeoutMs: number;
  readonly cacheMs: number;
  readonly cacheMax: number;
  readonly failOpen: boolean;
  readonly token?: string;
}

/** Least time between two warnings about a failing proxy. */
export const FAILURE_LOG_MS = 10_000;
/** Largest answer read from the proxy. */
const MAX_ANSWER_BYTES = 64 * 1024;

export class AuthzProxy {
  private readonly cache = new Map<string, { answer: ProxyAnswer; until: number }>();
  private readonly inFlight = new Map<string, Promise<ProxyAnswer>>();
  private readonly headers: Record<string, string>;
  private lastFailureLog = -Infinity;
  private failuresSinceLog = 0;
  readonly counters = { requests: 0, allowed: 0, denied: 0, failures: 0, cacheHits: 0 };

  constructor(private readonly opts: ProxyOptions, private readonly logger: Logger) {
    this.headers = { 'content-type': 'application/json', accept: 'application/json', ...(opts.token !== undefined ? { authorization: `Bearer ${opts.token}` } : {}) };
  }

  /** A cached answer, or undefined when the proxy must be asked. */
  cached(user: string, room: string, action: string): ProxyAnswer | undefined {
    if (this.opts.cacheMs === 0) return undefined;
    const key = `${action}\n${room}\n${user}`;
    const hit = this.cache.get(key);
    if (!hit) return undefined;
    if (performance.now() >= hit.until) {
      this.cache.delete(key);
      return undefined;
    }
    this.counters.cacheHits++;
    return hit.answer;
  }

  /** The proxy's answer (from the cache, a request under way, or a new request). Never rejects. */
  ask(user: string, room: string, action: string, params: unknown): Promise<ProxyAnswer> {
    const hit = this.cached(user, room, action);
    if (hit) return Promise.resolve(hit);
    const key = `${action}\n${room}\n${user}`;
    let p = this.inFlight.get(key);
    if (!p) {
      p = this.request(key, { user, room, action, params: params ?? {} }).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, p);
    }
    return p;
  }

  private async request(key: string, body: { user: string; room: string; action: string; params: unknown }): Promise<ProxyAnswer> {
    this.counters.requests++;
    let answer: ProxyAnswer;
    try {
      const res = await fetch(this.opts.url, { method: 'POST', headers: this.headers, body: JSON.stringify(body), redirect: 'error', signal: AbortSignal.timeout(this.opts.timeoutMs) });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
      if (text.length > MAX_ANSWER_BYTES) throw new Error(`answer larger than ${MAX_ANSWER_BYTES} bytes`);
      let json: unknown;
      try { json = JSON.parse(text); } catch { throw new Error('answer is not JSON'); }
      const allow = (json as { allow?: unknown } | null)?.allow;
      if (typeof allow !== 'boolean') throw new Error('answer has no boolean "allow"');
      const r = (json as { reason?: unknown }).reason;
      answer = { allow, reason: typeof r === 'string' && r !== '' ? r.slice(0, 200) : allow ? 'allowed by the application' : 'refused by the application' };
    } catch (err) {
      return this.failed(body, err as Error);
    }
    if (answer.allow) this.counters.allowed++;
    else this.counters.denied++;
    if (this.opts.cacheMs > 0) {
      this.cache.delete(key);
      this.cache.set(key, { answer, until: performance.now() + this.opts.cacheMs });
      if (this.cache.size > this.opts.cacheMax) this.cache.delete(this.cache.keys().next().value!);
    }
    return answer;
  }

  private failed(body: { room: string; action: string }, err: Error): ProxyAnswer {
    this.counters.failures++;
    this.failuresSinceLog++;
    const why = err.name === 'TimeoutError' ? `no answer within ${this.opts.timeoutMs} ms (authz.proxyTimeoutMs)` : err.message.split('\n')[0]!;
    const now = performance.now();
    if (now - this.lastFailureLog >= FAILURE_LOG_MS) {
      this.lastFailureLog = now;
      this.logger.warn({ url: this.opts.url, reason: why, room: body.room, action: body.action, failures: this.failuresSinceLog, failuresTotal: this.counters.failures, failOpen: this.opts.failOpen },
        this.opts.failOpen ? 'authorization proxy failed: allowing (authz.proxyFailOpen)' : 'authorization proxy failed: refusing (fail-closed)');
      this.failuresSinceLog = 0;
    }
    return { allow: this.opts.failOpen, reason: `the authorization proxy failed (${why})${this.opts.failOpen ? '; allowed by authz.proxyFailOpen' : ''}` };
  }
}
