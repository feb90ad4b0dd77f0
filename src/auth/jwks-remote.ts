/**
 * The keys of `auth.jwksUrl`: fetched at start, again every
 * `auth.jwksRefreshMs`, and again when a token names a kid not in the set
 * (at most once per {@link UNKNOWN_KID_COOLDOWN_MS}, so a flood of forged
 * kids costs the key server nothing). A fetch that fails or answers garbage
 * keeps the keys from the last good one and logs a warning: a key server that
 * is down for a while must not lock every client out.
 *
 * One per worker; its interval is unref'd and stopped with the worker.
 */
import type { Logger } from '../observability/logger.js';
import { KeyEntry, keysFromJwks } from './keys.js';

/** Least time between two fetches caused by unknown kids. */
export const UNKNOWN_KID_COOLDOWN_MS = 10_000;
/** Largest JWKS document accepted. */
const MAX_JWKS_BYTES = 1024 * 1024;

export class RemoteJwks {
  private keys = new Map<string, KeyEntry>();
  private fetching: Promise<void> | null = null;
  private lastFetchAt = 0;
  private timer: NodeJS.Timeout | null = null;
  /** Fetches that failed (for tests and the log). */
  failures = 0;
  fetches = 0;

  constructor(private readonly url: string, private readonly refreshMs: number, private readonly timeoutMs: number, private readonly logger: Logger) {}

  /** First fetch (awaited by the first token that needs it) and the refresh interval. */
  start(): void {
    void this.refresh('start');
    this.timer = setInterval(() => void this.refresh('interval'), this.refreshMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** The key for kid: from the set, fetching it again first when unknown (and not fetched within the cooldown). */
  async find(kid: string): Promise<KeyEntry | undefined> {
    if (this.fetching && this.keys.size === 0) await this.fetching;
    const known = this.keys.get(kid);
    if (known || performance.now() - this.lastFetchAt < UNKNOWN_KID_COOLDOWN_MS) return known;
    await this.refresh('unknown kid');
    return this.keys.get(kid);
  }

  /** Fetches now unless a fetch is under way (then waits for that one). */
  refresh(why: string): Promise<void> {
    this.fetching ??= this.fetchOnce(why).finally(() => { this.fetching = null; });
    return this.fetching;
  }

  private async fetchOnce(why: string): Promise<void> {
    this.lastFetchAt = performance.now();
    this.fetches++;
    try {
      const res = await fetch(this.url, { headers: { accept: 'application/jwk-set+json, application/json' }, redirect: 'error', signal: AbortSignal.timeout(this.timeoutMs) });
      if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
      const text = await res.text();
      if (text.length > MAX_JWKS_BYTES) throw new Error(`the key set is larger than ${MAX_JWKS_BYTES} bytes`);
      const skipped: string[] = [];
      const entries = keysFromJwks(JSON.parse(text), 'auth.jwksUrl', (r) => skipped.push(r));
      if (skipped.length) this.logger.warn({ url: this.url, skipped }, 'auth.jwksUrl: keys skipped');
      const next = new Map<string, KeyEntry>();
      // A key unchanged since the last fetch keeps its imported CryptoKeys.
      for (const e of entries) next.set(e.kid!, this.keys.get(e.kid!)?.sameAs(e) ? this.keys.get(e.kid!)! : e);
      const added = [...next.keys()].filter((k) => !this.keys.has(k));
      const removed = [...this.keys.keys()].filter((k) => !next.has(k));
      this.keys = next;
      if (added.length || removed.length) this.logger.info({ url: this.url, why, kids: [...next.keys()], added, removed }, 'auth.jwksUrl: key set changed');
    } catch (err) {
      this.failures++;
      const reason = (err as Error).name === 'TimeoutError' ? `no answer within ${this.timeoutMs} ms (auth.jwksTimeoutMs)` : (err as Error).message;
      this.logger.warn({ url: this.url, why, reason, keptKids: [...this.keys.keys()] }, 'auth.jwksUrl: fetch failed; keeping the keys of the last good fetch');
    }
  }

  get kids(): string[] { return [...this.keys.keys()]; }
}
