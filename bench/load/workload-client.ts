/**
 * One client process of the message benches (forked by workload.ts; never run
 * by hand). It opens its share of the connections from its own source
 * address, then plays one of two roles:
 *
 * dm      pairs of clients (a, b) in this same process, each joined to its
 *         own user topic, sending dms to each other: closed loop (a window
 *         of k outstanding per client) or open loop (a fixed rate per client,
 *         on schedule, whatever is outstanding). A dm is complete when the
 *         sender got its ok AND the peer got the dm event; both clients live
 *         here, so both latencies use one clock.
 * room    members joined to one room, and (in child 0) the sender, which
 *         posts messages at a fixed interval; every member records when each
 *         message arrived. Times are CLOCK_MONOTONIC (process.hrtime), the
 *         same clock in every process of the machine, so the parent can
 *         compare the sender's send time with every member's receive time.
 *
 * Latencies go into HDR histograms (µs) that the parent merges.
 *
 * Wire: `phoenix` (Phoenix V2 text frames: Sandbar, or the bare ws peer with
 * --broadcast) or `socketio` (engine.io v4 + socket.io v5 packets over a
 * plain WebSocket: `0{open}`, `40{auth}`, `42[event,…]`, `42<id>[…]` with ack
 * `43<id>[…]`, ping `2` / pong `3`). Both are framed by hand on the same `ws`
 * client so that the client's own cost is the same for every target.
 */
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import WebSocket from 'ws';
import { build, encodeIntoCompressedBase64, type Histogram } from 'hdr-histogram-js';
import type {
  DmCounts, DmGo, DmReport, DmSetup, RoomReport, RoomSend, RoomSetup, SetupResult, WorkloadInit, WorkloadToChild, WorkloadToParent,
} from './workload-protocol.js';

type MintToken = (secret: string, userId: string, ttlS: number) => string;

/** Monotonic ms, comparable across processes (CLOCK_MONOTONIC), at performance.now()'s cost. */
const MONO_OFFSET = Number(process.hrtime.bigint()) / 1e6 - performance.now();
const mono = (): number => performance.now() + MONO_OFFSET;

const CONNECTING = 0;
const READY = 1;
const CLOSED = 2;

/** How many received dms before a Sandbar client acknowledges its inbox (user.inboxMax is 10,000 by default). */
const INBOX_ACK_EVERY = 256;
/** socketio: ack ids below this are the set-up's (whoami, join). */
const SIO_FIRST_ID = 10;

interface Rec { sentAt: number; okAt: number; delAt: number; rec: boolean }

class Conn {
  ws: WebSocket | undefined;
  state = CONNECTING;
  /** Which server process holds this connection ('' = unknown): the session id without its last part for phoenix (Sandbar: `<host>.<worker>[.<incarnation>]`), `sio.<w>` for Socket.IO. */
  worker = '';
  /** phoenix: the joined user:/room: topic. */
  topic = '';
  peer: Conn | null = null;
  nextId = 1;
  readonly pending = new Map<number, Rec>();
  maxSeq = 0;
  ackedSeq = 0;
  ackRef = 0;
  /** Set-up callback while CONNECTING: the frame handler calls it with null (ready) or a failure reason. */
  onSetup: ((reason: string | null) => void) | null = null;
  /** Set-up step: phoenix 0 = echo join sent, 1 = topic join sent; socketio 0 = waiting open, 1 = connect sent, 2 = whoami sent, 3 = join sent. */
  step = 0;
  /** The token of the current connection (socketio sends it in its CONNECT packet). */
  token = '';
  constructor(readonly user: string, readonly role: 'dm' | 'member' | 'sender') {}
}

let init: WorkloadInit | undefined;
let mintToken: MintToken | undefined;
let closing = false;

const hConnect = newHist();
let hDelivery = newHist();
let hOk = newHist();
let hLag = newHist();
const failed: Record<string, number> = {};
const errors: Record<string, number> = {};
const closedByServer: Record<string, number> = {};

function newHist(): Histogram {
  return build({ numberOfSignificantValueDigits: 3 });
}
function bump(r: Record<string, number>, k: string, n = 1): void {
  r[k] = (r[k] ?? 0) + n;
}
function send(m: WorkloadToParent): void {
  if (process.connected) process.send!(m);
}
function cpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}
function reasonOf(err: Error & { code?: string }): string {
  if (err.code) return err.code;
  const m = /Unexpected server response: (\d+)/.exec(err.message);
  if (m) return `http-${m[1]}`;
  return err.message.slice(0, 60);
}
function recordUs(h: Histogram, ms: number): void {
  h.recordValue(Math.max(1, Math.round(ms * 1000)));
}

// ---- connections ----------------------------------------------------------------------

const conns: Conn[] = [];
const dmConns: Conn[] = [];
let roomTopic = '';
let roomId = '';

function connect(c: Conn): Promise<string | null> {
  const cfg = init!;
  return new Promise((resolve) => {
    const t0 = performance.now();
    let done = false;
    const finish = (reason: string | null): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      c.onSetup = null;
      if (reason === null) {
        c.state = READY;
        recordUs(hConnect, performance.now() - t0);
      } else {
        c.state = CLOSED;
        c.ws?.terminate();
      }
      resolve(reason);
    };
    const timer = setTimeout(() => finish('timeout'), cfg.connectTimeoutMs);
    c.onSetup = finish;
    c.state = CONNECTING;
    c.step = 0;
    const token = mintToken!(cfg.secret, c.user, cfg.tokenTtlS);
    const url = cfg.proto === 'phoenix' ? `${cfg.url}&token=${encodeURIComponent(token)}` : cfg.url;
    let ws: WebSocket;
    try {
      ws = new WebSocket(url, { localAddress: cfg.localAddress, perMessageDeflate: false });
    } catch (err) {
      finish(reasonOf(err as Error));
      return;
    }
    c.ws = ws;
    c.token = token;
    // A reconnect replaces c.ws: events of an earlier socket are ignored.
    ws.on('error', (err: Error & { code?: string }) => {
      if (c.ws === ws) finish(reasonOf(err));
    });
    ws.on('open', () => {
      // socketio waits for the engine.io open packet instead.
      if (cfg.proto === 'phoenix') ws.send(`["e","e",${JSON.stringify(`echo:${c.user}`)},"phx_join",{}]`);
    });
    ws.on('message', (data: Buffer) => {
      if (c.ws === ws) onFrame(c, data.toString());
    });
    ws.on('close', (code: number) => {
      if (c.ws !== ws) return;
      if (!done) finish(`closed-before-ready-${code}`);
      else if (c.state === READY && !closing) bump(closedByServer, String(code));
      c.state = CLOSED;
    });
  });
}

/**
 * Presence frames (`presence_state`, `presence_diff`) are what a room member
 * gets most of while a big room forms (one entry per member); the bench
 * never reads them, so they are recognised by their event field without
 * JSON.parse. The first three elements of a frame sent to this client are
 * null or our own simple strings (no comma, no quote), so the event starts
 * after the third comma.
 */
function isPresence(text: string): boolean {
  let i = -1;
  for (let n = 0; n < 3; n++) {
    i = text.indexOf(',', i + 1);
    if (i < 0) return false;
  }
  return text.startsWith('"presence_', i + 1);
}

function setupFrame(c: Conn, text: string): void {
  const cfg = init!;
  const ok = c.onSetup!;
  if (cfg.proto === 'phoenix') {
    if (isPresence(text)) return;
    let m: unknown;
    try {
      m = JSON.parse(text);
    } catch {
      return ok('bad-frame');
    }
    if (!Array.isArray(m) || m[3] !== 'phx_reply') return;
    const p = m[4] as { status?: string; response?: { session?: unknown; code?: unknown } } | null;
    if (p?.status !== 'ok') return ok(`join-${String(p?.status)}${typeof p?.response?.code === 'string' ? `:${p.response.code}` : ''}`);
    if (m[1] === 'e') {
      const sid = typeof p.response?.session === 'string' ? p.response.session : '';
      c.worker = sid.includes('.') ? sid.slice(0, sid.lastIndexOf('.')) : '';
      c.step = 1;
      c.ws!.send(`["j","j",${JSON.stringify(c.topic)},"phx_join",{}]`);
    } else if (m[1] === 'j') {
      ok(null);
    }
    return;
  }
  // socketio
  if (text === '2') {
    c.ws!.send('3');
    return;
  }
  if (c.step === 0 && text.startsWith('0')) {
    c.step = 1;
    c.ws!.send(`40${JSON.stringify({ token: c.token, user: c.user })}`);
  } else if (c.step === 1 && text.startsWith('40')) {
    c.step = 2;
    c.ws!.send('420["whoami"]');
  } else if (c.step === 1 && text.startsWith('44')) {
    ok(`connect-error:${text.slice(2, 60)}`);
  } else if (c.step === 2 && text.startsWith('430')) {
    try {
      const w = (JSON.parse(text.slice(3)) as [{ w?: number }])[0]?.w;
      c.worker = w === undefined ? '' : `sio.${w}`;
    } catch {
      c.worker = '';
    }
    if (c.role === 'dm') ok(null);
    else {
      c.step = 3;
      c.ws!.send(`421${JSON.stringify(['join', roomId])}`);
    }
  } else if (c.step === 3 && text.startsWith('431')) {
    ok(null);
  }
}

function onFrame(c: Conn, text: string): void {
  if (c.state === CONNECTING) {
    if (c.onSetup) setupFrame(c, text);
    return;
  }
  if (init!.proto === 'phoenix') phoenixFrame(c, text);
  else sioFrame(c, text);
}

function phoenixFrame(c: Conn, text: string): void {
  if (isPresence(text)) return;
  let m: [string | null, string | null, string, string, Record<string, unknown>];
  try {
    m = JSON.parse(text) as typeof m;
  } catch {
    bump(errors, 'bad-frame');
    return;
  }
  const ev = m[3];
  if (ev === 'dm') {
    const p = m[4] as { seq?: number; id?: string | number };
    onDmDelivered(c, Number(p.id));
    if (typeof p.seq === 'number' && p.seq > c.maxSeq) {
      c.maxSeq = p.seq;
      if (c.maxSeq - c.ackedSeq >= INBOX_ACK_EVERY) {
        c.ackedSeq = c.maxSeq;
        c.ws!.send(`["j","a${c.ackRef++}",${JSON.stringify(c.topic)},"ack",{"seq":${c.maxSeq}}]`);
      }
    }
  } else if (ev === 'msg') {
    const body = (m[4] as { body?: { k?: number; t?: number } }).body;
    if (body) onRoomMsg(c, body);
  } else if (ev === 'phx_reply') {
    const ref = m[1];
    if (ref === null) return;
    const p = m[4] as { status?: string; response?: { code?: string } };
    const c0 = ref.charCodeAt(0);
    if (c0 >= 48 && c0 <= 57) {
      onDmReply(c, Number(ref), p.status === 'ok', p.response?.code);
    } else if (c0 === 115 /* s */) {
      onRoomReply(Number(ref.slice(1)), p.status === 'ok', p.response?.code);
    } else if (p.status !== 'ok') {
      bump(errors, `reply-${ref.charAt(0)}:${p.response?.code ?? p.status}`);
    }
  } else if (ev === 'phx_error' || ev === 'phx_close') {
    bump(errors, ev);
  }
}

function sioFrame(c: Conn, text: string): void {
  const k = text.charCodeAt(0);
  if (k === 50 /* '2' ping */) {
    c.ws!.send('3');
    return;
  }
  if (k !== 52 /* '4' message */) return;
  const kind = text.charCodeAt(1);
  if (kind === 50 /* '2' EVENT */) {
    let ev: [string, Record<string, unknown>];
    try {
      ev = JSON.parse(text.slice(2)) as typeof ev;
    } catch {
      bump(errors, 'bad-frame');
      return;
    }
    if (ev[0] === 'dm') onDmDelivered(c, Number((ev[1] as { id?: number }).id));
    else if (ev[0] === 'msg') {
      const body = (ev[1] as { body?: { k?: number; t?: number } }).body;
      if (body) onRoomMsg(c, body);
    }
  } else if (kind === 51 /* '3' ACK */) {
    const br = text.indexOf('[');
    const id = Number(text.slice(2, br));
    let ok = true;
    let code: string | undefined;
    try {
      const a = JSON.parse(text.slice(br)) as [{ ok?: boolean; code?: string }?];
      if (a[0] && a[0].ok === false) {
        ok = false;
        code = a[0].code;
      }
    } catch { /* an ack without a body is still an ack */ }
    if (c.role === 'sender') onRoomReply(id - SIO_FIRST_ID, ok, code);
    else onDmReply(c, id, ok, code);
  } else if (kind === 49 /* '1' DISCONNECT */ || kind === 52 /* '4' CONNECT_ERROR */) {
    bump(errors, `sio-${text.slice(0, 2)}`);
  }
}

// ---- dm ---------------------------------------------------------------------------------

let running = false;
let recording = false;
let mode: 'window' | 'paced' = 'window';
let go: DmGo | undefined;
let sent = 0;
let oks = 0;
let delivered = 0;
let skipped = 0;
let recordedSent = 0;
let recordedDone = 0;
let outstanding = 0;
let paceTimer: NodeJS.Timeout | undefined;
let sweepTimer: NodeJS.Timeout | undefined;

function sendDm(c: Conn): void {
  const peer = c.peer!;
  if (c.state !== READY || !c.ws || c.ws.readyState !== WebSocket.OPEN) return;
  const n = c.nextId++;
  const rec: Rec = { sentAt: 0, okAt: 0, delAt: 0, rec: recording };
  c.pending.set(n, rec);
  outstanding++;
  sent++;
  if (recording) recordedSent++;
  const frame = init!.proto === 'phoenix'
    ? `["j","${n}",${JSON.stringify(c.topic)},"dm",{"to":${JSON.stringify(peer.user)},"id":${n},"body":${go!.bodyJson}}]`
    : `42${n + SIO_FIRST_ID}["dm",{"to":${JSON.stringify(peer.user)},"id":${n},"body":${go!.bodyJson}}]`;
  rec.sentAt = performance.now();
  c.ws.send(frame);
}

function complete(c: Conn, n: number, rec: Rec): void {
  c.pending.delete(n);
  outstanding--;
  if (rec.rec && rec.okAt && rec.delAt) {
    recordUs(hDelivery, rec.delAt - rec.sentAt);
    recordUs(hOk, rec.okAt - rec.sentAt);
    recordedDone++;
  }
  if (running && mode === 'window') sendDm(c);
}

function onDmReply(c: Conn, rawId: number, ok: boolean, code: string | undefined): void {
  const n = init!.proto === 'socketio' ? rawId - SIO_FIRST_ID : rawId;
  const rec = c.pending.get(n);
  if (!rec) return;
  if (!ok) {
    bump(errors, code ?? 'error');
    complete(c, n, rec);
    return;
  }
  oks++;
  rec.okAt = performance.now();
  if (rec.delAt) complete(c, n, rec);
}

function onDmDelivered(c: Conn, n: number): void {
  const sender = c.peer;
  const rec = sender?.pending.get(n);
  if (!rec || rec.delAt) {
    bump(errors, 'delivery-unmatched');
    return;
  }
  delivered++;
  rec.delAt = performance.now();
  if (rec.okAt) complete(sender!, n, rec);
}

function paceTick(state: { t0: number; rate: number; count: number; cursor: number }): void {
  const now = performance.now();
  const due = Math.floor(((now - state.t0) * state.rate) / 1000) - state.count;
  const n = dmConns.length;
  for (let i = 0; i < due; i++) {
    const c = dmConns[state.cursor]!;
    state.cursor = state.cursor + 1 === n ? 0 : state.cursor + 1;
    const intended = state.t0 + (state.count * 1000) / state.rate;
    state.count++;
    if (c.pending.size >= go!.maxOutstanding) {
      skipped++;
      continue;
    }
    sendDm(c);
    if (recording) recordUs(hLag, now - intended);
  }
}

function sweep(): void {
  const limit = performance.now() - go!.timeoutMs;
  for (const c of dmConns) {
    if (c.pending.size === 0) continue;
    for (const [n, rec] of c.pending) {
      if (rec.sentAt >= limit) continue;
      bump(errors, rec.okAt ? 'timeout-delivery' : 'timeout-ok');
      complete(c, n, rec);
    }
  }
}

function dmCounts(): DmCounts {
  return {
    childIndex: init?.childIndex ?? -1, sent, oks, delivered, errors: { ...errors }, skipped, outstanding,
    cpuMicros: cpuMicros(), closedByServer: { ...closedByServer },
  };
}

async function dmSetup(s: DmSetup): Promise<SetupResult> {
  const t0 = performance.now();
  let pairsCross = 0;
  let pairsSame = 0;
  let reconnects = 0;
  const tasks: (() => Promise<void>)[] = [];
  for (let k = 0; k < s.pairs; k++) {
    const p = s.firstPair + k;
    const a = new Conn(`${s.prefix}a${p}`, 'dm');
    const b = new Conn(`${s.prefix}b${p}`, 'dm');
    a.topic = `user:${a.user}`;
    b.topic = `user:${b.user}`;
    a.peer = b;
    b.peer = a;
    tasks.push(async () => {
      const ra = await connect(a);
      if (ra !== null) {
        bump(failed, ra);
        return;
      }
      let rb = await connect(b);
      let tries = 0;
      while (rb === null && s.placement === 'cross' && a.worker !== '' && b.worker === a.worker && tries < s.maxRetries) {
        tries++;
        reconnects++;
        await closeConn(b);
        rb = await connect(b);
      }
      if (rb !== null) {
        bump(failed, rb);
        a.ws?.close(1000);
        a.state = CLOSED;
        return;
      }
      conns.push(a, b);
      dmConns.push(a, b);
      if (a.worker !== '' && b.worker !== '') {
        if (a.worker === b.worker) pairsSame++;
        else pairsCross++;
      }
    });
  }
  await runLimited(tasks, Math.max(1, init!.connectConcurrency));
  return setupResult(s.pairs * 2, t0, pairsCross, pairsSame, reconnects);
}

function closeConn(c: Conn): Promise<void> {
  return new Promise((resolve) => {
    const ws = c.ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return resolve();
    const t = setTimeout(() => {
      ws.terminate();
      resolve();
    }, 2000);
    ws.once('close', () => {
      clearTimeout(t);
      resolve();
    });
    c.state = CLOSED;
    ws.close(1000);
  });
}

async function runLimited(tasks: (() => Promise<void>)[], limit: number): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < tasks.length && !closing) await tasks[next++]!();
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, lane));
}

function setupResult(wanted: number, t0: number, pairsCross: number, pairsSame: number, reconnects: number): SetupResult {
  const perWorker: Record<string, number> = {};
  for (const c of conns) if (c.state === READY) bump(perWorker, c.worker || 'unknown');
  return {
    childIndex: init!.childIndex,
    ready: conns.filter((c) => c.state === READY).length,
    wanted,
    failed: { ...failed },
    perWorker,
    pairsCross,
    pairsSame,
    reconnects,
    closedByServer: { ...closedByServer },
    histogram: encodeIntoCompressedBase64(hConnect),
    ms: performance.now() - t0,
  };
}

function dmGo(g: DmGo): void {
  go = g;
  mode = g.mode;
  running = true;
  sweepTimer ??= setInterval(sweep, 500);
  if (g.mode === 'window') {
    for (const c of dmConns) for (let i = 0; i < g.window; i++) sendDm(c);
  } else {
    const state = { t0: performance.now(), rate: g.ratePerClient * dmConns.length, count: 0, cursor: 0 };
    if (state.rate > 0 && dmConns.length > 0) paceTimer = setInterval(() => paceTick(state), 1);
  }
}

async function dmStop(drainMs: number): Promise<DmReport> {
  running = false;
  if (paceTimer) clearInterval(paceTimer);
  paceTimer = undefined;
  const until = performance.now() + drainMs;
  while (outstanding > 0 && performance.now() < until) await new Promise((r) => setTimeout(r, 20));
  // Whatever is still out is abandoned (counted), so the next phase starts clean.
  for (const c of dmConns) {
    for (const [n, rec] of c.pending) {
      bump(errors, rec.okAt ? 'abandoned-undelivered' : 'abandoned-unacknowledged');
      c.pending.delete(n);
      outstanding--;
    }
  }
  const report: DmReport = {
    ...dmCounts(),
    recordedSent,
    recordedDone,
    hDelivery: encodeIntoCompressedBase64(hDelivery),
    hOk: encodeIntoCompressedBase64(hOk),
    hLag: encodeIntoCompressedBase64(hLag),
  };
  // Fresh histograms and counters for the next phase (errors stay cumulative in the counts, so reset them too).
  hDelivery = newHist();
  hOk = newHist();
  hLag = newHist();
  recordedSent = 0;
  recordedDone = 0;
  for (const k of Object.keys(errors)) delete errors[k];
  return report;
}

// ---- room -------------------------------------------------------------------------------

const received: number[] = [];
const firstAt: number[] = [];
const lastAt: number[] = [];
const sentAt: number[] = [];
const okAt: number[] = [];
const firstByWorker = new Map<string, number[]>();
const lastByWorker = new Map<string, number[]>();
let sender: Conn | null = null;

function onRoomMsg(c: Conn, body: { k?: number; t?: number }): void {
  if (c.role !== 'member' || typeof body.k !== 'number') return;
  const k = body.k;
  const now = mono();
  received[k] = (received[k] ?? 0) + 1;
  if (!firstAt[k] || now < firstAt[k]!) firstAt[k] = now;
  if (!lastAt[k] || now > lastAt[k]!) lastAt[k] = now;
  let f = firstByWorker.get(c.worker);
  let l = lastByWorker.get(c.worker);
  if (!f || !l) {
    firstByWorker.set(c.worker, (f = []));
    lastByWorker.set(c.worker, (l = []));
  }
  if (!f[k] || now < f[k]!) f[k] = now;
  if (!l[k] || now > l[k]!) l[k] = now;
  if (typeof body.t === 'number') recordUs(hDelivery, now - body.t);
}

function onRoomReply(k: number, ok: boolean, code: string | undefined): void {
  if (!ok) bump(errors, `msg-${code ?? 'error'}`);
  else if (k >= 0) okAt[k] = mono();
}

async function roomSetup(s: RoomSetup): Promise<SetupResult> {
  const t0 = performance.now();
  roomId = s.room;
  roomTopic = `room:${s.room}`;
  const tasks: (() => Promise<void>)[] = [];
  const add = (c: Conn): void => {
    c.topic = roomTopic;
    tasks.push(async () => {
      const r = await connect(c);
      if (r !== null) bump(failed, r);
      else conns.push(c);
    });
  };
  if (s.sender) {
    sender = new Conn(`${s.prefix}sender`, 'sender');
    add(sender);
  }
  for (let k = 0; k < s.members; k++) add(new Conn(`${s.prefix}m${s.first + k}`, 'member'));
  await runLimited(tasks, Math.max(1, init!.connectConcurrency));
  return setupResult(s.members + (s.sender ? 1 : 0), t0, 0, 0, 0);
}

function roomSend(s: RoomSend): void {
  const c = sender;
  if (!c || c.state !== READY) {
    bump(errors, 'no-sender');
    return;
  }
  const t0 = performance.now();
  let k = 0;
  const pad = JSON.stringify(s.pad);
  const next = (): void => {
    if (closing || k >= s.count || c.state !== READY) return;
    const t = mono();
    sentAt[k] = t;
    const body = `{"k":${k},"t":${t},"p":${pad}}`;
    c.ws!.send(init!.proto === 'phoenix'
      ? `["j","s${k}",${JSON.stringify(roomTopic)},"msg",{"id":"${k}","body":${body}}]`
      : `42${k + SIO_FIRST_ID}["msg",{"room":${JSON.stringify(roomId)},"id":${k},"body":${body}}]`);
    k++;
    // Absolute schedule: a late timer does not shift the messages after it.
    setTimeout(next, Math.max(0, t0 + k * s.intervalMs - performance.now()));
  };
  next();
}

function roomReport(): RoomReport {
  const n = Math.max(received.length, sentAt.length);
  const arr = (a: number[]) => Array.from({ length: n }, (_, i) => a[i] ?? 0);
  return {
    childIndex: init!.childIndex,
    received: arr(received),
    first: arr(firstAt),
    last: arr(lastAt),
    sentAt: arr(sentAt),
    okAt: arr(okAt),
    firstByWorker: Object.fromEntries([...firstByWorker].map(([w, a]) => [w, arr(a)])),
    lastByWorker: Object.fromEntries([...lastByWorker].map(([w, a]) => [w, arr(a)])),
    hDelivery: encodeIntoCompressedBase64(hDelivery),
    errors: { ...errors },
    closedByServer: { ...closedByServer },
    cpuMicros: cpuMicros(),
  };
}

// ---- lifecycle --------------------------------------------------------------------------

function closeAll(graceMs: number): void {
  closing = true;
  running = false;
  for (const t of [paceTimer, sweepTimer]) if (t) clearInterval(t);
  for (const c of conns) {
    if (c.ws && (c.ws.readyState === WebSocket.OPEN || c.ws.readyState === WebSocket.CONNECTING)) c.ws.close(1000);
  }
  const deadline = Date.now() + graceMs;
  const wait = setInterval(() => {
    const open = conns.filter((c) => c.ws && c.ws.readyState !== WebSocket.CLOSED).length;
    if (open === 0 || Date.now() >= deadline) {
      clearInterval(wait);
      for (const c of conns) c.ws?.terminate();
      send({ t: 'closed', childIndex: init?.childIndex ?? -1 });
      setTimeout(() => process.exit(0), 50);
    }
  }, 20);
}

function fatal(err: unknown): void {
  send({ t: 'fatal', childIndex: init?.childIndex ?? -1, error: (err as Error)?.stack ?? String(err) });
}

process.on('message', (m: WorkloadToChild) => {
  switch (m.t) {
    case 'init':
      init = m.init;
      import(pathToFileURL(m.init.tokenModule).href).then(
        (mod: { mintToken?: MintToken }) => {
          if (typeof mod.mintToken !== 'function') return fatal(new Error(`${m.init.tokenModule} exports no mintToken function`));
          mintToken = mod.mintToken;
          send({ t: 'ready', childIndex: m.init.childIndex });
        },
        (err: unknown) => fatal(new Error(`cannot load token module ${m.init.tokenModule}: ${(err as Error).message}`)),
      );
      break;
    case 'dm-setup':
      dmSetup(m.setup).then((result) => send({ t: 'setup-done', id: m.id, result }), fatal);
      break;
    case 'room-setup':
      roomSetup(m.setup).then((result) => send({ t: 'setup-done', id: m.id, result }), fatal);
      break;
    case 'dm-go':
      dmGo(m.go);
      send({ t: 'ok', id: m.id });
      break;
    case 'mark':
      recording = m.on;
      send({ t: 'snap', id: m.id, counts: dmCounts() });
      break;
    case 'snap':
      send({ t: 'snap', id: m.id, counts: dmCounts() });
      break;
    case 'dm-stop':
      dmStop(m.drainMs).then((report) => send({ t: 'dm-report', id: m.id, report }), fatal);
      break;
    case 'room-send':
      roomSend(m.send);
      send({ t: 'ok', id: m.id });
      break;
    case 'room-report':
      send({ t: 'room-report', id: m.id, report: roomReport() });
      break;
    case 'close':
      closeAll(m.graceMs);
      break;
  }
});

// The parent went away: never linger holding sockets.
process.on('disconnect', () => process.exit(0));
