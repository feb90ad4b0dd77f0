/**
 * Follows a child process's output: every stdout line that is JSON (pino)
 * becomes a log line a test can wait for; stderr, and stdout that is not
 * JSON, are kept as text for failure messages. Optionally everything is
 * also written to a file (benches keep their servers' logs; a test run with
 * SANDBAR__TEST_LOG_DIR=<dir> keeps every host's log there, one file per
 * process, for debugging an intermittent failure).
 */
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Recorder } from './recorder.js';

export type LogLine = Record<string, unknown> & { msg?: string; level?: number; worker?: number | 'primary'; pid?: number; time?: string | number };

export interface LogFollowerOptions {
  /** Named in failure messages. */
  readonly name: string;
  /** Also write stdout and stderr to this file. */
  readonly file?: string;
  /** JSON lines kept at most (default: all; a bench host bounds it). */
  readonly maxLines?: number;
}

/** Where SANDBAR__TEST_LOG_DIR asks a test's process logs to go, or undefined. */
export function keptLogFile(name: string, pid: number | undefined): string | undefined {
  const dir = process.env.SANDBAR__TEST_LOG_DIR;
  return dir ? join(dir, `${name}-${pid}.log`) : undefined;
}

const STDERR_KEPT = 100_000;
const TAIL_KEPT = 4000;

export class LogFollower {
  private readonly recorder: Recorder<LogLine>;
  private stderrText = '';
  private tailText = '';
  private readonly file: WriteStream | null;
  private pendingStreams = 2;

  constructor(proc: ChildProcess, private readonly opts: LogFollowerOptions) {
    this.recorder = new Recorder<LogLine>({ what: 'a log line', context: () => `${opts.name} stderr: ${this.stderrText.slice(-2000)}`, maxItems: opts.maxLines });
    const file = opts.file ?? keptLogFile(opts.name, proc.pid);
    this.file = file ? createWriteStream(file) : null;
    proc.stderr?.on('data', (d: Buffer) => {
      const s = d.toString();
      if (this.stderrText.length < STDERR_KEPT) this.stderrText += s;
      this.keepTail(s);
      this.file?.write(d);
    });
    proc.stderr?.once('close', () => this.streamClosed());
    if (!proc.stderr) this.pendingStreams--;
    if (proc.stdout) createInterface({ input: proc.stdout }).on('close', () => this.streamClosed()).on('line', (text) => this.onLine(text));
    else this.pendingStreams--;
  }

  /** Every JSON log line so far, in order. */
  get lines(): LogLine[] { return this.recorder.items; }

  /** stderr so far (its first 100,000 characters). */
  stderr(): string { return this.stderrText; }

  /** The last few thousand characters of output, stdout and stderr together. */
  tail(): string { return this.tailText; }

  /** Resolves with the first log line (from index `from`, already seen or future) matching pred. */
  waitFor(pred: (l: LogLine) => boolean, timeoutMs = 15000, from = 0): Promise<LogLine> {
    return this.recorder.waitFor(pred, timeoutMs, from);
  }

  /** The process exited: waiters fail 50 ms later (lines still in the pipe may yet satisfy them). */
  exited(how: string): void {
    this.recorder.end(`${this.opts.name} exited (${how}) before the awaited log line`, 50);
  }

  private onLine(text: string): void {
    this.file?.write(text + '\n');
    if (!text.startsWith('{')) {
      this.keepTail(text + '\n');
      return;
    }
    let l: LogLine;
    try { l = JSON.parse(text) as LogLine; } catch { this.keepTail(text + '\n'); return; }
    this.recorder.push(l);
  }

  private keepTail(s: string): void {
    this.tailText = (this.tailText + s).slice(-TAIL_KEPT);
  }

  private streamClosed(): void {
    if (--this.pendingStreams === 0) this.file?.end();
  }
}
