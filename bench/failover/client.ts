/**
 * One client process of bench/failover.ts (forked; never run by hand).
 *
 * Holds pairs of users (a<p>, b<p>), each with one Phoenix session joined to
 * `user:<id>` on its host; each user sends dms `{to: peer, id, body}` to its
 * peer, one in flight at a time, and retries a dm with the same `id` (the
 * server drops resends inside `user.dedupWindow`) on an error reply, no
 * reply within 10 s, or a lost connection. A closed connection reconnects to
 * the next host at once and rejoins with `last_seq` (the inbox replays what
 * it missed). Both users of a pair live here, so one clock times every dm
 * from its first send to its delivery, and every acknowledged dm can be
 * checked against what its recipient got.
 *
 * After the parent says when the host was killed: a user is affected when
 * its connection closed, or a dm of it failed or took longer than stallMs to
 * be acknowledged; it has recovered when it is joined again and has no dm
 * outstanding. Recovery time = that moment − the kill.
 */
import { pathToFileURL } from 'node:url';
import WebSocket from 'ws';
import { build, encodeIntoCompressedBase64 } from 'hdr-histogram-js';
import type { FailoverClientConfig, FailoverCounts, FailoverReport, FailoverToChild, FailoverToParent } from './protocol.js';

type MintToken = (secret: string, userId: string, ttlS: number) => string;

interface Pending { id: string; firstSentAt: number; sentAt: number; ref: string; retryAt: number }

interface User {
  readonly name: string;
  readonly index: number;
  peer: User;
  host: number;
  ws: WebSocket | undefined;
  ready: boolean;
  connecting: boolean;
  lastSeq: number;
  n: number;
  nextAt: number;
  pending: Pending | undefined;
  /** id → first send time, for every dm this user sent (acknowledged or not) */
  readonly sentAt: Map<string, number>;
  readonly acked: Set<string>;
  /** id → seq of every dm received */
  readonly got: Map<string, number>;
  affected: 0 | 1 | 2;
  recovered: boolean;
  reconnectAt: number;
}

const hRecovery = build({ numberOfSignificantValueDigits: 3 });
const hBefore = build({ numberOfSignificantValueDigits: 3 });
const hAfter = build({ numberOfSignificantValueDigits: 3 });
const errors: Record<string, number> = {};
const users: User[] = [];
let cfg: FailoverClientConfig;
let mintToken: MintToken;
let mode: 'off' | 'window' | 'paced' = 'off';
let intervalMs = 1000;
let killAt = 0;
let sent = 0, acked = 0, retries = 0, reconnects = 0, received = 0, delayed = 0, duplicates = 0;
let refN = 0;

const nowMs = () => Number(process.hrtime.bigint() / 1000n) / 1000;
const bump = (k: string) => (errors[k] = (errors[k] ?? 0) + 1);
const send = (m: FailoverToParent) => process.connected && process.send!(m);

function counts(): FailoverCounts {
  const cpu = process.cpuUsage();
  return { childIndex: cfg.childIndex, ready: users.filter((u) => u.ready).length, sent, acked, retries, errors: { ...errors }, reconnects, received, cpuMicros: cpu.user + cpu.system };
}

function affect(u: User, how: 1 | 2): void {
  if (!killAt || u.recovered) return;
  if (!u.affected) u.affected = how;
}

function maybeRecovered(u: User): void {
  if (!killAt || !u.affected || u.recovered || !u.ready || u.pending) return;
  u.recovered = true;
  hRecovery.recordValue(Math.max(1, Math.round((nowMs() - killAt) * 1000)));
}

function connect(u: User): void {
  u.connecting = true;
  u.ready = false;
  const url = `${cfg.urls[u.host]}&token=${encodeURIComponent(mintToken(cfg.secret, u.name, 3600))}`;
  const ws = new WebSocket(url, { localAddress: cfg.localAddress, perMessageDeflate: false });
  u.ws = ws;
  const topic = JSON.stringify(`user:${u.name}`);
  const lost = (why: string) => {
    if (u.ws !== ws) return;
    u.ws = undefined;
    const wasUp = u.ready || u.connecting;
    u.ready = false;
    u.connecting = false;
    if (wasUp) bump(why);
    affect(u, 1);
    // The next host, at once (a refused connect moves on again).
    u.host = (u.host + 1) % cfg.urls.length;
    u.reconnectAt = nowMs() + (why === 'closed' ? 0 : 50);
    reconnects++;
  };
  ws.on('error', (err: Error & { code?: string }) => lost(err.code ?? 'ws-error'));
  ws.on('close', () => lost('closed'));
  ws.on('open', () => ws.send(`["j","j",${topic},"phx_join",${u.lastSeq ? `{"last_seq":${u.lastSeq}}` : '{}'}]`));
  ws.on('message', (data: Buffer) => {
    if (u.ws !== ws) return;
    let f: [unknown, unknown, unknown, string, Record<string, unknown>];
    try {
      f = JSON.parse(data.toString()) as typeof f;
    } catch {
      bump('bad-frame');
      return;
    }
    const ev = f[3];
    if (ev === 'dm') onDm(u, f[4] as { id?: string; seq?: number });
    else if (ev === 'phx_reply') {
      const p = f[4] as { status?: string; response?: { code?: string } };
      if (f[1] === 'j') {
        u.connecting = false;
        if (p.status === 'ok') {
          u.ready = true;
          if (u.pending) u.pending.retryAt = 0; // resend at once on the new session
          maybeRecovered(u);
        } else {
          bump(`join-${p.response?.code ?? p.status}`);
          affect(u, 1);
          ws.terminate();
        }
      } else if (u.pending && f[1] === u.pending.ref) onReply(u, p.status === 'ok', p.response?.code);
    }
  });
}

function onDm(to: User, m: { id?: string; seq?: number }): void {
  if (typeof m.id !== 'string' || typeof m.seq !== 'number') return;
  if (m.seq > to.lastSeq) to.lastSeq = m.seq;
  const prev = to.got.get(m.id);
  if (prev !== undefined) {
    if (prev !== m.seq) duplicates++;
    return;
  }
  to.got.set(m.id, m.seq);
  received++;
  const first = to.peer.sentAt.get(m.id);
  if (first === undefined) return;
  const ms = nowMs() - first;
  if (ms > cfg.delayedMs) delayed++;
  (killAt ? hAfter : hBefore).recordValue(Math.max(1, Math.round(ms * 1000)));
}

function onReply(u: User, ok: boolean, code: string | undefined): void {
  const p = u.pending!;
  const t = nowMs();
  if (ok) {
    if (killAt && t > killAt && t - p.sentAt > cfg.stallMs) affect(u, 2);
    u.acked.add(p.id);
    acked++;
    u.pending = undefined;
    maybeRecovered(u);
  } else {
    bump(`dm-${code ?? 'error'}`);
    affect(u, 2);
    retries++;
    p.retryAt = t + 50;
  }
}

function write(u: User): void {
  const p = u.pending!;
  p.ref = `d${++refN}`;
  p.sentAt = nowMs();
  p.retryAt = Infinity;
  u.ws!.send(`["j","${p.ref}","user:${u.name}","dm",{"to":"${u.peer.name}","id":"${p.id}","body":"x"}]`);
}

/** One tick for every user: reconnect, resend, time out, or send the next dm when due. */
function tick(): void {
  const t = nowMs();
  for (const u of users) {
    if (!u.ws && !u.connecting && t >= u.reconnectAt && u.reconnectAt > 0) {
      connect(u);
      continue;
    }
    if (!u.ready) continue;
    const p = u.pending;
    if (p) {
      if (t >= p.retryAt) write(u);
      else if (p.retryAt === Infinity && t - p.sentAt > 10000) {
        bump('dm-no-reply');
        affect(u, 2);
        retries++;
        write(u);
      }
      continue;
    }
    if (mode === 'off' || (mode === 'paced' && t < u.nextAt)) continue;
    if (mode === 'paced') u.nextAt = Math.max(u.nextAt + intervalMs, t - intervalMs);
    const id = `${u.name}-${u.n++}`;
    u.sentAt.set(id, t);
    u.pending = { id, firstSentAt: t, sentAt: t, ref: '', retryAt: 0 };
    sent++;
    write(u);
  }
}

async function setup(c: FailoverClientConfig): Promise<void> {
  cfg = c;
  mintToken = ((await import(pathToFileURL(c.tokenModule).href)) as { mintToken: MintToken }).mintToken;
  for (let p = c.firstPair; p < c.firstPair + c.pairs; p++) {
    const mk = (name: string, index: number): User => ({
      name, index, peer: undefined as unknown as User, host: index % c.urls.length, ws: undefined, ready: false, connecting: false, lastSeq: 0, n: 0, nextAt: 0,
      pending: undefined, sentAt: new Map(), acked: new Set(), got: new Map(), affected: 0, recovered: false, reconnectAt: 0,
    });
    const a = mk(`${c.prefix}a${p}`, 2 * p);
    const b = mk(`${c.prefix}b${p}`, 2 * p + 1);
    a.peer = b;
    b.peer = a;
    users.push(a, b);
  }
  // Connect with at most connectConcurrency handshakes in flight.
  let next = 0;
  await new Promise<void>((resolve) => {
    const pump = () => {
      const inFlight = users.filter((u) => u.connecting).length;
      for (let k = inFlight; k < c.connectConcurrency && next < users.length; k++) connect(users[next++]!);
      if (next >= users.length && users.every((u) => !u.connecting)) resolve();
      else setTimeout(pump, 5);
    };
    pump();
  });
  // Reconnects during the run come from tick(); spread each user's paced schedule over the interval later.
  setInterval(tick, 5);
}

/** Opens a fresh session for `u` and collects what its inbox replays (no last_seq: every unacknowledged message); undefined when the join did not succeed within 5 s. */
function replay(u: User, waitMs: number): Promise<Set<string> | undefined> {
  return new Promise((resolve) => {
    const got = new Set<string>();
    let joined = false;
    const url = `${cfg.urls[u.host]}&token=${encodeURIComponent(mintToken(cfg.secret, u.name, 3600))}`;
    const ws = new WebSocket(url, { localAddress: cfg.localAddress, perMessageDeflate: false });
    const done = () => {
      ws.terminate();
      resolve(joined ? got : undefined);
    };
    const timer = setTimeout(done, 5000);
    ws.on('error', () => undefined);
    ws.on('open', () => ws.send(`["r","r","user:${u.name}","phx_join",{}]`));
    ws.on('message', (d: Buffer) => {
      const f = JSON.parse(d.toString()) as [unknown, unknown, unknown, string, { id?: string; status?: string }];
      if (f[3] === 'dm' && typeof f[4].id === 'string') got.add(f[4].id);
      else if (f[3] === 'phx_reply' && f[1] === 'r') {
        clearTimeout(timer);
        joined = f[4].status === 'ok';
        setTimeout(done, joined ? waitMs : 0);
      }
    });
  });
}

async function finish(drainMs: number): Promise<FailoverReport> {
  mode = 'off';
  const until = Date.now() + drainMs;
  while (Date.now() < until && users.some((u) => u.pending)) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 1000)); // the last deliveries
  let missingLive = 0, foundByReplay = 0, lost = 0, unverified = 0;
  const suspects: User[] = [];
  for (const u of users) {
    const miss = [...u.acked].filter((id) => !u.peer.got.has(id));
    if (miss.length) {
      missingLive += miss.length;
      suspects.push(u);
    }
  }
  // Replays 32 at a time; each is bounded (5 s to join, then 500 ms of replay).
  for (let k = 0; k < suspects.length; k += 32) {
    const batch = suspects.slice(k, k + 32);
    const inboxes = await Promise.all(batch.map((u) => replay(u.peer, 500)));
    batch.forEach((u, j) => {
      const inbox = inboxes[j];
      for (const id of u.acked) {
        if (u.peer.got.has(id)) continue;
        if (!inbox) unverified++;
        else if (inbox.has(id)) {
          foundByReplay++;
          delayed++;
        } else lost++;
      }
    });
  }
  const affectedDisconnected = users.filter((u) => u.affected === 1).length;
  const affectedStalled = users.filter((u) => u.affected === 2).length;
  return {
    ...counts(), affectedDisconnected, affectedStalled, recovered: users.filter((u) => u.recovered).length,
    hRecovery: encodeIntoCompressedBase64(hRecovery), hBefore: encodeIntoCompressedBase64(hBefore), hAfter: encodeIntoCompressedBase64(hAfter),
    missingLive, foundByReplay, lost, unverified, delayed, duplicates, unacked: users.filter((u) => u.pending).length,
  };
}

process.on('message', (m: FailoverToChild) => {
  void (async () => {
    switch (m.t) {
      case 'setup':
        await setup(m.config);
        send({ t: 'counts', id: m.id, counts: counts() });
        break;
      case 'go': {
        mode = m.mode;
        intervalMs = m.intervalMs;
        // "Before the kill" latencies are the paced phase's, not the closed-loop peak's queueing.
        if (mode === 'paced') hBefore.reset();
        const t = nowMs();
        users.forEach((u, k) => (u.nextAt = t + (k / users.length) * intervalMs));
        send({ t: 'counts', id: m.id, counts: counts() });
        break;
      }
      case 'snap':
        send({ t: 'counts', id: m.id, counts: counts() });
        break;
      case 'killed':
        killAt = m.at;
        send({ t: 'counts', id: m.id, counts: counts() });
        break;
      case 'finish':
        send({ t: 'report', id: m.id, report: await finish(m.drainMs) });
        break;
      case 'close':
        for (const u of users) u.ws?.terminate();
        setTimeout(() => process.exit(0), 50);
        break;
    }
  })().catch((err: unknown) => send({ t: 'fatal', error: (err as Error)?.stack ?? String(err) }));
});

process.on('disconnect', () => process.exit(0));
send({ t: 'ready' });
