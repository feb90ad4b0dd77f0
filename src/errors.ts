/**
 * The one registry of Sandbar error codes.
 *
 * Every error Sandbar reports to a client, an operator or another host has a
 * stable code here. A code is never reused or renamed; `docs/errors.md` lists
 * them all and a test keeps the two in step. Errors cross NATS as plain data
 * (`{code, message, retryable}`, see `toWire`/`fromWire`) and never carry a
 * stack trace between hosts.
 */

export interface ErrorSpec {
  /** Stable, documented code. */
  readonly code: string;
  /** One-line meaning, used in docs/errors.md. */
  readonly summary: string;
  /** WebSocket close code when the error ends a session. */
  readonly closeCode?: number;
  /** HTTP status when the error answers an HTTP request. */
  readonly httpStatus?: number;
  /** Whether the same request may succeed if retried later. */
  readonly retryable?: boolean;
}

function spec<const T extends Record<string, Omit<ErrorSpec, 'code'>>>(table: T): { [K in keyof T]: ErrorSpec & { code: K } } {
  const out = {} as { [K in keyof T]: ErrorSpec & { code: K } };
  for (const code of Object.keys(table) as (keyof T)[]) {
    out[code] = { code, ...table[code] } as ErrorSpec & { code: typeof code };
  }
  return out;
}

export const ErrorCodes = spec({
  // Configuration and start-up
  SANDBAR_ERR_CONFIG_INVALID: { summary: 'A configuration value is missing, unknown, of the wrong type or out of range; start-up stops with exit code 78.' },
  SANDBAR_ERR_CONFIG_FILE: { summary: 'The configuration file cannot be read or is not valid TOML; start-up stops with exit code 78.' },
  SANDBAR_ERR_NATS_UNAVAILABLE: { summary: 'No NATS server is reachable and none could be started (embedded mode off or nats-server not installed).' },
  SANDBAR_ERR_JETSTREAM_UNAVAILABLE: { summary: 'The NATS server answers but has no JetStream (needed for the shard ownership bucket): run nats-server with -js, or enable jetstream in its config.' },
  SANDBAR_ERR_SUPERVISOR_INTENSITY: { summary: 'Workers crashed more than cluster.maxRestarts times within cluster.restartWindowMs; the host exits non-zero so systemd restarts it.' },
  SANDBAR_ERR_USAGE: { summary: 'The command line is not understood.' },

  // Authentication
  SANDBAR_ERR_AUTH_MISSING: { summary: 'The connection carries no token (params.token or the bearer sub-protocol).', httpStatus: 403 },
  SANDBAR_ERR_AUTH_INVALID: { summary: 'The token is refused: malformed, a bad signature, an algorithm or kid no configured key accepts, the none algorithm, a wrong aud or iss, not yet valid (nbf), or no sub; the reason says which (docs/auth.md).', httpStatus: 403 },
  SANDBAR_ERR_AUTH_EXPIRED: { summary: 'The token has expired (exp, with auth.clockSkewS allowed); on an open session: it was not refreshed before exp, and the session is closed.', closeCode: 4401, httpStatus: 403 },
  SANDBAR_ERR_AUTH_REVOKED: { summary: "The user's sessions were revoked (disconnect user): open sessions are closed, and tokens issued before the revocation are refused for auth.revocationTtlS.", closeCode: 4403, httpStatus: 403 },
  SANDBAR_ERR_NATS_AUTH: { summary: 'The NATS server refused the credentials (nats.user/nats.pass, nats.token or nats.credsFile) or the TLS set-up (nats.tls.*); start-up stops with exit code 69.' },

  // Connection limits: answered before the WebSocket upgrade, with Retry-After
  SANDBAR_ERR_TOO_MANY_CONNECTIONS: { summary: 'This client address opens connections faster than http.ipConnectRate allows, or already holds http.ipMaxSessions sessions; retry after the Retry-After header.', httpStatus: 429, retryable: true },
  SANDBAR_ERR_OVERLOADED: { summary: 'The worker admits new sessions at most at http.acceptRate per second (a reconnect storm is shed, not served all at once); retry after the Retry-After header.', httpStatus: 503, retryable: true },

  // Protocol: these close the one offending session
  SANDBAR_ERR_FRAME_MALFORMED: { summary: 'A text frame is not JSON, or not a 5-element array [join_ref, ref, topic, event, payload] with string topic and event.', closeCode: 4400 },
  SANDBAR_ERR_FRAME_BINARY: { summary: 'A binary frame does not follow the Phoenix V2 binary layout.', closeCode: 4400 },
  SANDBAR_ERR_FRAME_TOO_LARGE: { summary: 'A frame exceeds session.maxFrameBytes.', closeCode: 1009 },
  SANDBAR_ERR_SLOW_CONSUMER: { summary: 'The client did not read fast enough: its outgoing buffer passed session.maxBufferedBytes.', closeCode: 4408 },
  SANDBAR_ERR_IDLE_TIMEOUT: { summary: 'No frame (not even a heartbeat) arrived within session.idleTimeoutMs.', closeCode: 4000 },
  SANDBAR_ERR_SESSION_CRASHED: { summary: "The session's actor crashed; only this session is closed.", closeCode: 1011 },
  SANDBAR_ERR_KICKED: { summary: 'An operator closed this session (admin.kick).', closeCode: 4001 },
  SANDBAR_ERR_DISCONNECTED: { summary: 'The server API disconnected every session of this user (api disconnect); the close code is 4002 unless the caller chose another in 4000-4999.', closeCode: 4002 },
  SANDBAR_ERR_RATE_ABUSE: { summary: 'More than session.rateMaxRefused frames were refused for the rate limit within one second: the client ignores SANDBAR_ERR_RATE_LIMITED replies.', closeCode: 4429 },
  SANDBAR_ERR_SHUTTING_DOWN: { summary: 'The host is stopping (SIGTERM) or the worker restarts; reconnect to another host.', closeCode: 1012, httpStatus: 503, retryable: true },

  // Protocol: these answer one push with phx_reply {status: "error"} and keep the session
  SANDBAR_ERR_UNMATCHED_TOPIC: { summary: 'A push to a topic this session has not joined, or a join of a topic no channel serves ("unmatched topic", as Phoenix says).' },
  SANDBAR_ERR_ALREADY_JOINED: { summary: 'A phx_join repeats the join_ref of the channel already joined on that topic.' },
  SANDBAR_ERR_UNKNOWN_EVENT: { summary: 'An event the joined channel does not handle.' },
  SANDBAR_ERR_BAD_PAYLOAD: { summary: 'The payload of a push, or the body or query of an HTTP request, is not what it must be.', httpStatus: 400 },
  SANDBAR_ERR_FORBIDDEN: { summary: 'The user may not join this topic, read its history or publish into it (another user\'s user: topic; a room whose authz policy refuses, or whose proxy refused or did not answer), or an HTTP request carries a wrong admin token; the reason says which.', httpStatus: 403 },
  SANDBAR_ERR_TOO_LARGE: { summary: 'A message body exceeds message.maxBytes.', httpStatus: 413 },
  SANDBAR_ERR_INVALID_ID: { summary: 'A user or room id is not 1-64 characters of A-Z a-z 0-9 _ - . @.', httpStatus: 400 },
  SANDBAR_ERR_INBOX_FULL: { summary: "The recipient's inbox holds user.inboxMax unacknowledged messages, or user.inboxMaxBytes of them; the dm is refused, not dropped. Retry after the recipient acknowledges.", httpStatus: 429, retryable: true },
  SANDBAR_ERR_RATE_LIMITED: { summary: 'The session sends frames faster than session.ratePerSecond (burst session.rateBurst); this frame was not processed. Slow down and retry.', retryable: true },
  SANDBAR_ERR_TOO_MANY_CHANNELS: { summary: 'The session has joined session.maxChannels topics already; leave one first.' },
  SANDBAR_ERR_ROOM_FULL: { summary: 'The room already has room.maxMembers connections.', retryable: true },
  SANDBAR_ERR_UNAVAILABLE: { summary: 'The shard that owns the user or room has no responder within the deadline; retry.', httpStatus: 503, retryable: true },
  SANDBAR_ERR_STORAGE_FULL: { summary: 'The worker that masters the recipient\'s user or room holds as many stored messages as its memory budget allows (storage.budgetMb, derived from cluster.workerHeapMb), or the shard holds persistence.maxSnapshotBytes: new writes are refused, not dropped, until acknowledgements, expiry (user.inboxTtlMs) or trimming free room. Reads, acks and deliveries go on. Retry later.', httpStatus: 507, retryable: true },
  SANDBAR_ERR_SEND_QUOTA: { summary: 'The sender passed its per-minute budget on this worker: new recipients (sender.newRecipientsPerMin), new rooms (sender.newRoomsPerMin) or stored bytes (sender.bytesPerMin). The message names the key and when to retry; messages to recent recipients and rooms are not affected by the first two.', httpStatus: 429, retryable: true },
  SANDBAR_ERR_JETSTREAM_FULL: { summary: 'A JetStream store Sandbar writes is full (the snapshot bucket at persistence.snapshotStoreMaxBytes, the durable log at persistence.logMaxBytes, or the NATS server\'s own storage limit). In mode log new writes are refused with this code until the log has room again; a snapshot that does not fit is not written (its previous one stays) and an error names the store.', httpStatus: 507, retryable: true },
  SANDBAR_ERR_SNAPSHOT_CORRUPT: { summary: 'A shard snapshot in JetStream fails its checks (version, shard, length or SHA-256): it is not restored; the shard starts from its durable log if that covers it from the start, else empty, with an error in the log naming the shard.' },
  SANDBAR_ERR_INTERNAL: { summary: 'An unexpected error; details are in the server log.', httpStatus: 500 },

  // Admin and API requests
  SANDBAR_ERR_NOT_FOUND: { summary: 'An admin or API request names a session, user, room or other object that does not exist.', httpStatus: 404 },
  SANDBAR_ERR_API_UNAUTHORIZED: { summary: 'A server API request carries no API key, or one that is not in api.keys (counted and logged without the key).', httpStatus: 401 },
  SANDBAR_ERR_API_FORBIDDEN: { summary: "The API key is valid but api.keys does not allow it this operation.", httpStatus: 403 },
  SANDBAR_ERR_API_UNKNOWN_OPERATION: { summary: 'A server API request names an operation that does not exist (docs/api.md lists them).', httpStatus: 404 },
  SANDBAR_ERR_API_BODY_TOO_LARGE: { summary: 'A server API request body exceeds api.maxBodyBytes.', httpStatus: 413 },
});

export type ErrorCode = keyof typeof ErrorCodes;

/** A typed Sandbar error with a stable code. */
export class SandbarError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SandbarError';
    this.code = code;
    this.retryable = ErrorCodes[code].retryable === true;
  }
  get closeCode(): number | undefined { return ErrorCodes[this.code].closeCode; }
  get httpStatus(): number | undefined { return ErrorCodes[this.code].httpStatus; }
}

/**
 * The factory of one code: `Errors.ROOM_FULL('room r1 has 100 members')` is
 * the SandbarError with code SANDBAR_ERR_ROOM_FULL; its HTTP status, close
 * code and retryability are the registry's, so no caller types a code, a
 * status or a close code by hand. `Errors.ROOM_FULL.code` is the code itself
 * (for a comparison or a stop reason), `.is(err)` tests an error for it.
 */
export interface ErrorFactory<K extends ErrorCode = ErrorCode> {
  (message: string, options?: { cause?: unknown }): SandbarError;
  readonly code: K;
  /** HTTP status when the error answers an HTTP request (undefined: it never does). */
  readonly httpStatus: (typeof ErrorCodes)[K]['httpStatus'];
  /** WebSocket close code when the error ends a session. */
  readonly closeCode: (typeof ErrorCodes)[K]['closeCode'];
  is(err: unknown): err is SandbarError & { code: K };
}

function factory<K extends ErrorCode>(code: K): ErrorFactory<K> {
  const make = (message: string, options?: { cause?: unknown }) => new SandbarError(code, message, options);
  return Object.assign(make, {
    code,
    httpStatus: ErrorCodes[code].httpStatus as (typeof ErrorCodes)[K]['httpStatus'],
    closeCode: ErrorCodes[code].closeCode as (typeof ErrorCodes)[K]['closeCode'],
    is: (err: unknown): err is SandbarError & { code: K } => err instanceof SandbarError && err.code === code,
  });
}

type Factories = { readonly [K in ErrorCode as K extends `SANDBAR_ERR_${infer N}` ? N : never]: ErrorFactory<K> };

/** One factory per registry code, named without the prefix. */
export const Errors: Factories = Object.fromEntries(
  (Object.keys(ErrorCodes) as ErrorCode[]).map((code) => [code.slice('SANDBAR_ERR_'.length), factory(code)]),
) as unknown as Factories;

/** The JSON body of an HTTP error answer: `{error: {code, message, field?}}` (field: the request field it is about). */
export interface HttpErrorBody { error: { code: string; message: string; field?: string } }

/** The HTTP status of a code: the registry's, 500 for a code that has none (or no code of the registry). */
export function httpStatusOf(code: string): number {
  return ErrorCodes[code as ErrorCode]?.httpStatus ?? 500;
}

/** An error as an HTTP answer: its status and body. Anything but a SandbarError is SANDBAR_ERR_INTERNAL, with no detail. */
export function httpError(err: unknown): { status: number; body: HttpErrorBody } {
  if (!(err instanceof SandbarError)) return { status: 500, body: { error: { code: ErrorCodes.SANDBAR_ERR_INTERNAL.code, message: 'internal error' } } };
  const field = (err as { field?: unknown }).field;
  const error = typeof field === 'string' && field !== '' ? { code: err.code, message: err.message, field } : { code: err.code, message: err.message };
  return { status: httpStatusOf(err.code), body: { error } };
}

/** Plain data form of an error for NATS: no stack trace crosses hosts. */
export interface WireError { code: string; message: string; retryable: boolean }

export function toWire(err: unknown): WireError {
  if (err instanceof SandbarError) return { code: err.code, message: err.message, retryable: err.retryable };
  return { code: ErrorCodes.SANDBAR_ERR_INTERNAL.code, message: 'internal error', retryable: false };
}

export function fromWire(w: WireError): SandbarError {
  const code = (w.code in ErrorCodes ? w.code : 'SANDBAR_ERR_INTERNAL') as ErrorCode;
  return new SandbarError(code, w.message);
}
