/**
 * Log priorities for journald. systemd hands a service's stdout to journald,
 * which stores every line at the unit's SyslogLevel= (info) unless the line
 * starts with a syslog priority prefix, `<N>` (sd-daemon(3); honoured while
 * SyslogLevelPrefix= is on, the default): it then strips the prefix and keeps
 * N as the line's priority. So each pino line gets the prefix of its level,
 * and `journalctl -p warning -u sandbar` shows warnings and worse.
 *
 * Whether stdout is the journal: systemd sets $JOURNAL_STREAM to
 * `<device>:<inode>` of the stream it connected; it is the journal only if
 * that is our fd (a child whose stdout was redirected inherits the variable).
 */
import { fstatSync } from 'node:fs';

/** syslog(3) priorities. */
export const SYSLOG = { crit: 2, err: 3, warning: 4, info: 6, debug: 7 } as const;

/** pino level → syslog priority: fatal crit, error err, warn warning, info info, debug and trace debug. */
export function priorityOf(level: number): number {
  if (level >= 60) return SYSLOG.crit;
  if (level >= 50) return SYSLOG.err;
  if (level >= 40) return SYSLOG.warning;
  if (level >= 30) return SYSLOG.info;
  return SYSLOG.debug;
}

/** `<N>` for pino's first digit of the level (1 trace .. 6 fatal), indexed by that digit. */
const BY_DIGIT: readonly string[] = ['', '<7>', '<7>', '<6>', '<4>', '<3>', '<2>'];
/** pino writes `{"level":NN,` first; the level's first digit is at this index. */
const DIGIT_AT = '{"level":'.length;

/**
 * A pino line with its priority prefix. pino's own levels are two digits
 * whose first digit is enough; anything else (a custom level, another key
 * order) is read with a regex, and a line without a level is info.
 */
export function prefixLine(line: string): string {
  const d = line.charCodeAt(DIGIT_AT) - 48;
  const fast = line.charCodeAt(DIGIT_AT + 2) === 44 /* , */ && d >= 1 && d <= 6 ? BY_DIGIT[d] : undefined;
  if (fast !== undefined) return fast + line;
  const m = /"level":(\d+)/.exec(line);
  return `<${m ? priorityOf(Number(m[1])) : SYSLOG.info}>${line}`;
}

/** True when file descriptor `fd` is the stream systemd connected to the journal. */
export function isJournalStream(fd: number, env: NodeJS.ProcessEnv = process.env): boolean {
  const want = env.JOURNAL_STREAM;
  if (!want) return false;
  try {
    const st = fstatSync(fd, { bigint: true });
    return `${st.dev}:${st.ino}` === want;
  } catch {
    return false;
  }
}

/** Whether log lines get the prefix, for log.syslogPrefix. */
export function wantsPrefix(setting: 'auto' | 'on' | 'off', env: NodeJS.ProcessEnv = process.env): boolean {
  return setting === 'on' || (setting === 'auto' && isJournalStream(1, env));
}
