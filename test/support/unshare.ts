/**
 * Runs a scenario script in a network namespace of its own (`unshare -rn`:
 * an unprivileged user namespace with a fresh loopback), with the TCP buffer
 * sysctls set for that namespace only. Tests that need small kernel socket
 * buffers (a client that stops reading must reach the server's own bound
 * soon, not after the kernel absorbed 4 MB per socket) use it, without
 * touching the machine's settings or anyone else's traffic.
 *
 * The script prints its result as one JSON line starting with RESULT.
 */
import { spawn } from 'node:child_process';

export interface NetnsRun<T> {
  result: T;
  stderr: string;
}

export async function runInNetns<T>(script: string, opts: { tcpWmem: string; tcpRmem: string; timeoutMs: number; env?: Record<string, string> }): Promise<NetnsRun<T>> {
  const setup = [
    'ip link set lo up',
    `echo "${opts.tcpWmem}" > /proc/sys/net/ipv4/tcp_wmem`,
    `echo "${opts.tcpRmem}" > /proc/sys/net/ipv4/tcp_rmem`,
    `exec "${process.execPath}" --import=tsx "${script}"`,
  ].join(' && ');
  // detached: its own process group, so a timeout takes down everything the scenario started.
  const proc = spawn('unshare', ['-rn', 'sh', '-c', setup], { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, ...opts.env } });
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
  proc.stderr!.on('data', (d: Buffer) => { if (stderr.length < 200000) stderr += d.toString(); });
  const timer = setTimeout(() => { try { process.kill(-proc.pid!, 'SIGKILL'); } catch { /* gone */ } }, opts.timeoutMs);
  const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => proc.on('exit', (c, s) => resolve([c, s])));
  clearTimeout(timer);
  try { process.kill(-proc.pid!, 'SIGKILL'); } catch { /* all gone */ }
  const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) {
    throw new Error(`scenario ${script} ended (code ${code}, signal ${signal}) without a result` +
      (signal === 'SIGKILL' ? ` after the ${opts.timeoutMs} ms bound` : '') +
      `; needs unshare -rn (unprivileged user namespaces). stdout: ${stdout.slice(-3000)} stderr: ${stderr.slice(-3000)}`);
  }
  return { result: JSON.parse(line.slice('RESULT '.length)) as T, stderr };
}
