/**
 * What both peer servers (ws-server.ts, socketio-server.ts) share: a
 * node:cluster primary that forks W workers with the scheduling policy asked
 * for, prints `{"msg":"host ready","port":…}` once every worker listens and
 * stops them all on SIGTERM; and in every worker an HTTP server whose
 * `GET /metrics` returns, for every worker i:
 *
 *   nodejs_heap_size_used_bytes{worker="i"}            process.memoryUsage().heapUsed
 *   process_resident_memory_bytes{worker="i"}          process.memoryUsage().rss
 *   sandbar_sessions{worker="i"}                       open sessions
 *
 * (the gauges bench/lib/metrics.ts reads of Sandbar too). The primary
 * collects them from every worker over cluster IPC every 500 ms; the worker
 * serving the GET asks the primary for the latest set.
 */
import cluster, { type Worker } from 'node:cluster';
import http from 'node:http';
import { UsageError, boolFlag, enumFlag, intFlag, parseFlags, usage, type Flags } from '../lib/args.js';

const COLLECT_MS = 500;

interface WorkerStats { heapUsed: number; rss: number; sessions: number }

/** IPC of the metrics, primary to worker and back; a peer's own messages travel beside them. */
export type StatsToWorker = { t: 'collect' } | { t: 'metrics'; id: number; text: string };
export type StatsToPrimary = { t: 'stats'; stats: WorkerStats } | { t: 'metrics?'; id: number };

/** The flags every peer takes. */
export const PEER_FLAGS: Flags = {
  help: { boolean: true, doc: 'Print this help.' },
  workers: { doc: 'Worker processes.', default: '2' },
  policy: { doc: 'cluster.schedulingPolicy: none (workers accept from the shared socket) or rr (primary accepts, hands out round-robin).', default: 'none' },
  host: { doc: 'Address to bind.', default: '127.0.0.1' },
  port: { doc: 'Port to listen on; 0 picks a free one (printed in the "host ready" line).', default: '0' },
};

function renderMetrics(stats: ReadonlyMap<number, WorkerStats>, sessionsHelp: string): string {
  const ids = [...stats.keys()].sort((a, b) => a - b);
  const lines: string[] = [];
  const metric = (name: string, help: string, pick: (s: WorkerStats) => number) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
    for (const i of ids) lines.push(`${name}{worker="${i}"} ${pick(stats.get(i)!)}`);
  };
  metric('nodejs_heap_size_used_bytes', 'V8 heap used by the worker process.', (s) => s.heapUsed);
  metric('process_resident_memory_bytes', 'Resident set size of the worker process.', (s) => s.rss);
  metric('sandbar_sessions', sessionsHelp, (s) => s.sessions);
  return lines.join('\n') + '\n';
}

function isStats(m: unknown): m is StatsToPrimary {
  const t = typeof m === 'object' && m !== null ? (m as { t?: unknown }).t : undefined;
  return t === 'stats' || t === 'metrics?';
}

export interface PeerPrimary {
  /** The peer's name in messages ("ws-server"). */
  readonly name: string;
  /** The first line of --help. */
  readonly title: string;
  readonly flags: Flags;
  /** Help text of the sandbar_sessions gauge. */
  readonly sessionsHelp: string;
  /** Environment of worker i besides BENCH_WORKER_INDEX, BENCH_HOST and BENCH_PORT. */
  readonly env?: (f: Map<string, string>, i: number) => Record<string, string>;
  /** Called once before the first fork (the Socket.IO adapter's relay). */
  readonly setup?: () => void;
  /** A worker's IPC message that is not about metrics. */
  readonly onMessage?: (from: number, m: unknown, workers: ReadonlyMap<number, Worker>) => void;
}

/** Runs the primary: parses the flags (a bad one prints the usage, exit 2), forks the workers, relays metrics, stops on SIGTERM. */
export function runPeerPrimary(p: PeerPrimary): void {
  let f: Map<string, string>;
  try {
    f = parseFlags(process.argv.slice(2), p.flags);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`error: ${err.message}\n\n${usage(`bench/peers/${p.name}`, p.flags)}`);
      process.exit(2);
    }
    throw err;
  }
  if (boolFlag(f, 'help')) {
    console.log(usage(p.title, p.flags));
    process.exit(0);
  }
  const workers = intFlag(f, 'workers', 2, 1);
  const policy = enumFlag(f, 'policy', ['none', 'rr'] as const, 'none');
  // Must be set before the first fork.
  cluster.schedulingPolicy = policy === 'rr' ? cluster.SCHED_RR : cluster.SCHED_NONE;
  p.setup?.();

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
    const w = cluster.fork({ BENCH_WORKER_INDEX: String(i), BENCH_HOST: f.get('host') ?? '127.0.0.1', BENCH_PORT: String(intFlag(f, 'port', 0)), ...p.env?.(f, i) });
    byIndex.set(i, w);
    w.on('message', (m: unknown) => {
      if (!isStats(m)) return p.onMessage?.(i, m, byIndex);
      if (m.t === 'stats') stats.set(i, m.stats);
      else w.send({ t: 'metrics', id: m.id, text: renderMetrics(stats, p.sessionsHelp) } satisfies StatsToWorker);
    });
    w.on('listening', (addr) => {
      boundPort = addr.port;
      if (++listening === workers) {
        // Collect once before announcing, so the first /metrics has every worker.
        for (const x of byIndex.values()) x.send({ t: 'collect' } satisfies StatsToWorker);
        setTimeout(() => {
          process.stdout.write(JSON.stringify({ msg: 'host ready', port: boundPort, workers, policy, pid: process.pid }) + '\n');
        }, 100);
      }
    });
    w.on('exit', (code, signal) => {
      if (stopping) return;
      process.stderr.write(`${p.name}: worker ${i} exited (${code ?? signal}); stopping\n`);
      stop(1);
    });
  }
  setInterval(() => {
    for (const w of byIndex.values()) if (w.isConnected()) w.send({ t: 'collect' } satisfies StatsToWorker);
  }, COLLECT_MS);
}

/**
 * A worker's HTTP server: `GET /metrics` answered from the primary's latest
 * set, other requests to `other` (404 by default). It listens on
 * BENCH_HOST:BENCH_PORT; after that, errors are failed accepts (EMFILE past
 * the open-file limit), counted and reported instead of ending the worker,
 * as a real server would. `sessions` is read at every collection; messages
 * from the primary that are not about metrics go to `onMessage`.
 */
export function peerWorkerServer(o: { name: string; sessions: () => number; other?: http.RequestListener; onMessage?: (m: unknown) => void }): http.Server {
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
      process.send!({ t: 'metrics?', id } satisfies StatsToPrimary);
      return;
    }
    if (o.other) o.other(req, res);
    else res.writeHead(404).end();
  });
  process.on('message', (m: unknown) => {
    if (typeof m !== 'object' || m === null) return;
    const msg = m as StatsToWorker;
    if (msg.t === 'collect') {
      const mem = process.memoryUsage();
      process.send!({ t: 'stats', stats: { heapUsed: mem.heapUsed, rss: mem.rss, sessions: o.sessions() } } satisfies StatsToPrimary);
    } else if (msg.t === 'metrics') {
      const cb = waiting.get(msg.id);
      waiting.delete(msg.id);
      cb?.(msg.text);
    } else {
      o.onMessage?.(m);
    }
  });
  process.on('disconnect', () => process.exit(0));
  let acceptErrors = 0;
  server.once('listening', () => {
    server.on('error', (err: Error & { code?: string }) => {
      if (acceptErrors++ % 1000 === 0) process.stderr.write(`${o.name} worker ${process.env.BENCH_WORKER_INDEX}: ${err.code ?? err.message} (${acceptErrors} so far)\n`);
    });
  });
  // Listening is the caller's last step (after its handlers are attached): see listenPeer.
  return server;
}

/** Starts listening on BENCH_HOST:BENCH_PORT. */
export function listenPeer(server: http.Server): void {
  server.listen(Number(process.env.BENCH_PORT ?? 0), process.env.BENCH_HOST ?? '127.0.0.1');
}
