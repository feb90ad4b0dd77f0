/**
 * One client process of the load fleet (forked by fleet.ts; never run by hand).
 *
 * Opens its share of the sessions from its own source address, paced by a
 * single launch timer, with at most `concurrency` handshakes in flight.
 * raw mode: a session is open when the WebSocket upgrade completes.
 * phoenix mode: it is open when the server acknowledged the Phoenix V2 join
 * `["1","1","user:<id>","phx_join",{}]` with `phx_reply` status "ok"; from then
 * on one shared timer sends `[null,"<n>","phoenix","heartbeat",{}]` to every
 * open session once per heartbeat period, spread evenly over the period.
 *
 * Connect latency (socket creation to open, in µs) goes into an HDR histogram
 * that is sent to the parent on request, with the counts.
 */
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import WebSocket from 'ws';
import { build, encodeIntoCompressedBase64 } from 'hdr-histogram-js';
import type { ChildToParent, ClientConfig, ClientCounts, ClientReport, ParentToChild } from './protocol.js';

type MintToken = (secret: string, userId: string, ttlS: number) => string;

const PENDING = 0;
const OPEN = 1;
const DONE = 2;

interface Conn {
  ws: WebSocket;
  startedAt: number;
  state: number;
  /** Index in `openConns` while OPEN. */
  slot: number;
  /** Next Phoenix message ref (1 is the join). */
  ref: number;
}

const histogram = build({ numberOfSignificantValueDigits: 3 });
const failed: Record<string, number> = {};
const closedByServer: Record<string, number> = {};
const pending = new Set<Conn>();
const openConns: Conn[] = [];

let cfg: ClientConfig | undefined;
let mintToken: MintToken | undefined;
let target = 0;
let attempted = 0;
let opened = 0;
let failedTotal = 0;
let heartbeatsSent = 0;
let framesReceived = 0;
let firstAttemptAt = 0;
let rampDoneAt = 0;
let rampStartPerf = 0;
let closing = false;
let halted = false;
let pumpQueued = false;
let hbCursor = 0;
let launchTimer: NodeJS.Timeout | undefined;
let sweepTimer: NodeJS.Timeout | undefined;
let hbTimer: NodeJS.Timeout | undefined;
let progressTimer: NodeJS.Timeout | undefined;

function send(m: ChildToParent): void {
  if (process.connected) process.send!(m);
}

let lastRss = 0;
function rss(): number {
  try {
    lastRss = process.memoryUsage.rss();
  } catch {
    // EMFILE: reading /proc needs a file descriptor; keep the last figure.
  }
  return lastRss;
}

function counts(): ClientCounts {
  const cpu = process.cpuUsage();
  return {
    childIndex: cfg?.childIndex ?? -1,
    attempted,
    opened,
    open: openConns.length,
    inFlight: pending.size,
    failed: { ...failed },
    failedTotal,
    closedByServer: { ...closedByServer },
    heartbeatsSent,
    framesReceived,
    firstAttemptAt,
    rampDoneAt,
    cpuMicros: cpu.user + cpu.system,
    rssBytes: rss(),
  };
}

function reasonOf(err: Error & { code?: string }): string {
  if (err.code) return err.code;
  const m = /Unexpected server response: (\d+)/.exec(err.message);
  if (m) return `http-${m[1]}`;
  return err.message.slice(0, 60);
}

function fail(c: Conn, reason: string): void {
  if (c.state !== PENDING) return;
  c.state = DONE;
  pending.delete(c);
  failed[reason] = (failed[reason] ?? 0) + 1;
  failedTotal++;
  c.ws.terminate();
  settled();
}

function markOpen(c: Conn): void {
  if (c.state !== PENDING) return;
  const us = Math.max(1, Math.round((performance.now() - c.startedAt) * 1000));
  histogram.recordValue(us);
  c.state = OPEN;
  pending.delete(c);
  c.slot = openConns.length;
  openConns.push(c);
  opened++;
  settled();
}

function removeOpen(c: Conn): void {
  const last = openConns.pop()!;
  if (last !== c) {
    openConns[c.slot] = last;
    last.slot = c.slot;
  }
  c.state = DONE;
}

function settled(): void {
  if (!pumpQueued) {
    pumpQueued = true;
    setImmediate(() => {
      pumpQueued = false;
      pump();
    });
  }
}

function launch(index: number): void {
  const config = cfg!;
  let url = config.url;
  let topic = '';
  if (config.mode === 'phoenix') {
    const userId = `${config.userPrefix}${index % config.users}`;
    topic = `${config.topicKind}:${userId}`;
    const u = new URL(config.url);
    u.searchParams.set('token', mintToken!(config.secret, userId, config.tokenTtlS));
    url = u.href;
  }
  const c: Conn = { ws: undefined as unknown as WebSocket, startedAt: performance.now(), state: PENDING, slot: -1, ref: 2 };
  attempted++;
  if (!firstAttemptAt) firstAttemptAt = Date.now();
  let ws: WebSocket;
  try {
    ws = new WebSocket(url, { localAddress: config.localAddress, perMessageDeflate: config.deflate });
  } catch (err) {
    failed[reasonOf(err as Error)] = (failed[reasonOf(err as Error)] ?? 0) + 1;
    failedTotal++;
    settled();
    return;
  }
  c.ws = ws;
  pending.add(c);
  ws.on('error', (err: Error & { code?: string }) => fail(c, reasonOf(err)));
  ws.on('open', () => {
    if (config.mode === 'raw') markOpen(c);
    else ws.send(`["1","1",${JSON.stringify(topic)},"phx_join",{}]`);
  });
  ws.on('message', (data: Buffer) => {
    framesReceived++;
    if (c.state !== PENDING) return;
    let msg: unknown;
    try {
      msg = JSON.parse(data.toString());
    } catch {
      fail(c, 'bad-frame');
      return;
    }
    if (!Array.isArray(msg) || msg[1] !== '1' || msg[2] !== topic) return;
    if (msg[3] === 'phx_reply') {
      const p = msg[4] as { status?: unknown; response?: { code?: unknown } } | null;
      if (p?.status === 'ok') markOpen(c);
      else fail(c, `join-${String(p?.status)}${typeof p?.response?.code === 'string' ? `:${p.response.code}` : ''}`);
    } else if (msg[3] === 'phx_error' || msg[3] === 'phx_close') {
      fail(c, `join-${msg[3]}`);
    }
  });
  ws.on('close', (code: number) => {
    if (c.state === PENDING) fail(c, `closed-before-open-${code}`);
    else if (c.state === OPEN) {
      removeOpen(c);
      if (!closing) closedByServer[String(code)] = (closedByServer[String(code)] ?? 0) + 1;
    }
  });
}

function pump(): void {
  const config = cfg;
  if (!config || closing) return;
  if (!halted && attempted < target) {
    let allowed = Math.min(target - attempted, config.concurrency - pending.size);
    if (config.rate > 0) {
      const due = Math.floor(((performance.now() - rampStartPerf) / 1000) * config.rate) - attempted;
      allowed = Math.min(allowed, due);
    }
    for (let i = 0; i < allowed; i++) launch(config.firstIndex + attempted * config.stride);
  }
  if (!rampDoneAt && (halted || attempted >= target) && pending.size === 0) {
    rampDoneAt = Date.now();
    if (launchTimer) clearInterval(launchTimer);
    send({ t: 'ramp-done', counts: counts() });
  }
}

function sweep(): void {
  const limit = performance.now() - cfg!.connectTimeoutMs;
  for (const c of pending) if (c.startedAt < limit) fail(c, 'timeout');
}

function heartbeatTick(tickMs: number): void {
  const n = openConns.length;
  if (n === 0) return;
  let k = Math.ceil((n * tickMs) / cfg!.heartbeatMs);
  while (k-- > 0 && openConns.length > 0) {
    if (hbCursor >= openConns.length) hbCursor = 0;
    const c = openConns[hbCursor++]!;
    if (c.ws.readyState !== WebSocket.OPEN) continue;
    c.ws.send(`[null,"${c.ref++}","phoenix","heartbeat",{}]`);
    heartbeatsSent++;
  }
}

async function start(config: ClientConfig): Promise<void> {
  cfg = config;
  target = config.sessions;
  if (config.mode === 'phoenix') {
    try {
      const mod = (await import(pathToFileURL(config.tokenModule).href)) as { mintToken?: MintToken };
      if (typeof mod.mintToken !== 'function') throw new Error(`${config.tokenModule} exports no mintToken function`);
      mintToken = mod.mintToken;
    } catch (err) {
      send({ t: 'fatal', childIndex: config.childIndex, error: `cannot load token module: ${(err as Error).message}` });
      return;
    }
  }
  rampStartPerf = performance.now();
  launchTimer = setInterval(pump, 10);
  sweepTimer = setInterval(sweep, 250);
  if (config.mode === 'phoenix' && config.heartbeatMs > 0) {
    const tickMs = Math.min(250, config.heartbeatMs);
    hbTimer = setInterval(() => heartbeatTick(tickMs), tickMs);
  }
  progressTimer = setInterval(() => send({ t: 'progress', counts: counts() }), 500);
  pump();
}

function closeAll(graceMs: number): void {
  closing = true;
  halted = true;
  for (const t of [launchTimer, sweepTimer, hbTimer, progressTimer]) if (t) clearInterval(t);
  for (const c of pending) c.ws.terminate();
  for (const c of openConns) c.ws.close(1000);
  const deadline = Date.now() + graceMs;
  const wait = setInterval(() => {
    if (openConns.length === 0 || Date.now() >= deadline) {
      clearInterval(wait);
      for (const c of openConns) c.ws.terminate();
      send({ t: 'closed', childIndex: cfg?.childIndex ?? -1 });
      setTimeout(() => process.exit(0), 50);
    }
  }, 20);
}

process.on('message', (m: ParentToChild) => {
  switch (m.t) {
    case 'start':
      void start(m.config);
      break;
    case 'halt':
      halted = true;
      pump();
      break;
    case 'report': {
      const report: ClientReport = { ...counts(), histogram: encodeIntoCompressedBase64(histogram) };
      send({ t: 'report', id: m.id, report });
      break;
    }
    case 'close':
      closeAll(m.graceMs);
      break;
  }
});

// The parent went away (crashed or killed): never linger holding sockets.
process.on('disconnect', () => process.exit(0));

send({ t: 'ready', childIndex: Number(process.env.BENCH_CHILD_INDEX ?? -1) });
