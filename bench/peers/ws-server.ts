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
import cluster, { type Worker } from 'node:cluster';
import http from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';
import { UsageError, boolFlag, enumFlag, intFlag, parseFlags, usage, type Flags } from '../lib/args.js';

const FLAGS: Flags = {
  help: { boolean: true, doc: 'Print this help.' },
  workers: { doc: 'Worker processes.', default: '2' },
  policy: { doc: 'cluster.schedulingPolicy: none (workers accept from the shared socket) or rr (primary accepts, hands out round-robin).', default: 'none' },
  host: { doc: 'Address to bind.', default: '127.0.0.1' },
  port: { doc: 'Port to listen on; 0 picks a free one (printed in the "host ready" line).', default: '0' },
  'phoenix-reply': { boolean: true, doc: 'Answer phx_join and heartbeat frames with phx_reply {"status":"ok"} (lets the fleet\'s phoenix mode run against this peer; off = bare).' },
  broadcast: { boolean: true, doc: 'Room broadcast floor for bench/room-fanout (implies --phoenix-reply): msg pushes on room:* reach every joined socket of every worker, relayed by the primary over IPC.' },
};

const COLLECT_MS = 500;

interface WorkerStats { heapUsed: number; rss: number; sessions: number }

type ToWorker = { t: 'collect' } | { t: 'metrics'; id: number; text: string } | { t: 'bcast'; topic: string; frame: string };
type ToPrimary = { t: 'stats'; stats: WorkerStats } | { t: 'metrics?'; id: number } | { t: 'bcast'; topic: string; frame: string };

function renderMetrics(stats: ReadonlyMap<number, WorkerStats>): string {
  const ids = [...stats.keys()].sort((a, b) => a - b);
  const lines: string[] = [];
  const metric = (name: string, help: string, pick: (s: WorkerStats) => number) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
    for (const i of ids) lines.push(`${name}{worker="${i}"} ${pick(stats.get(i)!)}`);
  };
  metric('nodejs_heap_size_used_bytes', 'V8 heap used by the worker process.', (s) => s.heapUsed);
  metric('process_resident_memory_bytes', 'Resident set size of the worker process.', (s) => s.rss);
  metric('sandbar_sessions', 'Open WebSocket sessions in the worker.', (s) => s.sessions);
  return lines.join('\n') + '\n';
}

function primary(): void {
  let f: Map<string, string>;
  try {
    f = parseFlags(process.argv.slice(2), FLAGS);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`error: ${err.message}\n\n${usage('bench/peers/ws-server', FLAGS)}`);
      process.exit(2);
    }
    throw err;
  }
  if (boolFlag(f, 'help')) {
    console.log(usage('bench/peers/ws-server: bare ws in node:cluster, the floor peer for Sandbar benches.', FLAGS));
    process.exit(0);
  }
  const workers = intFlag(f, 'workers', 2, 1);
  const policy = enumFlag(f, 'policy', ['none', 'rr'] as const, 'none');
  const port = intFlag(f, 'port', 0);
  const host = f.get('host') ?? '127.0.0.1';
  // Must be set before the first fork.
  cluster.schedulingPolicy = policy === 'rr' ? cluster.SCHED_RR : cluster.SCHED_NONE;

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
      BENCH_HOST: host,
      BENCH_PORT: String(port),
      BENCH_PHOENIX_REPLY: boolFlag(f, 'phoenix-reply') || boolFlag(f, 'broadcast') ? '1' : '',
      BENCH_BROADCAST: boolFlag(f, 'broadcast') ? '1' : '',
    });
    byIndex.set(i, w);
    w.on('message', (m: ToPrimary) => {
      if (m.t === 'stats') stats.set(i, m.stats);
      else if (m.t === 'bcast') {
        // Relay a room broadcast to every other worker.
        for (const [j, x] of byIndex) if (j !== i && x.isConnected()) x.send(m satisfies ToWorker);
      } else if (m.t === 'metrics?') {
        const reply: ToWorker = { t: 'metrics', id: m.id, text: renderMetrics(stats) };
        w.send(reply);
      }
    });
    w.on('listening', (addr) => {
      boundPort = addr.port;
      if (++listening === workers) {
        // Collect once before announcing, so the first /metrics has every worker.
        for (const x of byIndex.values()) x.send({ t: 'collect' } satisfies ToWorker);
        setTimeout(() => {
          process.stdout.write(JSON.stringify({ msg: 'host ready', port: boundPort, workers, policy, pid: process.pid }) + '\n');
        }, 100);
      }
    });
    w.on('exit', (code, signal) => {
      if (stopping) return;
      process.stderr.write(`ws-server: worker ${i} exited (${code ?? signal}); stopping\n`);
      stop(1);
    });
  }
  setInterval(() => {
    for (const w of byIndex.values()) if (w.isConnected()) w.send({ t: 'collect' } satisfies ToWorker);
  }, COLLECT_MS);
}

function worker(): void {
  const host = process.env.BENCH_HOST ?? '127.0.0.1';
  const port = Number(process.env.BENCH_PORT ?? 0);
  const phoenixReply = process.env.BENCH_PHOENIX_REPLY === '1';
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
    res.writeHead(404).end();
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
          process.send!({ t: 'bcast', topic, frame } satisfies ToPrimary);
          fanout(topic, Buffer.from(frame));
        }
      });
    }
  });
  process.on('message', (m: ToWorker) => {
    if (m.t === 'collect') {
      const mem = process.memoryUsage();
      process.send!({ t: 'stats', stats: { heapUsed: mem.heapUsed, rss: mem.rss, sessions: wss.clients.size } } satisfies ToPrimary);
    } else if (m.t === 'bcast') {
      fanout(m.topic, Buffer.from(m.frame));
    } else if (m.t === 'metrics') {
      const cb = waiting.get(m.id);
      waiting.delete(m.id);
      cb?.(m.text);
    }
  });
  process.on('disconnect', () => process.exit(0));
  let acceptErrors = 0;
  server.once('listening', () => {
    // After listen succeeded, errors are failed accepts (EMFILE past the open-file
    // limit): count and report them instead of dying, as a real server would.
    server.on('error', (err: Error & { code?: string }) => {
      if (acceptErrors++ % 1000 === 0) process.stderr.write(`ws-server worker ${process.env.BENCH_WORKER_INDEX}: ${err.code ?? err.message} (${acceptErrors} so far)\n`);
    });
  });
  server.listen(port, host);
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
