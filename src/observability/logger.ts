/**
 * pino JSON logs on stdout. Every line carries hostId and the worker index
 * (or "primary"); actors add their ids only on lines about them. Nothing is
 * logged per message at info level. Under systemd each line starts with its
 * syslog priority (journald.ts), so journalctl can filter by level.
 */
import pino, { type Logger } from 'pino';
import { prefixLine, wantsPrefix } from './journald.js';

export type { Logger };

export function createLogger(opts: { level: string; hostId: string; worker: number | 'primary'; syslogPrefix?: 'auto' | 'on' | 'off' }): Logger {
  return pino({
    level: opts.level,
    base: { hostId: opts.hostId, worker: opts.worker, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    ...(wantsPrefix(opts.syslogPrefix ?? 'auto') ? { hooks: { streamWrite: prefixLine } } : {}),
  });
}
