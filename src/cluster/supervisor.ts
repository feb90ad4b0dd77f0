/**
 * The OTP-style restart policy of the primary: a crashed worker is restarted
 * after a backoff that doubles with each restart inside the window (capped at
 * 5 s); more than `maxRestarts` restarts within `restartWindowMs` means
 * something is wrong beyond one worker, and the host gives up (exits non-zero)
 * so systemd restarts it whole. Moleculer's immediate re-fork loop is what
 * this avoids.
 */
export class RestartPolicy {
  private readonly recent: number[] = [];
  total = 0;

  constructor(private readonly opts: { maxRestarts: number; windowMs: number; backoffMs: number }) {}

  /**
   * Records a crash at `now` (ms). Returns the delay before restarting, or
   * null when the intensity limit is passed and the host must give up.
   */
  onCrash(now: number): number | null {
    while (this.recent.length > 0 && now - this.recent[0]! > this.opts.windowMs) this.recent.shift();
    if (this.recent.length >= this.opts.maxRestarts) return null;
    const delay = Math.min(5000, this.opts.backoffMs * 2 ** this.recent.length);
    this.recent.push(now);
    this.total++;
    return delay;
  }

  get inWindow(): number { return this.recent.length; }
}
