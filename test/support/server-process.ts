/**
 * One server process for a test or a bench: spawned as the leader of its own
 * process group (so a test can kill -9 a whole Sandbar host, primary and
 * workers, and nothing it started outlives it), its output followed by a
 * LogFollower, optionally ready only once it logged a given JSON line with a
 * port. Every group still running when this process exits is SIGKILLed, so
 * an interrupted bench or a test run that stops early leaves nothing behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { LogFollower, type LogLine } from './log-follower.js';

export interface Exit { readonly code: number | null; readonly signal: NodeJS.Signals | null }

export interface LaunchOptions {
  /** Named in logs and failure messages. */
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  /** The whole environment of the process (default: this process's). */
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Command prefix, e.g. ['ip', 'netns', 'exec', name] (it must exec, keeping the pid). */
  readonly wrap?: readonly string[];
  /** Write the process's output to this file as well. */
  readonly logFile?: string;
  /** JSON log lines kept at most (default: all). */
  readonly maxLines?: number;
  /** Resolve launch() only once a JSON log line with this msg and a numeric port arrived (the process is killed if it does not in time). */
  readonly ready?: { readonly msg: string; readonly timeoutMs: number };
}

const groups = new Set<number>();
let exitHook = false;

function killGroupsOnExit(): void {
  if (exitHook) return;
  exitHook = true;
  process.on('exit', () => {
    for (const pgid of groups) {
      try { process.kill(-pgid, 'SIGKILL'); } catch { /* gone */ }
    }
  });
}

export class ServerProcess {
  readonly proc: ChildProcess;
  readonly pid: number;
  readonly log: LogFollower;
  readonly exit: Promise<Exit>;
  /** The ready line (undefined without `ready`). */
  readyLine: LogLine | undefined;

  private constructor(readonly opts: LaunchOptions) {
    killGroupsOnExit();
    const cmd = [...(opts.wrap ?? []), opts.command, ...opts.args];
    this.proc = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env, cwd: opts.cwd, detached: true });
    if (!this.proc.pid) throw new Error(`${opts.name}: spawn of ${opts.command} failed`);
    this.pid = this.proc.pid;
    groups.add(this.pid);
    this.log = new LogFollower(this.proc, { name: opts.name, file: opts.logFile, maxLines: opts.maxLines });
    this.exit = once(this.proc, 'exit').then(([code, signal]) => {
      const e = { code: code as number | null, signal: signal as NodeJS.Signals | null };
      this.log.exited(e.signal ?? `code ${e.code}`);
      return e;
    });
  }

  /** Spawns the process and, with `ready`, waits for its ready line; a process that is not ready in time is killed with its group. */
  static async launch(opts: LaunchOptions): Promise<ServerProcess> {
    const p = new ServerProcess(opts);
    if (opts.ready) {
      const { msg, timeoutMs } = opts.ready;
      try {
        p.readyLine = await p.log.waitFor((l) => l.msg === msg && typeof l.port === 'number', timeoutMs);
      } catch (err) {
        // The caller never gets a handle to stop: a server that was slow to start would outlive the test (seen under load).
        p.killGroup();
        await p.exit;
        p.forget();
        throw err;
      }
    }
    return p;
  }

  /** The port of the ready line (0 without one). */
  get port(): number { return (this.readyLine?.port as number | undefined) ?? 0; }

  /** A Sandbar host's internal listener port from its ready line (/metrics, /cluster); its port where admin.listener = "public". */
  get adminPort(): number { return (this.readyLine?.adminPort as number | null | undefined) ?? this.port; }

  get running(): boolean { return this.proc.exitCode === null && this.proc.signalCode === null; }

  /** A signal to the leader only (a Sandbar primary stops its workers itself). */
  kill(signal: NodeJS.Signals = 'SIGTERM'): void { if (this.running) this.proc.kill(signal); }

  /** A signal to the whole process group: kill -9 of a host is primary and workers at once. */
  killGroup(signal: NodeJS.Signals = 'SIGKILL'): void {
    try { process.kill(-this.pid, signal); } catch { /* the group is gone */ }
  }

  /**
   * Graceful stop: SIGTERM to the leader, SIGKILL after `timeoutMs`, then
   * SIGKILL to whatever is left of the group (workers of a killed primary).
   * Resolves with how the leader ended; calling it again is harmless.
   */
  async stop(timeoutMs = 15000): Promise<Exit> {
    if (this.running) {
      this.proc.kill('SIGTERM');
      const t = setTimeout(() => this.kill('SIGKILL'), timeoutMs);
      await this.exit;
      clearTimeout(t);
    }
    this.killGroup();
    this.forget();
    return this.exit;
  }

  private forget(): void { groups.delete(this.pid); }
}
