/**
 * The Phoenix LongPoll transport at `/socket/longpoll`, for clients whose
 * WebSocket is blocked (the phoenix client's `longPollFallbackMs`).
 *
 * A LongPoll session is the same SessionActor and the same channels as a
 * WebSocket session; only its transport differs: a LongPollSession buffers the
 * frames the actor writes until the client's next poll takes them. It lives
 * on the worker that created it and outlives every HTTP request. The
 * handshake, as the phoenix client (`LongPoll` in phoenix.mjs) expects it,
 * every answer HTTP 200 with the status in a JSON body, as Phoenix sends it:
 *
 *   GET  (no session token)    → {status: 410, token}        session created; the client is "open"
 *   GET  ?token=<lp token>     → {status: 200, token, messages} | {status: 204, token} after windowMs
 *   POST ?token=<lp token>     body: NDJSON, one frame a line → {status: 200}
 *   an unknown or closed token → {status: 410}                  the client reconnects with a new session
 *   a bad auth token           → {status: 403}
 *
 * Successive requests of one client may reach different workers (node:cluster
 * hands out connections round-robin, and a browser polls and posts on two
 * connections). The session token names its host and worker
 * (`lp.<base64url hostId>.<worker>.<random>`), and a request that lands on
 * another worker is forwarded to the owner over NATS (`lp.<hostId>.<worker>`,
 * request/reply: one request per poll or batch, not per frame). The random
 * part (18 bytes) is the capability: nobody can guess a live session.
 */
import { randomBytes } from 'node:crypto';
import type { SessionActor, SessionTransport } from '../actors/session.js';
import type { TimerEntry, TimerWheel } from '../actors/timer-wheel.js';
import { Errors, SandbarError, httpError } from '../errors.js';
import type { Identity } from '../auth/verifier.js';
import type { Logger } from '../observability/logger.js';

/** What a LongPoll request carries, after fastify parsed it (also what crosses NATS when forwarded). */
export interface LongPollRequest {
  readonly method: 'GET' | 'POST';
  /** The LongPoll session token, when the client has one. */
  readonly lp: string | undefined;
  /** The auth token (query `token` or the X-Phoenix-AuthToken header); only the first GET needs it. */
  readonly auth: string | undefined;
  /** POST body: NDJSON frames. */
  readonly body?: string;
}

/** The JSON body of every answer (always sent with HTTP 200, as Phoenix does). */
export interface LongPollAnswer {
  /** 200 frames, 204 none within the window, 410 the session (or its end); an error's own status from the registry. */
  status: number;
  token?: string | null;
  messages?: string[];
  error?: { code: string; message: string };
}

export interface LongPollOptions {
  readonly hostId: string;
  readonly worker: number;
  /** Verifies the auth token of a first GET (auth/verifier.ts). */
  verifyToken(token: string): Promise<Identity>;
  /** A refused auth token: the bounded log line (never the token). */
  onRefused?(code: string, reason: string): void;
  /** How long a poll is held when nothing is waiting (longpoll.windowMs). */
  readonly windowMs: number;
  readonly maxFrameBytes: number;
  /** Deadlines of held polls (tens of ms suffice). */
  readonly wheel: TimerWheel;
  readonly logger: Logger;
  /** Starts the session actor for a new transport; false when the worker is stopping. */
  startSession(transport: SessionTransport, identity: Identity): boolean;
  /**
   * Largest POST body forwarded in one request (NATS max_payload less room for
   * the JSON envelope, whose escaping may double the text); a larger batch is
   * forwarded in several, split between frames, in order. Poll answers carry
   * at most this many bytes of frames too.
   */
  readonly maxForwardBytes: number;
  /** Sends a request to the worker that owns a session; resolves with its answer. */
  forward(hostId: string, worker: number, req: LongPollRequest): Promise<LongPollAnswer>;
}

const PREFIX = 'lp.';
const HOST_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** Bytes counted per buffered message beyond its text (array slot, string header). */
const MESSAGE_OVERHEAD = 64;

/** The owner of a LongPoll session token, or null when the token is not one of ours. */
export function ownerOf(token: string): { hostId: string; worker: number } | null {
  const parts = token.split('.');
  if (parts.length !== 4 || parts[0] !== 'lp' || !/^\d{1,4}$/.test(parts[2]!) || !/^[A-Za-z0-9_-]{24}$/.test(parts[3]!)) return null;
  // The host id becomes a NATS subject token when the request is forwarded:
  // only what config accepts for hostId (no `.`, `*`, `>` or spaces).
  const hostId = Buffer.from(parts[1]!, 'base64url').toString('utf8');
  return HOST_ID.test(hostId) ? { hostId, worker: Number(parts[2]) } : null;
}

/** A held poll waiting for frames. */
type Waiter = (a: LongPollAnswer) => void;

/** The transport of one LongPoll session: frames wait here for the client's next poll. */
export class LongPollSession implements SessionTransport, TimerEntry {
  session: SessionActor | undefined = undefined;
  readyState = 1;
  bufferedAmount = 0;
  timerSlot = -1;
  private queue: string[] = [];
  private waiter: Waiter | null = null;
  private flushQueued = false;

  constructor(readonly token: string, private readonly owner: LongPollRegistry) {}

  send(data: string | Buffer, opts: { binary: boolean }): void {
    if (this.readyState !== 1) return;
    // Binary frames travel base64-encoded, as the phoenix client sends its own.
    const text = typeof data === 'string' ? data : opts.binary ? data.toString('base64') : data.toString('utf8');
    this.queue.push(text);
    this.bufferedAmount += text.length + MESSAGE_OVERHEAD;
    // Frames written in one turn of the event loop go out in one answer.
    if (this.waiter && !this.flushQueued) {
      this.flushQueued = true;
      setImmediate(flush, this);
    }
  }

  close(_code: number, _reason: string): void {
    if (this.readyState !== 1) return;
    this.readyState = 3;
    this.queue = [];
    this.bufferedAmount = 0;
    this.owner.forget(this);
    this.answer({ status: 410, token: this.token });
  }

  terminate(): void { this.close(1006, ''); }

  /** A poll: answered at once when frames wait, else held until some do or the window ends. */
  poll(windowMs: number, wheel: TimerWheel): Promise<LongPollAnswer> {
    this.session?.touch();
    if (this.queue.length > 0) return Promise.resolve(this.take());
    // A newer poll replaces an older one (the client gave up on it).
    this.answer({ status: 204, token: this.token });
    wheel.schedule(this, wheel.clock.now() + windowMs);
    return new Promise((resolve) => { this.waiter = resolve; });
  }

  /** The held poll's window ended with nothing to send. */
  onTimer(): void { this.answer({ status: 204, token: this.token }); }

  flushNow(): void {
    this.flushQueued = false;
    if (this.waiter && this.queue.length > 0) this.answer(this.take());
  }

  /**
   * The waiting frames, up to the registry's answer budget (at least one):
   * an answer must fit a NATS message when the poll was forwarded. The rest
   * waits for the next poll, which the client sends at once.
   */
  private take(): LongPollAnswer {
    const budget = this.owner.answerBytes;
    let n = 0;
    let bytes = 0;
    while (n < this.queue.length && (n === 0 || bytes + this.queue[n]!.length <= budget)) bytes += this.queue[n++]!.length;
    const messages = n === this.queue.length ? this.queue : this.queue.slice(0, n);
    this.queue = n === this.queue.length ? [] : this.queue.slice(n);
    this.bufferedAmount = Math.max(0, this.bufferedAmount - bytes - n * MESSAGE_OVERHEAD);
    return { status: 200, token: this.token, messages };
  }

  private answer(a: LongPollAnswer): void {
    const w = this.waiter;
    if (!w) return;
    this.waiter = null;
    this.owner.wheel.cancel(this);
    this.session?.touch();
    w(a);
  }
}

function flush(s: LongPollSession): void { s.flushNow(); }

/** The LongPoll sessions of one worker, and the request handling for `/socket/longpoll`. */
export class LongPollRegistry {
  private readonly sessions = new Map<string, LongPollSession>();
  private readonly hostTok: string;
  readonly wheel: TimerWheel;
  /** Most bytes of frames in one poll answer (what a forwarded answer may carry). */
  readonly answerBytes: number;

  constructor(private readonly opts: LongPollOptions) {
    this.answerBytes = opts.maxForwardBytes;
    this.hostTok = Buffer.from(opts.hostId, 'utf8').toString('base64url');
    this.wheel = opts.wheel;
  }

  get size(): number { return this.sessions.size; }

  forget(s: LongPollSession): void { this.sessions.delete(s.token); }

  /** A request that arrived over HTTP: served here, or forwarded to the session's worker. */
  handle(req: LongPollRequest): Promise<LongPollAnswer> {
    if (req.lp === undefined) {
      if (req.method === 'POST') return Promise.resolve(bad('a POST needs the session token the first GET returned'));
      return this.open(req.auth);
    }
    const owner = ownerOf(req.lp);
    if (!owner) return Promise.resolve({ status: 410, token: null });
    if (owner.hostId === this.opts.hostId && owner.worker === this.opts.worker) return this.local(req);
    return this.forward(owner.hostId, owner.worker, req).catch((err: Error) => {
      // No responder: the owning worker is gone, and the session with it.
      this.opts.logger.debug({ owner, err: err.message }, 'longpoll forward failed; session gone');
      return { status: 410, token: req.lp } as LongPollAnswer;
    });
  }

  private async forward(hostId: string, worker: number, req: LongPollRequest): Promise<LongPollAnswer> {
    const body = req.body ?? '';
    if (req.method !== 'POST' || Buffer.byteLength(body) <= this.opts.maxForwardBytes) return this.opts.forward(hostId, worker, req);
    let answer: LongPollAnswer = { status: 200 };
    for (const part of chunks(body, this.opts.maxForwardBytes)) {
      answer = await this.opts.forward(hostId, worker, { ...req, body: part });
      if (answer.status !== 200) break;
    }
    return answer;
  }

  /** A request for a session of this worker (from HTTP here, or forwarded over NATS). */
  local(req: LongPollRequest): Promise<LongPollAnswer> {
    const s = req.lp === undefined ? undefined : this.sessions.get(req.lp);
    if (!s) return Promise.resolve({ status: 410, token: req.lp ?? null });
    if (req.method === 'GET') return s.poll(this.opts.windowMs, this.wheel);
    return Promise.resolve(this.publish(s, req.body ?? ''));
  }

  private async open(auth: string | undefined): Promise<LongPollAnswer> {
    let identity: Identity;
    try {
      if (auth === undefined) throw Errors.AUTH_MISSING('no token: pass params.token or authToken');
      identity = await this.opts.verifyToken(auth);
    } catch (err) {
      const e = err instanceof SandbarError ? err : Errors.AUTH_INVALID('invalid token');
      this.opts.onRefused?.(e.code, e.message);
      return errorAnswer(e);
    }
    const token = `${PREFIX}${this.hostTok}.${this.opts.worker}.${randomBytes(18).toString('base64url')}`;
    const s = new LongPollSession(token, this);
    if (!this.opts.startSession(s, identity)) return { status: 410, token: null };
    this.sessions.set(token, s);
    return { status: 410, token };
  }

  /** A POST: each NDJSON line is one frame for the session's mailbox (a line not starting with `[` is base64 binary). */
  private publish(s: LongPollSession, body: string): LongPollAnswer {
    const session = s.session;
    if (!session) return { status: 410, token: s.token };
    session.touch();
    for (const line of body.split('\n')) {
      if (line.length === 0) continue;
      if (Buffer.byteLength(line) > this.opts.maxFrameBytes) {
        session.stop({ kind: 'other', code: Errors.FRAME_TOO_LARGE.code, message: `a frame exceeds session.maxFrameBytes (${this.opts.maxFrameBytes})` });
        return { status: 410, token: s.token };
      }
      session.send(line.charCodeAt(0) === 0x5b /* [ */ ? line : Buffer.from(line, 'base64'));
    }
    return { status: 200 };
  }
}

/** NDJSON split between lines into parts of at most max bytes (a longer line goes alone; the owner refuses it). */
function chunks(body: string, max: number): string[] {
  const out: string[] = [];
  let part: string[] = [];
  let size = 0;
  for (const line of body.split('\n')) {
    const n = Buffer.byteLength(line) + 1;
    if (size + n > max && part.length > 0) { out.push(part.join('\n')); part = []; size = 0; }
    part.push(line);
    size += n;
  }
  if (part.length > 0) out.push(part.join('\n'));
  return out;
}

/** An error as a LongPoll answer: the status its code has in the error registry. */
export function errorAnswer(err: SandbarError): LongPollAnswer {
  const { status, body } = httpError(err);
  return { status, error: body.error };
}

function bad(message: string): LongPollAnswer {
  return errorAnswer(Errors.BAD_PAYLOAD(message));
}
