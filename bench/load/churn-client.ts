/**
 * One client process of bench/presence-churn.ts (forked; never run by hand).
 *
 * Observers join one room and stay; churn slots, in a loop, connect, join
 * the room with a `device` meta that carries their join time and planned
 * leave time on CLOCK_MONOTONIC (`j<ms>l<ms>`, one clock for every process
 * of the machine), close the connection at the planned time, wait a gap,
 * and again. Every observer that receives a presence change naming a churn
 * meta records receive time − join time (joins) or − planned leave time
 * (leaves) in HDR histograms (µs).
 *
 * Wire: phoenix (Sandbar: `room:<id>` join `{device}`, presence_diff pushes
 * `{joins, leaves}` keyed by user, one meta per connection) or socketio (the
 * peer's `pjoin {room, device}` event, `presence {joins, leaves}` events of
 * the same shape), both framed by hand on the same `ws` client.
 */
import { pathToFileURL } from 'node:url';
import WebSocket from 'ws';
import { build, encodeIntoCompressedBase64 } from 'hdr-histogram-js';
import type { ChurnConfig, ChurnCounts, ChurnToChild, ChurnToParent } from './churn-protocol.js';

type MintToken = (secret: string, userId: string, ttlS: number) => string;

const hJoin = build({ numberOfSignificantValueDigits: 3 });
const hLeave = build({ numberOfSignificantValueDigits: 3 });
const errors: Record<string, number> = {};
let cfg: ChurnConfig | undefined;
let mintToken: MintToken | undefined;
let recording = false;
let churning = false;
let ops = 0;
let opsJoined = 0;
let diffsSeen = 0;
const live = new Set<WebSocket>();

const nowMs = () => Number(process.hrtime.bigint() / 1000n) / 1000;
const bump = (k: string) => (errors[k] = (errors[k] ?? 0) + 1);
const send = (m: ChurnToParent) => process.connected && process.send!(m);

function record(change: Record<string, { metas?: { device?: unknown }[] }> | undefined, leave: boolean, at: number): void {
  if (!change) return;
  for (const u of Object.values(change)) {
    for (const m of u.metas ?? []) {
      const d = typeof m.device === 'string' ? /^j([\d.]+)l([\d.]+)$/.exec(m.device) : null;
      if (!d) continue;
      diffsSeen++;
      if (!recording) continue;
      const us = Math.max(1, Math.round((at - Number(leave ? d[2] : d[1])) * 1000));
      (leave ? hLeave : hJoin).recordValue(us);
    }
  }
}

/** Opens one connection, joins the room with `device`; resolves true once joined. `onPresence` gets every presence change. */
function open(user: string, device: string, observe: boolean): Promise<WebSocket | undefined> {
  const c = cfg!;
  const token = mintToken!(c.secret, user, 3600);
  const url = c.proto === 'phoenix' ? `${c.url}&token=${encodeURIComponent(token)}` : c.url;
  return new Promise((resolve) => {
    let done = false;
    let ws: WebSocket;
    const finish = (ok: boolean, why?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (!ok) {
        if (why) bump(why);
        ws.terminate();
      }
      resolve(ok ? ws : undefined);
    };
    const timer = setTimeout(() => finish(false, 'timeout'), 15000);
    try {
      ws = new WebSocket(url, { localAddress: c.localAddress, perMessageDeflate: false });
    } catch (err) {
      bump((err as Error & { code?: string }).code ?? 'ws-error');
      clearTimeout(timer);
      resolve(undefined);
      return;
    }
    live.add(ws);
    ws.on('error', (err: Error & { code?: string }) => finish(false, err.code ?? 'ws-error'));
    ws.on('close', () => {
      live.delete(ws);
      finish(false, 'closed-before-join');
    });
    const joinP = JSON.stringify(c.room);
    ws.on('open', () => {
      if (c.proto === 'phoenix') ws.send(`["1","1",${joinP},"phx_join",{"device":${JSON.stringify(device)}}]`);
    });
    ws.on('message', (data: Buffer) => {
      const text = data.toString();
      const at = nowMs();
      if (c.proto === 'phoenix') {
        // Only presence diffs and the join reply matter; other frames are skipped unparsed.
        const diff = text.includes('"presence_diff"');
        if (!diff && !(!done && text.includes('"phx_reply"'))) return;
        let f: [unknown, unknown, unknown, string, Record<string, unknown>];
        try {
          f = JSON.parse(text) as typeof f;
        } catch {
          bump('bad-frame');
          return;
        }
        if (f[3] === 'phx_reply' && f[1] === '1') finish((f[4] as { status?: string }).status === 'ok', `join-${String((f[4] as { status?: string }).status)}`);
        else if (f[3] === 'presence_diff' && observe) {
          const p = f[4] as { joins?: Record<string, { metas?: { device?: unknown }[] }>; leaves?: Record<string, { metas?: { device?: unknown }[] }> };
          record(p.joins, false, at);
          record(p.leaves, true, at);
        }
        return;
      }
      // socketio: engine.io open, Socket.IO connect, ping, ack of pjoin, presence events.
      if (text === '2') ws.send('3');
      else if (text.startsWith('0')) ws.send(`40${JSON.stringify({ token, user })}`);
      else if (text.startsWith('40')) ws.send(`421${JSON.stringify(['pjoin', { room: c.room, device }])}`);
      else if (text.startsWith('44')) finish(false, 'connect-error');
      else if (text.startsWith('431')) finish(!text.includes('"ok":false'), 'join-refused');
      else if (observe && text.startsWith('42["presence"')) {
        try {
          const p = (JSON.parse(text.slice(2)) as [string, { joins?: Record<string, { metas?: { device?: unknown }[] }>; leaves?: Record<string, { metas?: { device?: unknown }[] }> }])[1];
          record(p.joins, false, at);
          record(p.leaves, true, at);
        } catch {
          bump('bad-frame');
        }
      }
    });
  });
}

async function setupObservers(): Promise<number> {
  const c = cfg!;
  let ready = 0;
  let next = 0;
  const worker = async () => {
    while (next < c.observers) {
      const k = next++;
      if (await open(`${c.prefix}o${c.firstObserver + k}`, 'observer', true)) ready++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(32, c.observers) }, worker));
  return ready;
}

async function churnSlot(slot: number): Promise<void> {
  const c = cfg!;
  const user = `${c.prefix}c${c.childIndex}_${slot}`;
  // Spread the slots' first joins over one cycle so the churn rate is even from the start.
  await new Promise((r) => setTimeout(r, (slot / c.slots) * (c.holdMs + c.gapMs)));
  while (churning) {
    const joinAt = nowMs();
    const leaveAt = joinAt + c.holdMs;
    ops++;
    const ws = await open(user, `j${joinAt.toFixed(3)}l${leaveAt.toFixed(3)}`, false);
    if (ws) {
      opsJoined++;
      await new Promise((r) => setTimeout(r, Math.max(0, leaveAt - nowMs())));
      ws.close(1000);
    }
    await new Promise((r) => setTimeout(r, c.gapMs));
  }
}

function counts(): ChurnCounts {
  const cpu = process.cpuUsage();
  return { childIndex: cfg?.childIndex ?? -1, ops, opsJoined, diffsSeen, errors: { ...errors }, cpuMicros: cpu.user + cpu.system };
}

const slots: Promise<void>[] = [];

process.on('message', (m: ChurnToChild) => {
  void (async () => {
    switch (m.t) {
      case 'setup': {
        cfg = m.config;
        const mod = (await import(pathToFileURL(cfg.tokenModule).href)) as { mintToken: MintToken };
        mintToken = mod.mintToken;
        const ready = await setupObservers();
        send({ t: 'setup-done', id: m.id, ready });
        break;
      }
      case 'go':
        churning = true;
        for (let s = 0; s < cfg!.slots; s++) slots.push(churnSlot(s));
        send({ t: 'ok', id: m.id, counts: counts() });
        break;
      case 'record':
        recording = m.on;
        send({ t: 'ok', id: m.id, counts: counts() });
        break;
      case 'stop':
        churning = false;
        await Promise.race([Promise.all(slots), new Promise((r) => setTimeout(r, cfg!.holdMs + cfg!.gapMs + 5000))]);
        send({ t: 'report', id: m.id, counts: counts(), hJoin: encodeIntoCompressedBase64(hJoin), hLeave: encodeIntoCompressedBase64(hLeave) });
        break;
      case 'close':
        for (const ws of live) ws.terminate();
        setTimeout(() => process.exit(0), 50);
        break;
    }
  })().catch((err: unknown) => send({ t: 'fatal', error: (err as Error)?.stack ?? String(err) }));
});

process.on('disconnect', () => process.exit(0));
send({ t: 'ready' });
