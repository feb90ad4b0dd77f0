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
 *   sandbar_process_heap_used_bytes{worker="i"}        process.memoryUsage().heapUsed
 *   sandbar_process_resident_memory_bytes{worker="i"}  process.memoryUsage().rss
 *   sandbar_sessions{worker="i"}                       open WebSocket connections
 * The primary collects these from every worker over cluster IPC every 500 ms;
 * the worker serving the GET asks the primary for the latest set.
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
  metric('sandbar_process_heap_used_bytes', 'V8 heap used by the worker process.', (s) => s.heapUsed);
  metric('sandbar_process_resident_memory_bytes', 'Resident set size of the worker process.', (s) => s.rss);
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
      BENCH_PHOENIX_REPLY: boolFlag(f, 'phoenix-reply') ? '1' : '',
    });
    byIndex.set(i, w);
    w.on('message', (m: ToPrimary) => {
      if (m.t === 'stats') stats.set(i, m.stats);
      else if (m.t === 'metrics?') {
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
  wss.on('connection', (ws: WebSocket) => {
    ws.on('error', () => {});
    if (phoenixReply) {
      ws.on('message', (data: Buffer) => {
        let m: unknown;
        try {
          m = JSON.parse(data.toString());
        } catch {
          return;
        }
        if (Array.isArray(m) && (m[3] === 'phx_join' || m[3] === 'heartbeat')) {
          ws.send(JSON.stringify([m[0] ?? null, m[1] ?? null, m[2], 'phx_reply', { status: 'ok', response: {} }]));
        }
      });
    }
  });
  process.on('message', (m: ToWorker) => {
    if (m.t === 'collect') {
      const mem = process.memoryUsage();
      process.send!({ t: 'stats', stats: { heapUsed: mem.heapUsed, rss: mem.rss, sessions: wss.clients.size } } satisfies ToPrimary);
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

if (cluster.isPrimary) primary();
else worker();
