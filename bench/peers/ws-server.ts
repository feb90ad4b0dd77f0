/**
 * The floor peer: a bare `ws` WebSocketServer (default options) in each of W
 * node:cluster workers, with the same scheduling-policy choice as Sandbar.
 * It does nothing per session beyond what `ws` does, so whatever Sandbar costs
 * above it is Sandbar's own.
 *
 *   node dist/bench/peers/ws-server.js --workers 2 --policy none --port 0
 *
 * Prints `{"msg":"host ready","port":<port>,...}` on stdout once every worker
 * listens. `GET /metrics` (on any worker) returns, for every worker i:
 *   nodejs_heap_size_used_bytes{worker="i"}            process.memoryUsage().heapUsed
 *   process_resident_memory_bytes{worker="i"}          process.memoryUsage().rss
 *   sandbar_sessions{worker="i"}                       open WebSocket connections
 * The primary collects these from every worker over cluster IPC every 500 ms;
 * the worker serving the GET asks the primary for the latest set.
 *
 * --broadcast (for bench/room-fanout.ts) makes it the floor for a room
 * broadcast, speaking just enough Phoenix V2 for the bench's client:
 *   phx_join echo:*  -> ok {session: "ws.<worker>.<n>"} (tells the client its worker)
 *   phx_join room:*  -> ok {}; the socket is added to that topic's Set in its worker
 *   msg on room:*    -> ok {seq}; the frame [null,null,topic,"msg",{from,seq,id,body,at}]
 *                      is built once, turned into a Buffer once and written to every
 *                      local member; the worker also sends the frame text to the
 *                      primary over the cluster IPC channel, which forwards it to every
 *                      other worker, where it is written to their members the same way.
 * The primary relay is the cheapest way a broadcast reaches every worker of a
 * node:cluster server without a broker: one IPC message per other worker per
 * broadcast. No presence, history or authentication (the token is decoded,
 * not verified, for the "from" field).
 */
import cluster from 'node:cluster';
import type http from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Flags } from '../lib/args.js';
import { PEER_FLAGS, listenPeer, peerWorkerServer, runPeerPrimary } from './peer-cluster.js';

const FLAGS: Flags = {
  ...PEER_FLAGS,
  'phoenix-reply': { boolean: true, doc: 'Answer phx_join and heartbeat frames with phx_reply {"status":"ok"} (lets the fleet\'s phoenix mode run against this peer; off = bare).' },
  broadcast: { boolean: true, doc: 'Room broadcast floor for bench/room-fanout (implies --phoenix-reply): msg pushes on room:* reach every joined socket of every worker, relayed by the primary over IPC.' },
};

/** A room broadcast, from the worker that took the msg to the primary, which relays it to every other worker. */
type Bcast = { t: 'bcast'; topic: string; frame: string };

function primary(): void {
  runPeerPrimary({
    name: 'ws-server',
    title: 'bench/peers/ws-server: bare ws in node:cluster, the floor peer for Sandbar benches.',
    flags: FLAGS,
    sessionsHelp: 'Open WebSocket sessions in the worker.',
    env: (f) => ({
      BENCH_PHOENIX_REPLY: f.get('phoenix-reply') === 'true' || f.get('broadcast') === 'true' ? '1' : '',
      BENCH_BROADCAST: f.get('broadcast') === 'true' ? '1' : '',
    }),
    onMessage: (from, m, workers) => {
      // Relay a room broadcast to every other worker.
      if ((m as Bcast).t === 'bcast') for (const [j, x] of workers) if (j !== from && x.isConnected()) x.send(m as Bcast);
    },
  });
}

function worker(): void {
  const phoenixReply = process.env.BENCH_PHOENIX_REPLY === '1';
  // The closures below run on IPC messages, after this function has set everything up.
  const server = peerWorkerServer({
    name: 'ws-server',
    sessions: () => wss.clients.size,
    onMessage: (m) => { if ((m as Bcast).t === 'bcast') fanout((m as Bcast).topic, Buffer.from((m as Bcast).frame)); },
  });
  const wss = new WebSocketServer({ server });
  const broadcast = process.env.BENCH_BROADCAST === '1';
  const index = process.env.BENCH_WORKER_INDEX ?? '0';
  /** --broadcast: room topic -> the sockets of this worker joined to it. */
  const rooms = new Map<string, Set<WebSocket>>();
  const joinedOf = new WeakMap<WebSocket, { user: string; topics: Set<string> }>();
  let nextSession = 0;
  let seq = 0;
  const fanout = (topic: string, frame: Buffer) => {
    const members = rooms.get(topic);
    if (members) for (const s of members) s.send(frame, { binary: false });
  };
  const reply = (ws: WebSocket, m: unknown[], response: unknown) => {
    ws.send(JSON.stringify([m[0] ?? null, m[1] ?? null, m[2], 'phx_reply', { status: 'ok', response }]));
  };
  wss.on('connection', (ws: WebSocket, req: http.IncomingMessage) => {
    ws.on('error', () => {});
    if (broadcast) {
      joinedOf.set(ws, { user: userOf(req.url), topics: new Set() });
      ws.on('close', () => {
        for (const t of joinedOf.get(ws)?.topics ?? []) {
          const set = rooms.get(t);
          set?.delete(ws);
          if (set && set.size === 0) rooms.delete(t);
        }
      });
    }
    if (phoenixReply) {
      ws.on('message', (data: Buffer) => {
        let m: unknown;
        try {
          m = JSON.parse(data.toString());
        } catch {
          return;
        }
        if (!Array.isArray(m)) return;
        const topic = typeof m[2] === 'string' ? m[2] : '';
        if (m[3] === 'phx_join' || m[3] === 'heartbeat') {
          if (broadcast && topic.startsWith('room:')) {
            let set = rooms.get(topic);
            if (!set) rooms.set(topic, (set = new Set()));
            set.add(ws);
            joinedOf.get(ws)!.topics.add(topic);
          }
          reply(ws, m, broadcast && topic.startsWith('echo:') ? { session: `ws.${index}.${(nextSession++).toString(36)}` } : {});
        } else if (broadcast && m[3] === 'msg' && joinedOf.get(ws)?.topics.has(topic)) {
          const p = (m[4] ?? {}) as { id?: unknown; body?: unknown };
          const s = ++seq;
          reply(ws, m, { seq: s });
          const frame = JSON.stringify([null, null, topic, 'msg', { from: joinedOf.get(ws)!.user, seq: s, id: p.id ?? String(s), body: p.body, at: Date.now() }]);
          process.send!({ t: 'bcast', topic, frame } satisfies Bcast);
          fanout(topic, Buffer.from(frame));
        }
      });
    }
  });
  listenPeer(server);
}

/** The user id in a Sandbar token's payload (decoded, not verified: the peer only needs a "from"). */
function userOf(url: string | undefined): string {
  try {
    const token = new URL(url ?? '/', 'http://x').searchParams.get('token') ?? '';
    const u = (JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString()) as { u?: unknown }).u;
    return typeof u === 'string' ? u : 'anonymous';
  } catch {
    return 'anonymous';
  }
}

if (cluster.isPrimary) primary();
else worker();
