/**
 * Slow consumers, run by test/integration/slow-consumers.test.ts inside a
 * network namespace with small TCP buffers (see test/support/unshare.ts).
 *
 * 1,000 members and 5 fast members join one room on a 2-worker host. A
 * sender broadcasts 4 KB messages at a steady pace: first with everyone
 * reading (the baseline), then with the 1,000 paused (their sockets stop
 * reading). The server must close each paused session once its outgoing
 * buffer passes session.maxBufferedBytes (close 4408), worker RSS must stay
 * bounded, and the fast members must get every message with their latency
 * close to the baseline. Prints RESULT {...} for the test to check.
 */
import { readFileSync } from 'node:fs';
import { openMany, RawClient, startHost, startNatsServer, token, type Frame } from '../support/index.js';

const SLOW = Number(process.env.SLOW_CLIENTS ?? 1000);
const FAST = 5;
const MAX_BUFFERED = 64 * 1024;
const BODY = 'b'.repeat(4096);
const INTERVAL_MS = 20;
const BASELINE_MSGS = 50;
const FLOOD_LIMIT_MS = 60000;

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
}
function p99(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(s.length * 0.99))]! : NaN;
}

async function main(): Promise<void> {
  const nats = await startNatsServer();
  const host = await startHost({ nats: nats.url, workers: 2, flags: { 'session.maxBufferedBytes': MAX_BUFFERED, 'session.idleTimeoutMs': 120000 } });
  try {
    const pids = [...host.workerPids().values()];
    const slow = await openMany(SLOW, host.url, (i) => token(`slow${i}`));
    const fast = await Promise.all(Array.from({ length: FAST }, (_, i) => RawClient.open(host.url, token(`fast${i}`), { localAddress: '127.0.1.1' })));
    const sender = await RawClient.open(host.url, token('sender'), { localAddress: '127.0.1.2' });
    for (let i = 0; i < slow.length; i += 100) await Promise.all(slow.slice(i, i + 100).map((c) => c.join('room:wide', {}, 'r', 30000)));
    for (const c of [...fast, sender]) await c.join('room:wide', {}, 'r');
    // Slow members keep no frames (they would hold every broadcast in this process).
    for (const c of slow) c.ws.removeAllListeners('message');

    const latencies = new Map<number, number[]>();
    const received = fast.map(() => [] as number[]);
    fast.forEach((c, k) => c.ws.on('message', (data: Buffer) => {
      const f = JSON.parse(data.toString()) as Frame;
      if (f[3] !== 'msg') return;
      const p = f[4] as { seq: number; body: { n: number; t: number } };
      received[k]!.push(p.body.n);
      const phase = p.body.n < BASELINE_MSGS ? 0 : 1;
      (latencies.get(phase) ?? latencies.set(phase, []).get(phase)!).push(Date.now() - p.body.t);
    }));
    let n = 0;
    const send = async () => {
      const r = await sender.request('r', 'room:wide', 'msg', { body: { n: n++, t: Date.now(), pad: BODY } }, 15000);
      if ((r[4] as { status: string }).status !== 'ok') throw new Error(`msg refused: ${JSON.stringify(r[4])}`);
    };
    const pace = async (until: () => boolean) => {
      const pending: Promise<void>[] = [];
      while (!until()) {
        pending.push(send());
        await new Promise((r) => setTimeout(r, INTERVAL_MS));
      }
      await Promise.all(pending);
    };

    const rssIdle = Math.max(...pids.map(rssOf));
    const baselineEnd = () => n >= BASELINE_MSGS;
    await pace(baselineEnd);

    // The slow members stop reading.
    for (const c of slow) (c.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const slowClosed = () => host.lines.filter((l) => l.code === 'SANDBAR_ERR_SLOW_CONSUMER').length;
    let rssMax = 0;
    const sampler = setInterval(() => { rssMax = Math.max(rssMax, ...pids.map(rssOf)); }, 100);
    const t0 = Date.now();
    await pace(() => slowClosed() >= SLOW || Date.now() - t0 > FLOOD_LIMIT_MS);
    const floodMs = Date.now() - t0;
    // A few more after the last slow member went: the room goes on.
    const last = n + 10;
    await pace(() => n >= last);
    clearInterval(sampler);
    await Promise.all(fast.map((c, k) => new Promise<void>((resolve, reject) => {
      const deadline = Date.now() + 10000;
      const check = () => (received[k]!.length >= n ? resolve() : Date.now() > deadline ? reject(new Error(`fast ${k} got ${received[k]!.length} of ${n}`)) : setTimeout(check, 20));
      check();
    })));
    const fastInOrder = received.every((r) => r.length === n && r.every((v, i) => v === i));
    const stopLines = host.lines.filter((l) => l.code === 'SANDBAR_ERR_SLOW_CONSUMER');
    // Closed sockets leave the workers' session counts a moment later: read until they agree.
    const sum = (text: string, name: string, labels = '[^}]*') => [...text.matchAll(new RegExp(`^${name}\\{${labels}\\} (\\d+)`, 'gm'))].reduce((a, m) => a + Number(m[1]), 0);
    let metrics = '';
    for (let deadline = Date.now() + 5000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
      metrics = await (await fetch(`http://127.0.0.1:${host.adminPort}/metrics`)).text();
      if (sum(metrics, 'sandbar_sessions') === FAST + 1) break;
    }
    const sessionsLeft = sum(metrics, 'sandbar_sessions');
    const crashes = sum(metrics, 'sandbar_session_crashes_total');
    const slowClosedMetric = sum(metrics, 'sandbar_session_closes_total', '[^}]*reason="SANDBAR_ERR_SLOW_CONSUMER"[^}]*');
    const result = {
      slow: SLOW, fast: FAST, maxBufferedBytes: MAX_BUFFERED, messages: n,
      slowClosed: stopLines.length,
      slowClosedUsers: new Set(stopLines.map((l) => l.user)).size,
      fastInOrder,
      fastClosed: fast.filter((c) => c.closeCode !== null).length,
      sessionsLeft, crashes, slowClosedMetric,
      floodMs,
      baselineP50: median(latencies.get(0) ?? []), baselineP99: p99(latencies.get(0) ?? []),
      floodP50: median(latencies.get(1) ?? []), floodP99: p99(latencies.get(1) ?? []),
      rssIdle, rssMax,
      workerRestarts: host.lines.filter((l) => l.msg === 'worker listening').length - 2,
    };
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
    for (const c of [...slow, ...fast, sender]) c.terminate();
  } finally {
    await host.stop();
    await nats.stop();
  }
}

main().then(() => process.exit(0), (err) => { process.stderr.write(`${(err as Error).stack}\n`); process.exit(1); });
