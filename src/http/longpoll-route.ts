/**
 * `GET|POST /socket/longpoll`: parses what the phoenix client sends and hands
 * it to the worker's LongPollRegistry (src/http/longpoll.ts).
 *
 * The client puts both tokens in `token` query parameters when the socket
 * params carry the auth token (`?token=<auth>&vsn=2.0.0&token=<lp token>`),
 * so the parameter may repeat: a value starting `lp.` is the session token,
 * any other is the auth token. `X-Phoenix-AuthToken` carries the `authToken`
 * option's token.
 */
import type { FastifyInstance } from 'fastify';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { ConnectionLimits } from './limits.js';
import { errorAnswer, type LongPollAnswer, type LongPollOptions, type LongPollRegistry, type LongPollRequest } from './longpoll.js';
import { Errors } from '../errors.js';
import type { Subjects } from '../bus/subjects.js';
import type { Logger } from '../observability/logger.js';

export function registerLongPoll(app: FastifyInstance, registry: Pick<LongPollRegistry, 'handle'>, maxFrameBytes: number, limits?: Pick<ConnectionLimits, 'admitRate'>): void {
  // The phoenix client batches at most 100 frames per POST (MAX_LONGPOLL_BATCH_SIZE).
  const bodyLimit = maxFrameBytes * 100 + 100;
  void app.register(async (scope) => {
    scope.addContentTypeParser(['application/x-ndjson', 'text/plain'], { parseAs: 'string', bodyLimit }, (_req, body, done) => done(null, body));
    scope.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit }, (_req, body, done) => done(null, body));
    const handler = async (req: { method: string; query: unknown; headers: Record<string, unknown>; body?: unknown; ip: string }, reply: { header(k: string, v: string): unknown; code(n: number): unknown }) => {
      const query = (req.query ?? {}) as Record<string, unknown>;
      reply.header('cache-control', 'no-store');
      const hasSession = ([] as unknown[]).concat(query.token ?? []).some((t) => typeof t === 'string' && t.startsWith('lp.'));
      if (!hasSession && req.method === 'GET') {
        // A handshake starts a session: the per-IP and accept rates apply as to a WebSocket upgrade.
        const refused = limits?.admitRate(req.ip);
        if (refused) {
          reply.code(refused.status);
          reply.header('retry-after', String(refused.retryAfterS));
          return { error: { code: refused.code, message: refused.message } };
        }
      }
      if (query.vsn !== undefined && query.vsn !== '2.0.0') {
        return errorAnswer(Errors.BAD_PAYLOAD(`protocol vsn ${String(query.vsn)} is not supported; use vsn=2.0.0`));
      }
      const tokens = ([] as unknown[]).concat(query.token ?? []).filter((t): t is string => typeof t === 'string' && t !== '');
      const header = req.headers['x-phoenix-authtoken'];
      const lr: LongPollRequest = {
        method: req.method === 'POST' ? 'POST' : 'GET',
        lp: tokens.find((t) => t.startsWith('lp.')),
        auth: tokens.find((t) => !t.startsWith('lp.')) ?? (typeof header === 'string' && header !== '' ? header : undefined),
        body: typeof req.body === 'string' ? req.body : undefined,
      };
      return registry.handle(lr);
    };
    scope.get('/socket/longpoll', handler);
    scope.post('/socket/longpoll', { bodyLimit }, handler);
  });
}

/**
 * The NATS side: serves requests other workers forward to this worker's
 * sessions, and forwards requests for other workers' sessions. A forwarded
 * poll waits up to the window, so its request deadline is the window plus a
 * margin; a worker that does not answer has no session (the client gets 410
 * and opens a new one).
 */
export function longPollBus(nc: NatsConnection, subjects: Subjects, hostId: string, worker: number, logger: Logger): {
  serve(registry: LongPollRegistry): Subscription;
  forward(windowMs: number): LongPollOptions['forward'];
} {
  return {
    serve(registry) {
      return nc.subscribe(subjects.longpoll(hostId, worker), { callback: (err, msg) => {
        if (err) return;
        let req: LongPollRequest;
        try { req = msg.json<LongPollRequest>(); } catch { return; }
        registry.local(req).then((a) => msg.respond(JSON.stringify(a))).catch((e: Error) => {
          // A frame alone larger than the NATS payload limit, or a closed connection: the client retries with a new session.
          // Nothing is lost: the client polls again (warn: a person may need to look if it repeats).
          logger.warn({ err: e, session: req.lp }, 'forwarded longpoll request failed');
          try { msg.respond(JSON.stringify({ status: 500 })); } catch { /* the requester times out */ }
        });
      } });
    },
    forward(windowMs) {
      return async (h, w, req) => {
        const r = await nc.request(subjects.longpoll(h, w), JSON.stringify(req), { timeout: windowMs + 5000 });
        return r.json<LongPollAnswer>();
      };
    },
  };
}
