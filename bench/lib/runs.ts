/**
 * How a comparison bench runs: every repeat runs every target in order, each
 * on a fresh server, within the time bound; one run's servers and clients
 * are released whatever happens in it, and its error is recorded, not
 * thrown, so the other runs still count.
 */
import { availableParallelism, loadavg } from 'node:os';
import { log } from './report.js';
import type { TargetBenchSettings } from './settings.js';
import type { TargetName } from '../load/targets.js';

/** The first lines of a run: when, on what, and the settings (`what`); returns the start time. */
export function printHeader(name: string, what: string): Date {
  const startedAt = new Date();
  console.log(`${name} ${startedAt.toISOString()} node ${process.version}, ${availableParallelism()} CPUs, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  console.log(`command: node dist/bench/${name}.js ${process.argv.slice(2).join(' ')}`);
  console.log(`settings: ${what}`);
  return startedAt;
}

/**
 * Every repeat runs every target in order (a fresh server each time), until
 * the deadline; `variants` gives a target's variants (one run each; none:
 * one run). Resolves with the runs and why it stopped early ('' when it did not).
 */
export async function runRepeats<R>(s: TargetBenchSettings, label: (target: TargetName, rep: number, variant?: string) => string, once: (target: TargetName, rep: number, variant?: string) => Promise<R>, variants: (target: TargetName) => readonly (string | undefined)[] = () => [undefined]): Promise<{ runs: R[]; stoppedEarly: string }> {
  const runs: R[] = [];
  for (let rep = 1; rep <= s.repeat; rep++) {
    for (const target of s.targets) {
      if (Date.now() > s.deadlineAt) return { runs, stoppedEarly: `--max-minutes reached before ${target} repeat ${rep}` };
      for (const variant of variants(target)) {
        log(label(target, rep, variant));
        runs.push(await once(target, rep, variant));
      }
    }
  }
  return { runs, stoppedEarly: '' };
}

/** What one run started, released at its end: client fleets killed first, then the servers stopped. */
export class RunScope {
  private readonly fleets: { kill(): void }[] = [];
  private readonly servers: { stop(): Promise<unknown> }[] = [];
  fleet<T extends { kill(): void }>(f: T): T {
    this.fleets.push(f);
    return f;
  }
  server<T extends { stop(): Promise<unknown> }>(s: T): T {
    this.servers.push(s);
    return s;
  }
  async release(): Promise<void> {
    for (const f of this.fleets) f.kill();
    for (const s of this.servers.reverse()) await s.stop();
  }
}

/** Runs one measurement into `r`: an error ends it, is logged and kept in `r.error`; what it started is released either way. */
export async function runScoped<R extends { error?: string }>(r: R, body: (scope: RunScope) => Promise<void>): Promise<R> {
  const scope = new RunScope();
  try {
    await body(scope);
  } catch (err) {
    r.error = (err as Error).message;
    log(`  error: ${r.error}`);
  } finally {
    await scope.release();
  }
  return r;
}
