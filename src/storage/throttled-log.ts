/**
 * At most one log line per interval for an event that may happen thousands
 * of times a second (a refused write, an expired message): the line says how
 * many happened since the last one, so a flood costs one line, not one per
 * message, and an operator still sees its size.
 */
export class ThrottledLog {
  private last = -Infinity;
  private count = 0;

  constructor(private readonly everyMs: number) {}

  /**
   * Counts one event at `now` (ms); true when a line is due. Then
   * {@link take} gives the events the line stands for (this one included).
   */
  hit(now: number): boolean {
    this.count++;
    if (now - this.last < this.everyMs) return false;
    this.last = now;
    return true;
  }

  /** Events counted since the last line; resets the count. */
  take(): number {
    const n = this.count;
    this.count = 0;
    return n;
  }
}
