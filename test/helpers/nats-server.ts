/**
 * Starts a real nats-server for a test: ephemeral client port (-p -1), its own
 * temp dir for JetStream, the port read from nats-server's ports file.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface NatsServerHandle {
  /** nats://127.0.0.1:<port> */
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  readonly proc: ChildProcess;
  stop(): Promise<void>;
}

export async function startNatsServer(opts: { jetstream?: boolean; args?: string[] } = {}): Promise<NatsServerHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'sandbar-nats-'));
  const args = ['-a', '127.0.0.1', '-p', '-1', '--ports_file_dir', dir];
  if (opts.jetstream !== false) args.push('-js', '-sd', join(dir, 'js'));
  args.push(...(opts.args ?? []));
  const proc = spawn('nats-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => { if (stderr.length < 20000) stderr += d.toString(); });
  const deadline = Date.now() + 10000;
  let port = 0;
  while (!port) {
    if (proc.exitCode !== null) throw new Error(`nats-server exited ${proc.exitCode}: ${stderr}`);
    if (Date.now() > deadline) { proc.kill('SIGKILL'); throw new Error(`nats-server did not write its ports file: ${stderr}`); }
    const f = readdirSync(dir).find((n) => n.endsWith('.ports'));
    if (f) {
      try {
        const ports = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { nats?: string[] };
        const u = ports.nats?.[0];
        if (u) port = Number(new URL(u).port);
      } catch { /* partially written; retry */ }
    }
    if (!port) await new Promise((r) => setTimeout(r, 20));
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    dir,
    proc,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
