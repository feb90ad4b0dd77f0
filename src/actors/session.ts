/**
 * The session actor: one per WebSocket. It owns the socket, speaks Phoenix V2,
 * holds the channels the client joined, and writes to the socket with a bound
 * on what may wait in the outgoing buffer.
 *
 * Memory is the constraint (two million sessions): no per-session closures
 * (socket listeners are shared functions that find the session through a
 * symbol on the socket), no per-session timer (the idle deadline is a slot in
 * the worker's shared wheel, moved lazily), channels allocated on first join.
 */
import { WebSocket } from 'ws';
import { Actor, type ActorLink, type StopReason, SHUTDOWN } from './actor.js';
import type { TimerEntry, TimerWheel } from './timer-wheel.js';
import { Errors, ErrorCodes, SandbarError, type ErrorCode } from '../errors.js';
import { decodeText, encodeReply, encodePush, Events, PHOENIX_TOPIC, type Frame } from '../protocol/frame.js';
import { decodeBinary, encodeBinaryReply } from '../protocol/binary.js';
import type { ChannelRegistry, JoinedChannel } from '../protocol/channel-registry.js';
import type { Logger } from '../observability/logger.js';
import { take, type Bucket, type Rate } from './rate-limit.js';
import { metrics } from '../observability/metrics.js';
import type { Identity } from '../auth/verifier.js';

/** Topic of the session's own channel: token_expiring pushes and refresh (docs/auth.md). */
export const SESSION_TOPIC = 'sandbar:session';

/** What a session needs from the worker that hosts it (shared by all its sessions). */
export interface SessionHost extends ActorLink {
  readonly wheel: TimerWheel;
  readonly channels: ChannelRegistry;
  readonly logger: Logger;
  readonly limits: {
    readonly idleTimeoutMs: number;
    readonly maxBufferedBytes: number;
    readonly maxChannels: number;
    /** Frames per second and burst (session.ratePerSecond, session.rateBurst); null: no limit. */
    readonly rate: Rate | null;
    /** Refused frames within one second that close the session (session.rateMaxRefused). */
    readonly rateMaxRefused: number;
    /** token_expiring goes out this long before the token's exp (auth.expiryWarningMs); 0: none. */
    readonly expiryWarningMs: number;
  };
  /** Verifies a token a session sends to refresh its own (auth/verifier.ts). */
  verifyToken(token: unknown): Promise<Identity>;
  readonly counters: { framesIn: number; framesOut: number; bytesOut: number };
}

/** Messages a session's mailbox takes: raw client frames, or work from its channels. */
export type SessionMsg = string | Buffer | SessionInfo;
/** A message from elsewhere (a channel handler, the bus) to run inside the actor. */
export interface SessionInfo { readonly run: (s: SessionActor) => void }

/**
 * The socket class the WebSocket server creates (ws's `WebSocket` option):
 * the session slot is a declared field, so it lives inside the object instead
 * of an out-of-object property array added to every socket later.
 */
export class SessionSocket extends WebSocket {
  session: SessionActor | undefined = undefined;
}
type SocketWithSession = SessionSocket;

/**
 * What a session writes to: a `ws` socket (SessionSocket) or a LongPoll
 * session (src/http/longpoll.ts). The subset of ws's API the session uses;
 * readyState 1 is open, bufferedAmount counts what the client has not yet
 * taken. A transport other than a WebSocket feeds frames with `session.send`
 * and stops the session when its client is gone.
 */
export interface SessionTransport {
  session: SessionActor | undefined;
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(data: string | Buffer, opts: { binary: boolean }): void;
  close(code: number, reason: string): void;
  terminate(): void;
}
const TEXT = { binary: false } as const;
const BINARY = { binary: true } as const;

// Shared listeners: `this` is the socket.
function onMessage(this: SocketWithSession, data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void {
  const s = this.session;
  if (!s) return;
  const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
  s.send(isBinary ? buf : buf.toString('utf8'));
}
function onClose(this: SocketWithSession): void {
  this.session?.stop({ kind: 'normal' });
}
function onError(this: SocketWithSession, err: Error & { code?: string }): void {
  // ws closes the socket itself after these (1009 for WS_ERR_UNSUPPORTED_MESSAGE_LENGTH);
  // the 'close' that follows stops the session.
  const s = this.session;
  if (s) s.host.logger.debug({ session: s.id, err: err.code ?? err.message }, 'socket error');
}

/** The reply to a frame refused by the rate limit: one object for every refusal (no error built per frame). */
const RATE_LIMITED = { reason: 'rate limited: slow down (session.ratePerSecond)', code: Errors.RATE_LIMITED.code } as const;

export class SessionActor extends Actor<SessionMsg> implements TimerEntry, Bucket {
  timerSlot = -1;
  private lastFrameAt: number;
  /** The token's exp on the wheel's clock: the session is closed then (4401) unless refreshed. */
  private expAt = Infinity;
  /** When token_expiring goes out (wheel clock); Infinity once sent, or when there is no warning. */
  private warnAt = Infinity;
  /** The frame-rate bucket (see rate-limit.ts): tokens left, and when counted. */
  tokens: number;
  at: number;
  /** Frames refused since refusedSince (a one-second window, restarted lazily). */
  private refused = 0;
  private refusedSince = 0;
  /**
   * Joined channels. An array, not a Map: sessions hold one or a few
   * channels, a linear scan of a few topics is cheaper than hashing, and an
   * empty Map alone costs more heap than the rest of an idle session.
   */
  private channels: JoinedChannel[] | null = null;

  readonly userId: string;

  constructor(
    readonly host: SessionHost,
    readonly id: string,
    /** The verified token: replaced by a refresh (same user). */
    public identity: Identity,
    private readonly socket: SessionTransport,
  ) {
    super(host);
    this.userId = identity.userId;
    socket.session = this;
    if (socket instanceof WebSocket) {
      socket.on('message', onMessage as (this: WebSocket, ...args: any[]) => void);
      socket.on('close', onClose as (this: WebSocket, ...args: any[]) => void);
      socket.on('error', onError as (this: WebSocket, ...args: any[]) => void);
    }
    this.lastFrameAt = host.wheel.clock.now();
    this.tokens = host.limits.rate?.burst ?? 0;
    this.at = this.lastFrameAt;
    this.setExpiry(identity.exp);
    this.rearm(this.lastFrameAt);
  }

  /** The token's exp (unix s) as deadlines on the wheel's monotonic clock. */
  private setExpiry(expS: number): void {
    const now = this.host.wheel.clock.now();
    this.expAt = now + (expS * 1000 - Date.now());
    const lead = this.host.limits.expiryWarningMs;
    this.warnAt = lead > 0 ? Math.max(now, this.expAt - lead) : Infinity;
  }

  /** One wheel slot per session: the earliest of the idle deadline, the warning and exp. */
  private rearm(now: number): void {
    const due = Math.min(this.lastFrameAt + this.host.limits.idleTimeoutMs, this.warnAt, this.expAt);
    this.host.wheel.schedule(this, Math.max(now, due));
  }

  /** Counts as client activity for the idle deadline (a LongPoll client polls instead of sending heartbeats). */
  touch(): void { this.lastFrameAt = this.host.wheel.clock.now(); }

  get channelCount(): number { return this.channels ? this.channels.length : 0; }

  /** The channel for a topic, when joined or joining. */
  channel(topic: string): JoinedChannel | undefined {
    const list = this.channels;
    if (list) for (let i = 0; i < list.length; i++) if (list[i]!.topic === topic) return list[i];
    return undefined;
  }

  private forget(ch: JoinedChannel): boolean {
    const list = this.channels;
    const i = list ? list.indexOf(ch) : -1;
    if (i < 0) return false;
    list!.splice(i, 1);
    return true;
  }

  // ---- mailbox --------------------------------------------------------------

  protected handle(msg: SessionMsg): void {
    if (typeof msg === 'string' || Buffer.isBuffer(msg)) {
      let f: Frame;
      try {
        f = typeof msg === 'string' ? decodeText(msg) : decodeBinary(msg);
      } catch (err) {
        // Bad input closes the session with its documented code; it is not a crash of our code.
        if (err instanceof SandbarError) return this.stop({ kind: 'other', code: err.code, message: err.message });
        throw err;
      }
      this.onFrame(f);
    } else msg.run(this);
  }

  /** Runs fn inside this actor, after the messages already waiting (for channel callbacks from the bus). */
  post(info: SessionInfo): void { this.send(info); }

  private onFrame(f: Frame): void {
    const now = this.host.wheel.clock.now();
    this.lastFrameAt = now;
    this.host.counters.framesIn++;
    const rate = this.host.limits.rate;
    if (rate !== null && !take(this, now, rate)) return this.refuse(f, now);
    if (f.topic === PHOENIX_TOPIC) {
      if (f.event === Events.heartbeat) this.write(encodeReply(null, f.ref, PHOENIX_TOPIC, 'ok', {}));
      else if (f.event === 'refresh') this.refresh(f.payload, f.joinRef, f.ref, f.topic);
      else this.replyError(f.joinRef, f.ref, f.topic, Errors.UNKNOWN_EVENT(`unknown event ${f.event} on topic phoenix`));
      return;
    }
    if (f.event === Events.join) return this.join(f);
    const ch = this.channel(f.topic);
    if (!ch || (f.joinRef !== null && ch.joinRef !== f.joinRef)) {
      this.replyError(f.joinRef, f.ref, f.topic, Errors.UNMATCHED_TOPIC('unmatched topic'));
      return;
    }
    if (f.event === Events.leave) {
      this.removeChannel(ch, 'leave');
      this.write(encodeReply(f.joinRef, f.ref, f.topic, 'ok', {}));
      return;
    }
    try {
      ch.handler.handleIn(this, ch, f.event, f.payload, f.ref);
    } catch (err) {
      if (!(err instanceof SandbarError)) throw err;
      this.replyError(f.joinRef, f.ref, f.topic, err);
    }
  }

  /**
   * A frame over the rate limit gets an error reply and is not processed; a
   * client that keeps flooding regardless (more than rateMaxRefused refusals
   * within a second) is closed with 4429.
   */
  private refuse(f: Frame, now: number): void {
    if (now - this.refusedSince >= 1000) {
      this.refusedSince = now;
      this.refused = 0;
    }
    const max = this.host.limits.rateMaxRefused;
    if (++this.refused > max) {
      return this.stop({ kind: 'other', code: Errors.RATE_ABUSE.code, message: `more than ${max} frames refused for the rate limit within 1 s (session.rateMaxRefused)` });
    }
    metrics.refusals.inc(RATE_LIMITED.code);
    this.write(encodeReply(f.joinRef, f.ref, f.topic, 'error', RATE_LIMITED));
  }

  private join(f: Frame): void {
    const existing = this.channel(f.topic);
    if (existing) {
      if (existing.joinRef === f.joinRef) {
        this.replyError(f.joinRef, f.ref, f.topic, Errors.ALREADY_JOINED(`already joined ${f.topic} with join_ref ${f.joinRef}`));
        return;
      }
      // As Phoenix does: a join with a new join_ref replaces the old channel,
      // which the client hears of as phx_close (a client rejoining after a
      // timed-out join must not be refused).
      this.removeChannel(existing, 'replaced');
      this.write(encodePush(existing.joinRef, existing.topic, Events.close, {}));
    }
    const found = this.host.channels.lookup(f.topic);
    if (!found) {
      this.replyError(f.joinRef, f.ref, f.topic, Errors.UNMATCHED_TOPIC('unmatched topic'));
      return;
    }
    if (this.channelCount >= this.host.limits.maxChannels) {
      this.replyError(f.joinRef, f.ref, f.topic, Errors.TOO_MANY_CHANNELS(`too many channels: at most ${this.host.limits.maxChannels} per session (session.maxChannels)`));
      return;
    }
    const ch: JoinedChannel = { topic: f.topic, id: found.id, joinRef: f.joinRef, handler: found.handler, joined: false, state: undefined, grant: 0 };
    (this.channels ??= []).push(ch);
    try {
      found.handler.join(this, ch, f.payload, f.ref);
    } catch (err) {
      if (!(err instanceof SandbarError)) throw err;
      this.joinError(ch, f.ref, err);
    }
  }

  // ---- API for channel handlers ------------------------------------------------

  /** Accepts a pending join. Ignored if the channel was left or replaced meanwhile. */
  joinOk(ch: JoinedChannel, ref: string | null, response: unknown = {}): void {
    if (this.channel(ch.topic) !== ch) return;
    ch.joined = true;
    this.write(encodeReply(ch.joinRef, ref, ch.topic, 'ok', response));
  }

  /** Refuses a pending join: error reply, the channel is forgotten. */
  joinError(ch: JoinedChannel, ref: string | null, err: SandbarError): void {
    if (!this.forget(ch)) return;
    this.replyError(ch.joinRef, ref, ch.topic, err);
  }

  /** Replies to a push on a channel (text JSON, or binary bytes). */
  reply(ch: JoinedChannel, ref: string | null, status: 'ok' | 'error', response: unknown): void {
    if (response instanceof Uint8Array) this.write(encodeBinaryReply(ch.joinRef, ref, ch.topic, status, response));
    else this.write(encodeReply(ch.joinRef, ref, ch.topic, status, response));
  }

  replyError(joinRef: string | null, ref: string | null, topic: string, err: SandbarError): void {
    metrics.refusals.inc(err.code);
    this.write(encodeReply(joinRef, ref, topic, 'error', { reason: err.message, code: err.code }));
  }

  /** A server push on a joined channel. */
  push(ch: JoinedChannel, event: string, payload: unknown): void {
    this.write(encodePush(ch.joinRef, ch.topic, event, payload));
  }

  /** The channels whose join was accepted. */
  *joinedChannels(): IterableIterator<JoinedChannel> {
    if (this.channels) for (const ch of this.channels) if (ch.joined) yield ch;
  }


  /**
   * Writes an encoded frame (string: text frame; Buffer: binary frame unless
   * asText). A client that lets its outgoing buffer pass the bound is
   * disconnected: the server's memory must not grow with a slow reader.
   */
  write(data: string | Buffer, asText = false): void {
    const ws = this.socket;
    if (ws.readyState !== 1 /* OPEN */) return;
    ws.send(data, typeof data === 'string' || asText ? TEXT : BINARY);
    this.host.counters.framesOut++;
    this.host.counters.bytesOut += data.length;
    if (ws.bufferedAmount > this.host.limits.maxBufferedBytes) {
      this.stop({ kind: 'other', code: Errors.SLOW_CONSUMER.code, message: `outgoing buffer passed ${this.host.limits.maxBufferedBytes} bytes` });
    }
  }

  // ---- lifecycle -----------------------------------------------------------------

  /**
   * The session's one wheel slot: the token's exp (close 4401), the
   * token_expiring warning before it, and the idle deadline (re-armed lazily
   * from the last frame's time).
   */
  onTimer(now: number): void {
    this.guard(() => {
      if (now >= this.expAt) {
        return this.stop({ kind: 'other', code: Errors.AUTH_EXPIRED.code, message: 'the token expired and was not refreshed' });
      }
      if (now >= this.warnAt) {
        this.warnAt = Infinity;
        this.pushSession('token_expiring', { exp: this.identity.exp, in_ms: Math.max(0, Math.round(this.expAt - now)) });
      }
      if (now >= this.lastFrameAt + this.host.limits.idleTimeoutMs) {
        return this.stop({ kind: 'other', code: Errors.IDLE_TIMEOUT.code, message: `no frame for ${this.host.limits.idleTimeoutMs} ms` });
      }
      this.rearm(now);
    });
  }

  /**
   * A push to the client about its session: on `sandbar:session` when joined,
   * else on the `phoenix` topic (which `socket.onMessage` sees).
   */
  private pushSession(event: string, payload: unknown): void {
    const ch = this.channel(SESSION_TOPIC);
    if (ch?.joined) this.push(ch, event, payload);
    else this.write(encodePush(null, PHOENIX_TOPIC, event, payload));
  }

  /**
   * `refresh {token}` (on `sandbar:session` or `phoenix`): a fresh token for
   * the same user moves exp on; the verification's result comes back as a
   * mailbox message. Anything else is an error reply, and the old exp stands.
   */
  refresh(payload: unknown, joinRef: string | null, ref: string | null, topic: string): void {
    const token = payload && typeof payload === 'object' ? (payload as { token?: unknown }).token : undefined;
    this.host.verifyToken(token).then(
      (id) => this.post(new RefreshDone(joinRef, ref, topic, id, null)),
      (err: unknown) => this.post(new RefreshDone(joinRef, ref, topic, null, err instanceof SandbarError ? err : Errors.AUTH_INVALID('token could not be verified'))),
    );
  }

  /** The verified refresh (in the mailbox). */
  refreshed(r: RefreshDone): void {
    if (r.err) return this.replyError(r.joinRef, r.ref, r.topic, r.err);
    const id = r.identity!;
    if (id.userId !== this.userId) {
      return this.replyError(r.joinRef, r.ref, r.topic, Errors.AUTH_INVALID(`the token names user ${id.userId}, this session is ${this.userId}`));
    }
    this.identity = id;
    this.setExpiry(id.exp);
    this.rearm(this.host.wheel.clock.now());
    this.write(encodeReply(r.joinRef, r.ref, r.topic, 'ok', { exp: id.exp }));
  }

  /** Every session of a revoked user: close code 4403. */
  revoke(reason: string): void {
    this.stop({ kind: 'other', code: Errors.AUTH_REVOKED.code, message: reason === '' ? 'revoked' : `revoked: ${reason}` });
  }

  /** Closed by an operator (admin.kick): close code 4001. */
  kick(): void { this.stop({ kind: 'other', code: Errors.KICKED.code, message: 'closed by an operator' }); }

  /** A close code chosen by whoever stops the session (the server API's disconnect); 0: the reason's own. */
  private closeCode = 0;

  /** Closed by the server API (disconnect): the caller's close code (4000-4999) and reason. */
  disconnect(code: number, reason: string): void {
    this.closeCode = code;
    this.stop({ kind: 'other', code: Errors.DISCONNECTED.code, message: reason });
  }

  /** Ends a channel from the server side (the server API's unsubscribe): the client gets phx_close. */
  closeChannel(topic: string): boolean {
    const ch = this.channel(topic);
    if (!ch) return false;
    this.removeChannel(ch, 'leave');
    this.write(encodePush(ch.joinRef, ch.topic, Events.close, {}));
    return true;
  }

  /** Closes the session for a host shutdown (1012) or any stop reason with a code. */
  shutdown(): void { this.stop(SHUTDOWN); }

  private removeChannel(ch: JoinedChannel, reason: 'leave' | 'replaced' | 'closed'): void {
    this.forget(ch);
    ch.handler.leave(this, ch, reason);
  }

  protected override terminate(reason: StopReason): void {
    this.host.wheel.cancel(this);
    if (this.channels) {
      for (const ch of this.channels) {
        try { ch.handler.leave(this, ch, 'closed'); } catch (err) { this.host.logger.error({ err, session: this.id, topic: ch.topic }, 'channel leave failed'); }
      }
      this.channels = null;
    }
    const ws = this.socket;
    ws.session = undefined;
    if (ws.readyState === 0 || ws.readyState === 1) {
      const { code, message } = closeFor(reason);
      ws.close(this.closeCode || code, message);
      // A client that does not read will never complete the closing handshake.
      if (code === ErrorCodes.SANDBAR_ERR_SLOW_CONSUMER.closeCode) ws.terminate();
    }
  }
}

/** The close code and reason (≤ 123 bytes, as RFC 6455 allows) for a stop reason. */
function closeFor(reason: StopReason): { code: number; message: string } {
  switch (reason.kind) {
    case 'normal': return { code: 1000, message: '' };
    case 'shutdown': return { code: Errors.SHUTTING_DOWN.closeCode!, message: 'server restarting' };
    case 'other': return { code: ErrorCodes[reason.code as ErrorCode]?.closeCode ?? 1011, message: truncate(`${reason.code}: ${reason.message}`) };
    case 'crash': {
      const e = reason.error;
      if (e instanceof SandbarError && e.closeCode) return { code: e.closeCode, message: truncate(`${e.code}: ${e.message}`) };
      return { code: Errors.SESSION_CRASHED.closeCode!, message: Errors.SESSION_CRASHED.code };
    }
  }
}

function truncate(s: string): string {
  return Buffer.byteLength(s) <= 123 ? s : Buffer.from(s).subarray(0, 120).toString('utf8').replace(/\uFFFD$/, '') + '...';
}

/** The result of a refresh's token check, back in the session's mailbox. */
class RefreshDone implements SessionInfo {
  constructor(readonly joinRef: string | null, readonly ref: string | null, readonly topic: string, readonly identity: Identity | null, readonly err: SandbarError | null) {}
  run(s: SessionActor): void { s.refreshed(this); }
}
