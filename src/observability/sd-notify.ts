/**
 * systemd readiness, status and watchdog (sd_notify(3)) from Node, without a
 * native module.
 *
 * The protocol is one datagram of `KEY=VALUE` lines sent to the AF_UNIX
 * SOCK_DGRAM socket named by $NOTIFY_SOCKET. Node's core has no unix datagram
 * sockets (node:dgram is UDP only, node:net is stream only), so the datagram
 * is sent by running `systemd-notify`, which ships with systemd itself.
 * Because that is a child of the primary, the unit needs NotifyAccess=all.
 *
 * Why this is reliable (systemd >= 246): systemd attributes a notification to a
 * unit through the sender's PID. A child that sends and exits at once can be
 * gone before PID 1 looks it up, and the message is dropped. systemd-notify
 * avoids that by default: after the message it sends BARRIER=1 and waits until
 * the manager has processed everything before it exits (no `--no-block` here),
 * and it sends in the name of its parent (our primary, the unit's main PID)
 * where it is allowed to.
 *
 * Every function is a no-op without $NOTIFY_SOCKET (not started by systemd,
 * or Type= is not notify), and none ever throws or rejects: a failure to
 * notify is reported once to `onError` (default: one line on stderr, which
 * lands in the journal) and the server goes on.
 */
import { spawn } from 'node:child_process';

/** Sends the given `KEY=VALUE` fields as one notification; rejects on failure. */
export type NotifyRunner = (fields: readonly string[], env: NodeJS.ProcessEnv) => Promise<void>;

export interface SdNotifyOptions {
  /** Environment read for NOTIFY_SOCKET / WATCHDOG_USEC / WATCHDOG_PID, at each call. Default: process.env. */
  env?: NodeJS.ProcessEnv;
  /** How a notification is sent. Default: runs systemd-notify (see systemdNotifyCommand). */
  runner?: NotifyRunner;
  /** Told of each failure to notify. Default: one stderr line per distinct failure. */
  onError?: (err: Error) => void;
  /** The pid WATCHDOG_PID must match for the watchdog to apply to us. Default: process.pid. */
  pid?: number;
}

export interface WatchdogHandle {
  /** Ping interval in ms; 0 when systemd asked for no watchdog (nothing runs). */
  readonly intervalMs: number;
  stop(): void;
}

/** A hung systemd-notify (it waits at most 5 s on its barrier) must not pile up. */
const RUN_TIMEOUT_MS = 10_000;

/** The command line that sends `fields`: `systemd-notify READY=1 STATUS=...`. */
export function systemdNotifyCommand(fields: readonly string[]): { file: string; args: string[] } {
  // Plain VARIABLE=VALUE arguments, not --ready/--status: WATCHDOG=1 has no
  // flag, and one form for everything keeps the datagram exactly as written.
  return { file: 'systemd-notify', args: [...fields] };
}

/** Runs systemd-notify with the caller's environment (it reads NOTIFY_SOCKET itself). */
export const runSystemdNotify: NotifyRunner = (fields, env) => new Promise<void>((resolve, reject) => {
  const { file, args } = systemdNotifyCommand(fields);
  let stderr = '';
  let settled = false;
  const done = (err?: Error) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    if (err) reject(err); else resolve();
  };
  const child = spawn(file, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const timer = setTimeout(() => { child.kill('SIGKILL'); done(new Error(`${file} did not finish within ${RUN_TIMEOUT_MS} ms`)); }, RUN_TIMEOUT_MS);
  timer.unref();
  child.stderr!.on('data', (d: Buffer) => { if (stderr.length < 2000) stderr += d.toString(); });
  child.on('error', (err: NodeJS.ErrnoException) => {
    done(new Error(err.code === 'ENOENT'
      ? `${file} not found on PATH (it ships with systemd): cannot notify systemd`
      : `${file} failed to start: ${err.message}`));
  });
  child.on('close', (code, signal) => {
    if (code === 0) done();
    else done(new Error(`${file} ${args.join(' ')} exited ${code ?? signal}: ${stderr.trim() || 'no output'}`));
  });
});

/** One line per distinct failure: a broken notify path must be visible, but not every 15 s. */
function stderrOnce(): (err: Error) => void {
  const seen = new Set<string>();
  return (err) => {
    if (seen.has(err.message) || seen.size > 20) return;
    seen.add(err.message);
    process.stderr.write(`sandbar: sd_notify: ${err.message}\n`);
  };
}

/** STATUS= is one line of the datagram: a newline in it would start a new assignment. */
function statusField(text: string): string {
  return `STATUS=${text.replace(/[\r\n]+/g, ' ')}`;
}

export class SdNotifier {
  private readonly runner: NotifyRunner;
  private readonly onError: (err: Error) => void;
  private readonly pid: number;
  /** Notifications are sent one after another, so STOPPING can never overtake READY. */
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly opts: SdNotifyOptions = {}) {
    this.runner = opts.runner ?? runSystemdNotify;
    this.onError = opts.onError ?? stderrOnce();
    this.pid = opts.pid ?? process.pid;
  }

  private get env(): NodeJS.ProcessEnv {
    return this.opts.env ?? process.env;
  }

  /** True when started by systemd with a notify socket. */
  get enabled(): boolean {
    return !!this.env.NOTIFY_SOCKET;
  }

  /** Sends `KEY=VALUE` fields as one notification. Never rejects. */
  send(fields: readonly string[]): Promise<void> {
    if (!this.enabled || fields.length === 0) return Promise.resolve();
    const env = this.env;
    const next = this.queue.then(async () => {
      try {
        await this.runner(fields, env);
      } catch (err) {
        try { this.onError(err instanceof Error ? err : new Error(String(err))); } catch { /* never throw */ }
      }
    });
    this.queue = next;
    return next;
  }

  ready(status?: string): Promise<void> {
    return this.send(status === undefined ? ['READY=1'] : ['READY=1', statusField(status)]);
  }

  stopping(status?: string): Promise<void> {
    return this.send(status === undefined ? ['STOPPING=1'] : ['STOPPING=1', statusField(status)]);
  }

  status(text: string): Promise<void> {
    return this.send([statusField(text)]);
  }

  watchdog(): Promise<void> {
    return this.send(['WATCHDOG=1']);
  }

  /**
   * The ping interval systemd asked for, in ms: half of WATCHDOG_USEC (as
   * sd_watchdog_enabled(3) advises), or 0 when there is no watchdog for us.
   */
  watchdogIntervalMs(): number {
    const env = this.env;
    if (!this.enabled) return 0;
    const usec = Number(env.WATCHDOG_USEC);
    if (!env.WATCHDOG_USEC || !Number.isSafeInteger(usec) || usec <= 0) return 0;
    // WATCHDOG_PID names the process the watchdog is for; another pid means
    // the variable was inherited, not meant for us.
    if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== this.pid) return 0;
    return Math.max(1, Math.floor(usec / 2000));
  }

  /**
   * Pings WATCHDOG=1 now and then every WATCHDOG_USEC/2 on an unref()ed timer
   * (it never keeps the process alive). A ping still in flight when the next
   * is due is not doubled.
   */
  startWatchdog(): WatchdogHandle {
    const intervalMs = this.watchdogIntervalMs();
    if (intervalMs === 0) return { intervalMs: 0, stop() {} };
    let inFlight = false;
    const ping = () => {
      if (inFlight) return;
      inFlight = true;
      void this.watchdog().finally(() => { inFlight = false; });
    };
    ping();
    const timer = setInterval(ping, intervalMs);
    timer.unref();
    return { intervalMs, stop: () => clearInterval(timer) };
  }
}

/** The process-wide notifier; reads process.env at each call. */
const shared = new SdNotifier();

/** READY=1 (and STATUS= when given): start-up is complete. */
export function notifyReady(status?: string): Promise<void> {
  return shared.ready(status);
}

/** STOPPING=1 (and STATUS= when given): a graceful stop has begun. */
export function notifyStopping(status?: string): Promise<void> {
  return shared.stopping(status);
}

/** STATUS=<text>: shown by `systemctl status`. */
export function notifyStatus(status: string): Promise<void> {
  return shared.status(status);
}

/** Feeds systemd's watchdog (WatchdogSec=) until stop(); a no-op handle without one. */
export function startWatchdog(): WatchdogHandle {
  return shared.startWatchdog();
}
