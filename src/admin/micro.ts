/**
 * A small implementation of the NATS micro (services) protocol v1, so that
 * operators can inspect Sandbar with the standard `nats micro ls|info|stats`
 * and `nats req` commands.
 *
 * Why not @nats-io/services: the version available here is a prerelease built
 * against an older nats core, and its stats replies omit `last_error`, which
 * the `nats` CLI's JSON schema requires, so the CLI rejects them.
 *
 * Protocol summary (what the CLI relies on):
 * - every instance answers `$SRV.<VERB>`, `$SRV.<VERB>.<name>` and
 *   `$SRV.<VERB>.<name>.<id>` for VERB in PING, INFO, STATS, on plain
 *   subscriptions, so a request with several replies sees every instance;
 * - endpoints listen with a queue group (default "q"), so instances of one
 *   service share the load;
 * - an error reply carries the headers `Nats-Service-Error` and
 *   `Nats-Service-Error-Code`.
 */
import { headers, nuid } from '@nats-io/transport-node';
import type { Msg, MsgHdrs, NatsConnection, Subscription } from '@nats-io/transport-node';
import { Errors, ErrorCodes, SandbarError } from '../errors.js';

/** The request an endpoint handler sees (a NATS message is passed as is). */
export interface MicroRequest {
  readonly subject: string;
  readonly data: Uint8Array;
  /** The payload parsed as JSON; throws on invalid JSON. */
  json<T>(): T;
  /** The payload decoded as UTF-8. */
  string(): string;
}

/**
 * An endpoint handler. Its return value is the reply: a `Uint8Array` or a
 * string is sent as is, `undefined` as an empty payload, anything else as JSON.
 * A thrown (or rejected) error becomes an error reply, see
 * {@link serviceErrorStatus}.
 */
export type MicroHandler = (req: MicroRequest) => unknown | Promise<unknown>;

/** One endpoint of a micro service. */
export interface EndpointSpec {
  /** Endpoint name, `[A-Za-z0-9_-]+`, unique within the service. */
  name: string;
  /** Subject the endpoint listens on (may contain wildcards). */
  subject: string;
  /** Queue group shared by all instances; "q", as in the reference implementations, when omitted. */
  queue?: string;
  /** Free-form metadata shown by `nats micro info`. */
  metadata?: Record<string, string>;
  handler: MicroHandler;
  /** Optional extra statistics, reported as the endpoint's `data` in STATS replies. */
  statsData?: () => unknown;
}

/** Options of {@link startMicroService}. */
export interface MicroServiceOptions {
  /** Service name, `[A-Za-z0-9_-]+`; shared by all instances of the service. */
  name: string;
  /** Semantic version, e.g. "1.2.3". */
  version: string;
  description?: string;
  metadata?: Record<string, string>;
  endpoints: EndpointSpec[];
  /**
   * Called with every error a handler throws that is not a SandbarError
   * (the caller reply says only "internal error"; this is where to log it),
   * and with errors of the service's own subscriptions.
   */
  onError?: (err: unknown, endpoint: string | undefined) => void;
}

/** `io.nats.micro.v1.ping_response` */
export interface MicroPingResponse {
  type: 'io.nats.micro.v1.ping_response';
  name: string;
  id: string;
  version: string;
  metadata: Record<string, string>;
}

/** `io.nats.micro.v1.info_response` */
export interface MicroInfoResponse {
  type: 'io.nats.micro.v1.info_response';
  name: string;
  id: string;
  version: string;
  description: string;
  metadata: Record<string, string>;
  endpoints: { name: string; subject: string; queue_group: string; metadata: Record<string, string> }[];
}

/** Statistics of one endpoint, as in `io.nats.micro.v1.stats_response`. */
export interface MicroEndpointStats {
  name: string;
  subject: string;
  queue_group: string;
  num_requests: number;
  num_errors: number;
  /** "" when there has been no error. */
  last_error: string;
  /** Total handler time in nanoseconds. */
  processing_time: number;
  /** Mean handler time in nanoseconds (integer). */
  average_processing_time: number;
  data?: unknown;
}

/** `io.nats.micro.v1.stats_response` */
export interface MicroStatsResponse {
  type: 'io.nats.micro.v1.stats_response';
  name: string;
  id: string;
  version: string;
  metadata: Record<string, string>;
  /** RFC 3339 time with nanosecond digits, UTC. */
  started: string;
  endpoints: MicroEndpointStats[];
}

/** A running micro service instance. */
export interface MicroService {
  /** Unique id of this instance (22 characters, base 62). */
  readonly id: string;
  readonly name: string;
  info(): MicroInfoResponse;
  stats(): MicroStatsResponse;
  /**
   * Drains every subscription (in-flight requests finish, then the instance
   * stops answering, PING included). Idempotent; never rejects.
   */
  stop(): Promise<void>;
}

/** Header names of the micro protocol's error replies. */
export const SERVICE_ERROR_HEADER = 'Nats-Service-Error';
export const SERVICE_ERROR_CODE_HEADER = 'Nats-Service-Error-Code';

/** Same patterns as the CLI's JSON schemas; checked at start so a bad name fails loudly here, not in `nats micro`. */
const NAME_RE = /^[a-zA-Z0-9_-]+$/;
const SEMVER_RE = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

const CLIENT_ERROR_CODES: ReadonlySet<string> = new Set([Errors.BAD_PAYLOAD.code, Errors.UNMATCHED_TOPIC.code]);

/**
 * The `Nats-Service-Error-Code` for an error thrown by a handler.
 *
 * In order: an integer `status` property between 400 and 599 on the error
 * (`Object.assign(new SandbarError(...), { status: 409 })`); the code's
 * `httpStatus` in the error registry (e.g. 403 for auth errors, 503 while
 * shutting down); 404 for codes containing NOT_FOUND; 400 for
 * SANDBAR_ERR_BAD_PAYLOAD, SANDBAR_ERR_UNMATCHED_TOPIC and codes containing
 * INVALID; 500 otherwise, and for anything that is not a SandbarError.
 */
export function serviceErrorStatus(err: unknown): number {
  if (!(err instanceof SandbarError)) return 500;
  const explicit = (err as { status?: unknown }).status;
  if (typeof explicit === 'number' && Number.isInteger(explicit) && explicit >= 400 && explicit <= 599) return explicit;
  const http = ErrorCodes[err.code]?.httpStatus;
  if (http !== undefined) return http;
  const code: string = err.code;
  if (code.includes('NOT_FOUND')) return 404;
  if (CLIENT_ERROR_CODES.has(code) || code.includes('INVALID')) return 400;
  return 500;
}

/**
 * Starts a micro service instance on `nc`: one queue subscription per
 * endpoint plus the nine `$SRV` discovery subscriptions.
 *
 * Subscriptions are sent asynchronously; `await nc.flush()` afterwards if the
 * caller must know the server has registered them. Throws
 * SANDBAR_ERR_CONFIG_INVALID for a name, version or endpoint the protocol
 * does not allow.
 */
export function startMicroService(nc: NatsConnection, opts: MicroServiceOptions): MicroService {
  return new MicroServiceImpl(nc, opts);
}

/** Mutable per-endpoint state; plain fields so the request path only bumps numbers. */
class EndpointState {
  numRequests = 0;
  numErrors = 0;
  lastError = '';
  /** Nanoseconds; a Number stays exact up to ~104 days of handler time and only loses low digits after. */
  processingTime = 0;
  constructor(
    readonly name: string,
    readonly subject: string,
    readonly queue: string,
    readonly metadata: Record<string, string>,
    readonly handler: MicroHandler,
    readonly statsData: (() => unknown) | undefined,
  ) {}
}

function invalid(message: string): SandbarError {
  return Errors.CONFIG_INVALID(`micro service: ${message}`);
}

/** Header values may not contain CR or LF (nats.js throws), so flatten messages to one line. */
function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, ' ');
}

/**
 * RFC 3339 in UTC with nine fraction digits, as Go's time.RFC3339Nano writes
 * it. Date has only milliseconds; performance.timeOrigin + now() adds the
 * sub-millisecond part (microsecond-ish resolution, good enough for "started").
 */
function rfc3339Nano(): string {
  const t = performance.timeOrigin + performance.now();
  const ms = Math.floor(t);
  const subMsNs = Math.min(999_999, Math.round((t - ms) * 1e6));
  const iso = new Date(ms).toISOString(); // yyyy-mm-ddThh:mm:ss.mmmZ
  return `${iso.slice(0, 23)}${String(subMsNs).padStart(6, '0')}Z`;
}

class MicroServiceImpl implements MicroService {
  readonly id: string = nuid.next();
  readonly name: string;
  readonly #nc: NatsConnection;
  readonly #version: string;
  readonly #description: string;
  readonly #metadata: Record<string, string>;
  readonly #endpoints: EndpointState[];
  readonly #onError: MicroServiceOptions['onError'];
  readonly #started = rfc3339Nano();
  readonly #subs: Subscription[] = [];
  /** PING and INFO never change, so their replies are encoded once. */
  readonly #pingReply: string;
  readonly #infoReply: string;
  #stopping: Promise<void> | undefined;

  constructor(nc: NatsConnection, opts: MicroServiceOptions) {
    if (!NAME_RE.test(opts.name)) throw invalid(`name ${JSON.stringify(opts.name)} must match ${NAME_RE.source}`);
    if (!SEMVER_RE.test(opts.version)) throw invalid(`version ${JSON.stringify(opts.version)} is not a semantic version`);
    const seen = new Set<string>();
    for (const e of opts.endpoints) {
      if (!NAME_RE.test(e.name)) throw invalid(`endpoint name ${JSON.stringify(e.name)} must match ${NAME_RE.source}`);
      if (seen.has(e.name)) throw invalid(`endpoint name ${JSON.stringify(e.name)} is used twice`);
      seen.add(e.name);
      if (!e.subject || /\s/.test(e.subject)) throw invalid(`endpoint ${e.name} has an invalid subject ${JSON.stringify(e.subject)}`);
      if (e.queue !== undefined && (!e.queue || /\s/.test(e.queue))) throw invalid(`endpoint ${e.name} has an invalid queue group ${JSON.stringify(e.queue)}`);
    }
    this.#nc = nc;
    this.name = opts.name;
    this.#version = opts.version;
    this.#description = opts.description ?? '';
    this.#metadata = { ...opts.metadata };
    this.#onError = opts.onError;
    this.#endpoints = opts.endpoints.map((e) => new EndpointState(e.name, e.subject, e.queue ?? 'q', { ...e.metadata }, e.handler, e.statsData));
    this.#pingReply = JSON.stringify(this.#ping());
    this.#infoReply = JSON.stringify(this.info());

    try {
      for (const ep of this.#endpoints) {
        // One callback per endpoint (not per request); the Msg itself is the MicroRequest.
        this.#subscribe(ep.subject, ep.queue, ep.name, (msg) => this.#onRequest(ep, msg));
      }
      const ping = (msg: Msg): void => { this.#reply(msg, this.#pingReply); };
      const info = (msg: Msg): void => { this.#reply(msg, this.#infoReply); };
      const stats = (msg: Msg): void => { this.#reply(msg, JSON.stringify(this.stats())); };
      for (const [verb, cb] of [['PING', ping], ['INFO', info], ['STATS', stats]] as const) {
        this.#subscribe(`$SRV.${verb}`, undefined, undefined, cb);
        this.#subscribe(`$SRV.${verb}.${this.name}`, undefined, undefined, cb);
        this.#subscribe(`$SRV.${verb}.${this.name}.${this.id}`, undefined, undefined, cb);
      }
    } catch (err) {
      // e.g. the connection is closed: leave nothing half-registered.
      for (const s of this.#subs) s.unsubscribe();
      throw err;
    }
  }

  #subscribe(subject: string, queue: string | undefined, endpoint: string | undefined, cb: (msg: Msg) => void): void {
    const onError = this.#onError;
    this.#subs.push(this.#nc.subscribe(subject, {
      queue,
      callback: (err, msg) => {
        if (err) { onError?.(err, endpoint); return; }
        cb(msg);
      },
    }));
  }

  #ping(): MicroPingResponse {
    return { type: 'io.nats.micro.v1.ping_response', name: this.name, id: this.id, version: this.#version, metadata: this.#metadata };
  }

  info(): MicroInfoResponse {
    return {
      type: 'io.nats.micro.v1.info_response',
      name: this.name,
      id: this.id,
      version: this.#version,
      description: this.#description,
      metadata: this.#metadata,
      endpoints: this.#endpoints.map((e) => ({ name: e.name, subject: e.subject, queue_group: e.queue, metadata: e.metadata })),
    };
  }

  stats(): MicroStatsResponse {
    return {
      type: 'io.nats.micro.v1.stats_response',
      name: this.name,
      id: this.id,
      version: this.#version,
      metadata: this.#metadata,
      started: this.#started,
      endpoints: this.#endpoints.map((e) => {
        const s: MicroEndpointStats = {
          name: e.name,
          subject: e.subject,
          queue_group: e.queue,
          num_requests: e.numRequests,
          num_errors: e.numErrors,
          last_error: e.lastError,
          processing_time: e.processingTime,
          average_processing_time: e.numRequests === 0 ? 0 : Math.floor(e.processingTime / e.numRequests),
        };
        if (e.statsData) {
          // A failing stats hook must not break STATS for the whole service.
          try { s.data = e.statsData(); } catch (err) { this.#onError?.(err, e.name); }
        }
        return s;
      }),
    };
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      await Promise.all(this.#subs.map(async (s) => {
        try {
          if (!s.isClosed()) await s.drain();
        } catch {
          // The connection is closing or closed: its subscriptions are gone anyway.
        }
      }));
    })();
    return this.#stopping;
  }

  #onRequest(ep: EndpointState, msg: Msg): void {
    const t0 = process.hrtime.bigint();
    ep.numRequests++;
    let result: unknown;
    try {
      result = ep.handler(msg);
    } catch (err) {
      this.#fail(ep, msg, err, t0);
      return;
    }
    // Only async handlers pay for a promise; synchronous ones reply right here.
    if (result !== null && typeof (result as PromiseLike<unknown> | undefined)?.then === 'function') {
      void this.#settle(ep, msg, result as PromiseLike<unknown>, t0);
    } else {
      this.#succeed(ep, msg, result, t0);
    }
  }

  async #settle(ep: EndpointState, msg: Msg, p: PromiseLike<unknown>, t0: bigint): Promise<void> {
    let result: unknown;
    try {
      result = await p;
    } catch (err) {
      this.#fail(ep, msg, err, t0);
      return;
    }
    this.#succeed(ep, msg, result, t0);
  }

  #succeed(ep: EndpointState, msg: Msg, result: unknown, t0: bigint): void {
    let payload: string | Uint8Array | undefined;
    if (result === undefined || typeof result === 'string' || result instanceof Uint8Array) {
      payload = result;
    } else {
      try {
        payload = JSON.stringify(result);
      } catch (err) {
        // Circular or BigInt values: the handler's bug, reported like any other internal error.
        this.#fail(ep, msg, err, t0);
        return;
      }
    }
    this.#reply(msg, payload);
    ep.processingTime += Number(process.hrtime.bigint() - t0);
  }

  #fail(ep: EndpointState, msg: Msg, err: unknown, t0: bigint): void {
    const status = serviceErrorStatus(err);
    let code: string;
    let message: string;
    if (err instanceof SandbarError) {
      code = err.code;
      message = err.message;
      ep.lastError = `${code}: ${message}`;
    } else {
      // Internals stay out of the reply (as toWire does); operators see the cause in last_error and onError.
      code = Errors.INTERNAL.code;
      message = 'internal error';
      ep.lastError = `${code}: ${err instanceof Error ? err.message : String(err)}`;
      this.#onError?.(err, ep.name);
    }
    ep.numErrors++;
    const h = headers();
    h.set(SERVICE_ERROR_HEADER, oneLine(message) || code);
    h.set(SERVICE_ERROR_CODE_HEADER, String(status));
    // A server API error names the field it is about (src/api/service.ts, FieldError).
    const field = (err as { field?: unknown }).field;
    this.#reply(msg, JSON.stringify({ error: typeof field === 'string' && field !== '' ? { code, message, field } : { code, message } }), h);
    ep.processingTime += Number(process.hrtime.bigint() - t0);
  }

  #reply(msg: Msg, payload: string | Uint8Array | undefined, h?: MsgHdrs): void {
    if (!msg.reply) return; // a publish, not a request: nothing to answer
    try {
      msg.respond(payload, h ? { headers: h } : undefined);
    } catch (err) {
      // Closed or draining connection: the requester times out, which is what it would see anyway.
      this.#onError?.(err, undefined);
    }
  }
}
