/**
 * A worker's HTTP listener: fastify with the Phoenix WebSocket endpoint and
 * the health checks, plus whatever routes `register` adds. A worker opens
 * two: the public one (clients: WebSocket, LongPoll, the demo page, health)
 * and the internal one for operators (admin.host:admin.port: /metrics, the
 * cluster page and the socket it uses, health), unless admin.listener =
 * "public" puts the operator routes on the public one. Authentication runs
 * before the upgrade, so a bad token gets a plain 403 (with the reason in
 * the body and, bounded, in the log) and no session ever starts.
 */
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import websocket from '@fastify/websocket';
import type { WebSocket } from 'ws';
import { SandbarError } from '../errors.js';
import { SessionSocket } from '../actors/session.js';
import { selectProtocol, tokenFromUpgrade } from '../auth/upgrade.js';
import type { Identity } from '../auth/verifier.js';
import type { ConnectionLimits } from './limits.js';

export interface HttpHooks {
  /** Verifies a token (auth/verifier.ts); rejects with a SandbarError saying why. */
  verifyToken(token: string): Promise<Identity>;
  /** A token was refused before the upgrade (code and reason, never the token): the bounded log line. */
  onRefused?(code: string, reason: string, ip: string, transport: 'websocket' | 'longpoll'): void;
  /** auth.maxTokenBytes. */
  readonly maxTokenBytes: number;
  readonly maxFrameBytes: number;
  /** Per-IP and accept-rate limits checked before the upgrade (limits.ts); none (the internal listener): no limits. */
  readonly limits?: ConnectionLimits;
  /** PEM certificate and key: the listener speaks HTTPS/WSS (http.tlsCertFile, http.tlsKeyFile). */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer };
  /** A new authenticated socket: the worker starts its session actor. */
  onSocket(socket: WebSocket, identity: Identity): void;
  /** Closing every session (shutdown): called from fastify's preClose. */
  closeAllSessions(): void;
  /** Ready = NATS connected and not shutting down. */
  ready(): { ok: boolean; reason?: string };
  /** More routes (LongPoll, the web pages, /metrics), registered after the health checks. */
  register?(app: FastifyInstance): void;
}

declare module 'fastify' {
  interface FastifyRequest { sandbarIdentity?: Identity }
}

export async function createHttpServer(hooks: HttpHooks): Promise<FastifyInstance> {
  const app = hooks.tls
    ? Fastify({ logger: false, return503OnClosing: true, https: { cert: hooks.tls.cert, key: hooks.tls.key } }) as unknown as FastifyInstance
    : Fastify({ logger: false, return503OnClosing: true });
  await app.register(websocket, {
    options: {
      maxPayload: hooks.maxFrameBytes,
      // Our registry tracks sessions; ws's own client Set would be a second copy.
      clientTracking: false,
      handleProtocols: (offered: Set<string>) => selectProtocol(offered) ?? false,
      // Phoenix frames are small JSON; compression would cost memory per socket.
      perMessageDeflate: false,
      // A subclass of ws's WebSocket; the plugin's option type wants the class with its static helpers.
      WebSocket: SessionSocket as never,
    },
    preClose(done) {
      hooks.closeAllSessions();
      done();
    },
  });

  app.get('/health/live', async () => ({ status: 'ok' }));
  app.get('/health/ready', async (_req, reply) => {
    const r = hooks.ready();
    if (!r.ok) return reply.code(503).send({ status: 'unavailable', reason: r.reason });
    return { status: 'ready' };
  });
  hooks.register?.(app);

  app.get('/socket/websocket', {
    websocket: true,
    preValidation: async (req: FastifyRequest, reply) => {
      // Limits first: a refused connection costs no token check.
      const refused = hooks.limits?.admit(req.raw.socket);
      if (refused) {
        return reply.code(refused.status).header('retry-after', String(refused.retryAfterS)).send({ error: { code: refused.code, message: refused.message } });
      }
      const query = req.query as Record<string, unknown>;
      if (query.vsn !== undefined && query.vsn !== '2.0.0') {
        return reply.code(400).send({ error: { code: 'SANDBAR_ERR_BAD_PAYLOAD', message: `protocol vsn ${String(query.vsn)} is not supported; use vsn=2.0.0` } });
      }
      try {
        const token = tokenFromUpgrade(query, req.headers['sec-websocket-protocol'], hooks.maxTokenBytes);
        if (token === undefined) throw new SandbarError('SANDBAR_ERR_AUTH_MISSING', 'no token: pass params.token or authToken');
        req.sandbarIdentity = await hooks.verifyToken(token);
      } catch (err) {
        const e = err instanceof SandbarError ? err : new SandbarError('SANDBAR_ERR_AUTH_INVALID', 'invalid token');
        hooks.onRefused?.(e.code, e.message, req.ip, 'websocket');
        return reply.code(403).send({ error: { code: e.code, message: e.message } });
      }
    },
  }, (socket, req) => {
    // @fastify/websocket's per-socket error listener closes over the request
    // and reply, keeping both alive as long as the socket: drop it, the
    // session installs a shared one.
    socket.removeAllListeners('error');
    // The plugin also assigned a ServerResponse to the raw socket
    // (socket._httpMessage), which keeps the response and its request alive
    // for the socket's lifetime; nothing will ever be written through it.
    const raw = (socket as unknown as { _socket?: { _httpMessage?: { detachSocket?(s: unknown): void } | null } })._socket;
    raw?._httpMessage?.detachSocket?.(raw);
    const identity = req.sandbarIdentity!;
    // The request object may live on in fastify's internals; the identity lives in the session.
    req.sandbarIdentity = undefined;
    hooks.onSocket(socket, identity);
  });

  return app;
}
