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
import cluster, { type Worker } from 'node:cluster';
import http from 'node:http';
import { Server, type Socket } from 'socket.io';
import { jwtVerify } from 'jose';
import { createAdapter, setupPrimary } from '@socket.io/cluster-adapter';
import { UsageError, boolFlag, enumFlag, intFlag, parseFlags, usage, type Flags } from '../lib/args.js';

const FLAGS: Flags = {
  help: { boolean: true, doc: 'Print this help.' },
  workers: { doc: 'Worker processes.', default: '2' },
  policy: { doc: 'cluster.schedulingPolicy: none or rr.', default: 'none' },
  host: { doc: 'Address to bind.', default: '127.0.0.1' },
  port: { doc: 'Port to listen on; 0 picks a free one (printed in the "host ready" line).', default: '0' },
  secret: { doc: 'Verify the CONNECT auth token with this HMAC secret (as Sandbar does); without it, auth.user is trusted.' },
};

const COLLECT_MS = 500;

interface WorkerStats { heapUsed: number; rss: number; sessions: number }
type ToWorker = { t: 'collect' } | { t: 'metrics'; id: number; text: string };
type ToPrimary = { t: 'stats'; stats: WorkerStats } | { t: 'metrics?'; id: number };

function renderMetrics(stats: ReadonlyMap<number, WorkerStats>): string {
  const ids = [...stats.keys()].sort((a, b) => a - b);
  const lines: string[] = [];
  const metric = (name: string, help: string, pick: (s: WorkerStats) => number) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
    for (const i of ids) lines.push(`${name}{worker="${i}"} ${pick(stats.get(i)!)}`);
  };
  metric('nodejs_heap_size_used_bytes', 'V8 heap used by the worker process.', (s) => s.heapUsed);
  metric('process_resident_memory_bytes', 'Resident set size of the worker process.', (s) => s.rss);
  metric('sandbar_sessions', 'Connected Socket.IO sockets in the worker.', (s) => s.sessions);
  return lines.join('\n') + '\n';
}

function isOurs(m: unknown): m is ToPrimary {
  return typeof m === 'object' && m !== null && ((m as { t?: unknown }).t === 'stats' || (m as { t?: unknown }).t === 'metrics?');
}

function primary(): void {
  let f: Map<string, string>;
  try {
    f = parseFlags(process.argv.slice(2), FLAGS);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`error: ${err.message}\n\n${usage('bench/peers/socketio-server', FLAGS)}`);
      process.exit(2);
    }
    throw err;
  }
  if (boolFlag(f, 'help')) {
    console.log(usage('bench/peers/socketio-server: Socket.IO 4 + @socket.io/cluster-adapter in node:cluster, the peer for bench/dm.', FLAGS));
    process.exit(0);
  }
  const workers = intFlag(f, 'workers', 2, 1);
  const policy = enumFlag(f, 'policy', ['none', 'rr'] as const, 'none');
  cluster.schedulingPolicy = policy === 'rr' ? cluster.SCHED_RR : cluster.SCHED_NONE;
  // The adapter's relay: every broadcast a worker publishes goes to every other worker.
  setupPrimary();

  const stats = new Map<number, WorkerStats>();
  const byIndex = new Map<number, Worker>();
  let listening = 0;
  let boundPort = 0;
  let stopping = false;
  const stop = (code: number) => {
    stopping = true;
    for (const w of byIndex.values()) w.process.kill('SIGKILL');
    process.exit(code);
  };
  process.on('SIGTERM', () => stop(0));
  process.on('SIGINT', () => stop(0));

  for (let i = 0; i < workers; i++) {
    const w = cluster.fork({
      BENCH_WORKER_INDEX: String(i),
      BENCH_HOST: f.get('host') ?? '127.0.0.1',
      BENCH_PORT: String(intFlag(f, 'port', 0)),
      BENCH_SIO_SECRET: f.get('secret') ?? '',
    });
    byIndex.set(i, w);
    w.on('message', (m: unknown) => {
      if (!isOurs(m)) return; // the cluster adapter's own messages
      if (m.t === 'stats') stats.set(i, m.stats);
      else w.send({ t: 'metrics', id: m.id, text: renderMetrics(stats) } satisfies ToWorker);
    });
    w.on('listening', (addr) => {
      boundPort = addr.port;
      if (++listening === workers) {
        for (const x of byIndex.values()) x.send({ t: 'collect' } satisfies ToWorker);
        setTimeout(() => {
          process.stdout.write(JSON.stringify({ msg: 'host ready', port: boundPort, workers, policy, pid: process.pid }) + '\n');
        }, 100);
      }
    });
    w.on('exit', (code, signal) => {
      if (stopping) return;
      process.stderr.write(`socketio-server: worker ${i} exited (${code ?? signal}); stopping\n`);
      stop(1);
    });
  }
  setInterval(() => {
    for (const w of byIndex.values()) if (w.isConnected()) w.send({ t: 'collect' } satisfies ToWorker);
  }, COLLECT_MS);
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

  let nextId = 1;
  const waiting = new Map<number, (text: string) => void>();
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/metrics') {
      const id = nextId++;
      const timer = setTimeout(() => {
        waiting.delete(id);
        res.writeHead(503).end('primary did not answer\n');
      }, 2000);
      waiting.set(id, (text) => {
        clearTimeout(timer);
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(text);
      });
      process.send!({ t: 'metrics?', id } satisfies ToPrimary);
      return;
    }
    // socket.io handles /socket.io/ on its own listener; everything else is 404.
    if (!req.url?.startsWith('/socket.io/')) res.writeHead(404).end();
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

  process.on('message', (m: unknown) => {
    if (typeof m !== 'object' || m === null) return;
    const msg = m as ToWorker;
    if (msg.t === 'collect') {
      const mem = process.memoryUsage();
      process.send!({ t: 'stats', stats: { heapUsed: mem.heapUsed, rss: mem.rss, sessions: io.engine.clientsCount } } satisfies ToPrimary);
    } else if (msg.t === 'metrics') {
      const cb = waiting.get(msg.id);
      waiting.delete(msg.id);
      cb?.(msg.text);
    }
  });
  process.on('disconnect', () => process.exit(0));
  let acceptErrors = 0;
  server.once('listening', () => {
    server.on('error', (err: Error & { code?: string }) => {
      if (acceptErrors++ % 1000 === 0) process.stderr.write(`socketio-server worker ${index}: ${err.code ?? err.message} (${acceptErrors} so far)\n`);
    });
  });
  server.listen(Number(process.env.BENCH_PORT ?? 0), process.env.BENCH_HOST ?? '127.0.0.1');
}

if (cluster.isPrimary) primary();
else
  worker().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
