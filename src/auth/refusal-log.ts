/**
 * Log lines for refused tokens, bounded: the first {@link PER_SECOND} refusals
 * of each second get a line each (code, reason, client address: never the
 * token), the rest are counted and summed up in one line when the second
 * ends. A flood of bad tokens costs the log a few lines a second.
 */
import type { Logger } from '../observability/logger.js';

export const PER_SECOND = 5;

export class RefusalLog {
  private windowStart = 0;
  private inWindow = 0;
  private suppressed: Record<string, number> = {};
  private timer: NodeJS.Timeout | null = null;
  /** Every refusal since start, by code (the worker's stats). */
  readonly total: Record<string, number> = {};

  constructor(private readonly logger: Logger, private readonly msg = 'token refused before the upgrade') {}

  note(code: string, reason: string, ip: string | undefined, transport: 'websocket' | 'longpoll'): void {
    this.total[code] = (this.total[code] ?? 0) + 1;
    const now = Date.now();
    if (now - this.windowStart >= 1000) {
      this.flush();
      this.windowStart = now;
      this.inWindow = 0;
    }
    if (++this.inWindow <= PER_SECOND) {
      this.logger.info({ code, reason, ip, transport }, this.msg);
      return;
    }
    this.suppressed[code] = (this.suppressed[code] ?? 0) + 1;
    if (!this.timer) {
      this.timer = setTimeout(() => { this.timer = null; this.flush(); }, 1000);
      this.timer.unref();
    }
  }

  private flush(): void {
    const counts = this.suppressed;
    const n = Object.values(counts).reduce((a, b) => a + b, 0);
    if (n === 0) return;
    this.suppressed = {};
    this.logger.info({ refused: n, byCode: counts }, `${this.msg}: ${n} more within a second (not logged one by one)`);
  }
}
