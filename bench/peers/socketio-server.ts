/**
 * The Socket.IO peer: Socket.IO 4 in W node:cluster workers, joined by
 * `@socket.io/cluster-adapter` (the primary relays every broadcast to the
 * other workers over the cluster IPC channel), the usual way to run Socket.IO
 * on several cores of one host without Redis.
 *
 *   node dist/bench/peers/socketio-server.js --workers 2 --policy none --port 0 [--secret S]
 *
 * Transport: WebSocket only (`transports: ["websocket"]`), so a connection is
 * one upgrade and needs no sticky sessions (polling would: its requests must
 * all reach the worker that holds the session, hence `@socket.io/sticky`).
 *
 * Per connection: the CONNECT packet's auth `{token}` is checked with the
 * same token as Sandbar's default (an HS256 JWT, verified with jose as Sandbar does)
 * when --secret is given, else `{user}` is taken as it is; the socket joins a
 * room named after its user id. Events:
 *   whoami (ack)           -> ack {w: <worker index>}
 *   dm {to, id, body} (ack) -> io.to(to).emit("dm", {from, id, body, at}), then ack {ok: true}
 *                             (every socket of user `to`, on any worker)
 *   join room (ack)        -> socket.join("room:" + room), ack {ok: true}
 *   msg {room, id, body} (ack) -> io.to("room:" + room).emit("msg", {from, seq, id, body, at}), ack {ok: true, seq}
 *   pjoin {room, device} (ack) -> socket.join("room:" + room), io.to(room).emit("presence", {joins: {user: {metas: [{device, online_at}]}}, leaves: {}});
 *                              on disconnect the other members get the same with `leaves` (bench/presence-churn)
 * The ack means the server emitted; Socket.IO keeps nothing (Sandbar's ok
 * means the recipient's user actor stored the message).
 *
 * Prints `{"msg":"host ready","port":…}` once every worker listens; `GET
 * /metrics` gives the same per-worker gauges as bench/peers/ws-server.ts.
 */
import cluster from 'node:cluster';
import { Server, type Socket } from 'socket.io';
import { jwtVerify } from 'jose';
import { createAdapter, setupPrimary } from '@socket.io/cluster-adapter';
import type { Flags } from '../lib/args.js';
import { PEER_FLAGS, listenPeer, peerWorkerServer, runPeerPrimary } from './peer-cluster.js';

const FLAGS: Flags = {
  ...PEER_FLAGS,
  secret: { doc: 'Verify the CONNECT auth token with this HMAC secret (as Sandbar does); without it, auth.user is trusted.' },
};

function primary(): void {
  runPeerPrimary({
    name: 'socketio-server',
    title: 'bench/peers/socketio-server: Socket.IO 4 + @socket.io/cluster-adapter in node:cluster, the peer for bench/dm.',
    flags: FLAGS,
    sessionsHelp: 'Connected Socket.IO sockets in the worker.',
    env: (f) => ({ BENCH_SIO_SECRET: f.get('secret') ?? '' }),
    // The adapter's relay: every broadcast a worker publishes goes to every other worker (its messages pass the metrics by).
    setup: () => setupPrimary(),
  });
}

type VerifyToken = (token: unknown) => Promise<string>;

async function worker(): Promise<void> {
  const index = Number(process.env.BENCH_WORKER_INDEX ?? 0);
  const secret = process.env.BENCH_SIO_SECRET ?? '';
  let verify: VerifyToken | undefined;
  if (secret) {
    // Imported once, as Sandbar's verifier does (auth/keys.ts).
    const key = await crypto.subtle.importKey('raw', new TextEncoder().encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
    verify = async (token) => {
      if (typeof token !== 'string') throw new Error('no token');
      const { payload } = await jwtVerify(token, key, { algorithms: ['HS256'], requiredClaims: ['sub', 'exp'], clockTolerance: 10 });
      return String(payload.sub);
    };
  }

  // socket.io handles /socket.io/ on its own listener; everything else is 404.
  const server = peerWorkerServer({
    name: 'socketio-server',
    sessions: () => io.engine.clientsCount,
    other: (req, res) => { if (!req.url?.startsWith('/socket.io/')) res.writeHead(404).end(); },
  });
  const io = new Server(server, { transports: ['websocket'], serveClient: false, perMessageDeflate: false, adapter: createAdapter() });

  io.use((socket, next) => {
    const auth = socket.handshake.auth as { token?: unknown; user?: unknown };
    (verify ? verify(auth.token) : Promise.resolve(String(auth.user ?? ''))).then((user) => {
      if (!user) throw new Error('no user');
      socket.data.user = user;
      next();
    }).catch((err: Error) => next(new Error(`auth: ${err.message}`)));
  });

  let seq = 0;
  io.on('connection', (socket: Socket) => {
    const user = socket.data.user as string;
    void socket.join(user);
    socket.on('whoami', (ack?: (r: unknown) => void) => {
      if (typeof ack === 'function') ack({ w: index });
    });
    socket.on('dm', (p: { to?: unknown; id?: unknown; body?: unknown }, ack?: (r: unknown) => void) => {
      if (!p || typeof p.to !== 'string') {
        if (typeof ack === 'function') ack({ ok: false, code: 'bad-payload' });
        return;
      }
      io.to(p.to).emit('dm', { from: user, id: p.id, body: p.body, at: Date.now() });
      if (typeof ack === 'function') ack({ ok: true });
    });
    socket.on('join', (room: unknown, ack?: (r: unknown) => void) => {
      if (typeof room === 'string') void socket.join(`room:${room}`);
      if (typeof ack === 'function') ack({ ok: typeof room === 'string' });
    });
    // Presence for bench/presence-churn: join a room with a device meta, and every member hears of the join and the leave
    // (the same {joins, leaves} shape, keyed by user, as Sandbar's presence_diff).
    socket.on('pjoin', (p: { room?: unknown; device?: unknown }, ack?: (r: unknown) => void) => {
      if (!p || typeof p.room !== 'string') {
        if (typeof ack === 'function') ack({ ok: false, code: 'bad-payload' });
        return;
      }
      const room = `room:${p.room}`;
      const meta = { device: p.device, online_at: Date.now() };
      socket.data.presence = { room, meta };
      void socket.join(room);
      io.to(room).emit('presence', { joins: { [user]: { metas: [meta] } }, leaves: {} });
      if (typeof ack === 'function') ack({ ok: true });
    });
    socket.on('disconnecting', () => {
      const pr = socket.data.presence as { room: string; meta: unknown } | undefined;
      if (pr) socket.to(pr.room).emit('presence', { joins: {}, leaves: { [user]: { metas: [pr.meta] } } });
    });
    socket.on('msg', (p: { room?: unknown; id?: unknown; body?: unknown }, ack?: (r: unknown) => void) => {
      if (!p || typeof p.room !== 'string') {
        if (typeof ack === 'function') ack({ ok: false, code: 'bad-payload' });
        return;
      }
      const s = ++seq;
      io.to(`room:${p.room}`).emit('msg', { from: user, seq: s, id: p.id, body: p.body, at: Date.now() });
      if (typeof ack === 'function') ack({ ok: true, seq: s });
    });
  });

  listenPeer(server);
}

if (cluster.isPrimary) primary();
else
  worker().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
