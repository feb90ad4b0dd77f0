/**
 * pino JSON logs on stdout. Every line carries hostId and the worker index
 * (or "primary"); actors add their ids only on lines about them. Nothing is
 * logged per message at info level.
 */
import pino, { type Logger } from 'pino';

export type { Logger };

export function createLogger(opts: { level: string; hostId: string; worker: number | 'primary' }): Logger {
  return pino({
    level: opts.level,
    base: { hostId: opts.hostId, worker: opts.worker, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}
