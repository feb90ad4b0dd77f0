/**
 * The server API and the events stream (docs/api.md):
 *
 *   npm run build && node dist/bench/api.js                # 3 repeats
 *   node dist/bench/api.js --quick                         # smoke run: short phases, one repeat
 *   node dist/bench/api.js --help
 *
 * Per repeat, each on a fresh nats-server and host (--workers workers):
 *   dm (events off), dm (events on)  the message path's throughput: --senders
 *          clients each keep --window dms outstanding to their own recipient
 *          (a dm is done at its ok: stored and replicated) for --seconds after
 *          --warmup; acknowledged dm/s. Events on publishes dm.stored (and the
 *          other events) to the JetStream stream; the ratio on/off is the
 *          cost of the stream on the message path (median of the per-repeat
 *          ratios; both runs alternate within every repeat).
 *   api    --posters HTTP clients POST /api/publish back to back (keep-alive)
 *          to --rooms rooms, each watched by one WebSocket client: published
 *          messages/s, latency POST → answer (stored and replicated) and
 *          POST → the watcher got the msg frame (delivery).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { boolFlag, exitOnInterrupt, intFlag, runAsMain, type Flags } from './lib/args.js';
import { parseOrHelp } from './lib/settings.js';
import { sleep } from './lib/metrics.js';
import { startBenchHost, startBenchNats } from './lib/servers.js';
import { mintToken } from '../src/auth/token.js';

const API_TITLE = 'bench/api: dm throughput with events off and on, and the server API\'s publish rate and latency.';

export const API_FLAGS: Flags = {
  help: { boolean: true, doc: 'Print this help.' },
  quick: { boolean: true, doc: 'Smoke run: --repeat 1 --warmup 1 --seconds 3 --senders 20 --posters 4.' },
  workers: { doc: 'Worker processes of the host.', default: '2' },
  repeat: { doc: 'Repeats; medians are reported.', default: '3 (1 with --quick)' },
  seconds: { doc: 'Measured interval of each phase.', default: '10 (3 with --quick)' },
  warmup: { doc: 'Seconds of traffic before each measured interval.', default: '3 (1 with --quick)' },
  senders: { doc: 'dm phases: sending clients (each with its own recipient).', default: '200 (20 with --quick)' },
  window: { doc: 'dm phases: dms outstanding per sender.', default: '4' },
  posters: { doc: 'api phase: concurrent HTTP clients.', default: '16 (4 with --quick)' },
  rooms: { doc: 'api phase: rooms published to (one watcher each).', default: '8' },
};

const SECRET = 'bench-secret';
const KEY = 'bench-api-key-0123456789abcdef';

interface Opts { workers: number; seconds: number; warmup: number; senders: number; window: number; posters: number; rooms: number }

/** A Phoenix V2 client that resolves pushes by ref. */
class Client {
  private ref = 0;
  private readonly waiting = new Map<string, (reply: unknown[]) => void>();
  onPush: ((f: unknown[]) => void) | null = null;
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (d: Buffer) => {
      const f = JSON.parse(d.toString()) as unknown[];
      if (f[3] === 'phx_reply' && typeof f[1] === 'string') { this.waiting.get(f[1])?.(f); this.waiting.delete(f[1]); } else this.onPush?.(f);
    });
  }
  static open(port: number, user: string): Promise<Client> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/socket/websocket?vsn=2.0.0&token=${mintToken(SECRET, user, 3600)}`);
    return new Promise((resolve, reject) => { ws.once('open', () => resolve(new Client(ws))); ws.once('error', reject); });
  }
  push(topic: string, event: string, payload: unknown): Promise<unknown[]> {
    const ref = String(++this.ref);
    const p = new Promise<unknown[]>((r) => this.waiting.set(ref, r));
    this.ws.send(JSON.stringify(['j', ref, topic, event, payload]));
    return p;
  }
  join(topic: string): Promise<unknown[]> {
    const ref = String(++this.ref);
    const p = new Promise<unknown[]>((r) => this.waiting.set(ref, r));
    this.ws.send(JSON.stringify(['j', ref, topic, 'phx_join', {}]));
    return p;
  }
  close(): void { this.ws.close(); }
}

function pct(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

async function dmPhase(port: number, o: Opts): Promise<number> {
  const clients = await Promise.all(Array.from({ length: o.senders }, async (_, i) => {
    const c = await Client.open(port, `s${i}`);
    await c.join(`user:s${i}`);
    return c;
  }));
  let counting = false;
  let acked = 0;
  let running = true;
  const loops = clients.flatMap((c, i) => Array.from({ length: o.window }, async (_, w) => {
    for (let n = 0; running; n++) {
      const r = await c.push(`user:s${i}`, 'dm', { to: `r${i}`, id: `${w}-${n}`, body: n });
      if ((r[4] as { status: string }).status === 'ok' && counting) acked++;
    }
  }));
  await sleep(o.warmup * 1000);
  counting = true;
  const t0 = performance.now();
  await sleep(o.seconds * 1000);
  counting = false;
  const rate = acked / ((performance.now() - t0) / 1000);
  running = false;
  await Promise.race([Promise.all(loops), sleep(10000)]);
  for (const c of clients) c.close();
  return rate;
}

async function apiPhase(port: number, apiPort: number, o: Opts): Promise<{ rate: number; answer: number[]; delivery: number[] }> {
  const sentAt = new Map<string, number>();
  const delivery: number[] = [];
  const answer: number[] = [];
  let counting = false;
  const watchers = await Promise.all(Array.from({ length: o.rooms }, async (_, i) => {
    const c = await Client.open(port, `w${i}`);
    c.onPush = (f) => {
      if (f[3] !== 'msg') return;
      const id = (f[4] as { id: string }).id;
      const t = sentAt.get(id);
      if (t !== undefined) { sentAt.delete(id); if (counting) delivery.push(performance.now() - t); }
    };
    await c.join(`room:bench${i}`);
    return c;
  }));
  let running = true;
  let done = 0;
  const loops = Array.from({ length: o.posters }, async (_, p) => {
    for (let n = 0; running; n++) {
      const id = `p${p}-${n}`;
      const t = performance.now();
      sentAt.set(id, t);
      const res = await fetch(`http://127.0.0.1:${apiPort}/api/publish`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` }, body: JSON.stringify({ room: `bench${n % o.rooms}`, id, body: { n } }) });
      await res.arrayBuffer();
      if (counting && res.status === 200) { done++; answer.push(performance.now() - t); }
    }
  });
  await sleep(o.warmup * 1000);
  counting = true;
  const t0 = performance.now();
  await sleep(o.seconds * 1000);
  counting = false;
  const rate = done / ((performance.now() - t0) / 1000);
  running = false;
  await Promise.race([Promise.all(loops), sleep(10000)]);
  for (const w of watchers) w.close();
  return { rate, answer: answer.sort((a, b) => a - b), delivery: delivery.sort((a, b) => a - b) };
}

/** Runs fn against a fresh nats-server and host (its API port too, when flags open the API). */
async function withFreshHost<T>(o: Opts, flags: Record<string, string | number | boolean>, fn: (h: { port: number; apiPort: number }) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'sandbar-bench-api-'));
  const nats = await startBenchNats(dir);
  try {
    const h = await startBenchHost({ nats, dir, workers: o.workers, secret: SECRET, flags });
    try {
      const apiPort = flags['api.port'] === undefined ? 0 : (await h.waitFor((l) => l.msg === 'api listening', 5000)).port as number;
      return await fn({ port: h.port, apiPort });
    } finally {
      await h.stop();
    }
  } finally {
    await nats.stop();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[s.length >> 1]!;
}

async function main(): Promise<number> {
  const m = parseOrHelp(process.argv.slice(2), API_FLAGS, API_TITLE);
  if (!m) return 0;
  exitOnInterrupt();
  const quick = boolFlag(m, 'quick');
  const repeat = intFlag(m, 'repeat', quick ? 1 : 3, 1);
  const o: Opts = {
    workers: intFlag(m, 'workers', 2, 1), seconds: intFlag(m, 'seconds', quick ? 3 : 10, 1), warmup: intFlag(m, 'warmup', quick ? 1 : 3, 0),
    senders: intFlag(m, 'senders', quick ? 20 : 200, 1), window: intFlag(m, 'window', 4, 1), posters: intFlag(m, 'posters', quick ? 4 : 16, 1), rooms: intFlag(m, 'rooms', 8, 1),
  };
  console.log(`bench api: ${JSON.stringify(o)}, ${repeat} repeat(s)`);
  const off: number[] = [];
  const on: number[] = [];
  const ratios: number[] = [];
  const api: { rate: number; answer: number[]; delivery: number[] }[] = [];
  for (let r = 0; r < repeat; r++) {
    const a = await withFreshHost(o, {}, (h) => dmPhase(h.port, o));
    const b = await withFreshHost(o, { 'events.enabled': true }, (h) => dmPhase(h.port, o));
    off.push(a);
    on.push(b);
    ratios.push(b / a);
    console.log(`repeat ${r + 1}: dm/s events off ${a.toFixed(0)}, on ${b.toFixed(0)} (on/off ${(b / a).toFixed(3)})`);
    const x = await withFreshHost(o, { 'api.port': 0, 'api.keys': `bench:*:${KEY}` }, (h) => apiPhase(h.port, h.apiPort, o));
    api.push(x);
    console.log(`repeat ${r + 1}: api publish ${x.rate.toFixed(0)}/s; answer p50 ${pct(x.answer, 0.5).toFixed(2)} ms p99 ${pct(x.answer, 0.99).toFixed(2)} ms; delivery p50 ${pct(x.delivery, 0.5).toFixed(2)} ms p99 ${pct(x.delivery, 0.99).toFixed(2)} ms (${x.delivery.length} delivered)`);
  }
  console.log('\n| measure | median |\n|---|---|');
  console.log(`| dm/s, events off | ${median(off).toFixed(0)} |`);
  console.log(`| dm/s, events on | ${median(on).toFixed(0)} |`);
  console.log(`| on/off (median of per-repeat ratios) | ${median(ratios).toFixed(3)} |`);
  console.log(`| API publish/s (${o.posters} HTTP clients) | ${median(api.map((x) => x.rate)).toFixed(0)} |`);
  console.log(`| API answer p50 / p99 ms | ${median(api.map((x) => pct(x.answer, 0.5))).toFixed(2)} / ${median(api.map((x) => pct(x.answer, 0.99))).toFixed(2)} |`);
  console.log(`| API → delivery p50 / p99 ms | ${median(api.map((x) => pct(x.delivery, 0.5))).toFixed(2)} / ${median(api.map((x) => pct(x.delivery, 0.99))).toFixed(2)} |`);
  return 0;
}

runAsMain(import.meta.url, main, API_TITLE, API_FLAGS);
