/**
 * A worker's listeners, opened by every worker on the same ports (node:cluster
 * shares them):
 *
 * - **public** (`http.host`:`http.port`): clients. The Phoenix WebSocket and
 *   LongPoll endpoints under the connection limits, the demo page, health.
 * - **internal** (`admin.host`:`admin.port`, loopback by default): operators.
 *   `/metrics`, the cluster page with its token endpoint and the socket it
 *   joins `cluster:live` on (no connection limits: an operator gets in during
 *   a reconnect storm that the public port sheds), health.
 *
 * With `admin.listener = "public"` there is one listener serving both sets.
 */
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { WebSocket } from 'ws';
import type { SandbarConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import type { ScrapeResult } from '../observability/gather.js';
import type { Identity } from '../auth/verifier.js';
import { registerWeb } from '../web/routes.js';
import { createHttpServer } from './server.js';
import { ConnectionLimits } from './limits.js';
import { registerLongPoll } from './longpoll-route.js';
import { registerMetrics } from './metrics-route.js';
import type { LongPollRegistry } from './longpoll.js';

/** What the listeners need of their worker. */
export interface ListenerHost {
  /** Verifies a token (auth/verifier.ts); rejects with a SandbarError saying why. */
  verifyToken(token: string): Promise<Identity>;
  /** A token refused before the upgrade: the bounded log line and the counters (auth/refusal-log.ts). */
  onRefused(code: string, reason: string, ip: string, transport: 'websocket' | 'longpoll'): void;
  onSocket(socket: WebSocket, identity: Identity): void;
  closeAllSessions(): void;
  ready(): { ok: boolean; reason?: string };
  /** The LongPoll registry, once the chat side has started (null before: a poll hears "session gone" and retries). */
  longpoll(): Pick<LongPollRegistry, 'handle'> | null;
  /** The host's metrics, gathered by the primary. */
  scrape(): Promise<ScrapeResult>;
}

export interface Listeners {
  readonly apps: readonly FastifyInstance[];
  /** The public port, and the internal one (null with admin.listener = "public"). */
  readonly port: number;
  readonly adminPort: number | null;
}

/** Builds the listeners' apps (routes registered, nothing listening yet); `listen()` opens them. */
export async function createListeners(config: SandbarConfig, logger: Logger, host: ListenerHost): Promise<{ apps: FastifyInstance[]; listen(): Promise<Listeners> }> {
  const web = { secret: config.auth.secret, devTokenEndpoint: config.auth.devTokenEndpoint, adminToken: config.admin.token, tokenTtlS: config.auth.tokenTtlS };
  const longpoll = { handle: (r: Parameters<LongPollRegistry['handle']>[0]) => host.longpoll()?.handle(r) ?? Promise.resolve({ status: 410 as const, token: null }) };
  const shared = {
    verifyToken: (token: string) => host.verifyToken(token),
    onRefused: (code: string, reason: string, ip: string, transport: 'websocket' | 'longpoll') => host.onRefused(code, reason, ip, transport),
    maxTokenBytes: config.auth.maxTokenBytes,
    maxFrameBytes: config.session.maxFrameBytes,
    onSocket: (socket: WebSocket, identity: Identity) => host.onSocket(socket, identity),
    closeAllSessions: () => host.closeAllSessions(),
    ready: () => host.ready(),
  };
  const onePort = config.admin.listener === 'public';
  const limits = new ConnectionLimits({ ...config.http, workers: config.cluster.workers }, logger);
  const pub = await createHttpServer({
    ...shared,
    limits,
    ...(config.http.tlsCertFile && config.http.tlsKeyFile ? { tls: { cert: readFileSync(config.http.tlsCertFile), key: readFileSync(config.http.tlsKeyFile) } } : {}),
    register: (app) => {
      registerLongPoll(app, longpoll, config.session.maxFrameBytes, limits);
      registerWeb(app, web, { demo: true, cluster: onePort });
      if (onePort) registerMetrics(app, () => host.scrape());
    },
  });
  const internal = onePort ? null : await createHttpServer({
    ...shared,
    register: (app) => {
      registerLongPoll(app, longpoll, config.session.maxFrameBytes);
      registerWeb(app, web, { demo: false, cluster: true });
      registerMetrics(app, () => host.scrape());
    },
  });
  const apps = internal ? [pub, internal] : [pub];
  return {
    apps,
    async listen(): Promise<Listeners> {
      const port = await listenOn(pub, config.http.host, config.http.port, 'http');
      const adminPort = internal ? await listenOn(internal, config.admin.host, config.admin.port, 'admin') : null;
      return { apps, port, adminPort };
    },
  };
}

/** Listens and answers the port; a failure names the keys to change. */
async function listenOn(app: FastifyInstance, host: string, port: number, keys: 'http' | 'admin'): Promise<number> {
  try {
    await app.listen({ host, port });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new Error(`cannot listen on ${host}:${port} (${keys}.host, ${keys}.port): ${code}${code === 'EADDRINUSE' ? ' (another process, or another Sandbar host on this machine, holds the port: give each host its own, or 0)' : ''}`, { cause: err });
  }
  const addr = app.server.address();
  return typeof addr === 'object' && addr ? addr.port : port;
}
