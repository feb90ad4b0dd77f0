/**
 * The server API's operations, run in a worker: the HTTP listener of that
 * worker and the NATS micro endpoints (forwarded by the primary over IPC)
 * both call {@link ApiService.call}, so both validate with the same schemas
 * and give the same answers and errors.
 *
 * Writes go through the worker bus exactly as a client's push does (a
 * command with a correlation id, resent until the shard's master answers or
 * request.timeoutMs passes), so `publish` and `dm` are answered `{seq, epoch}`
 * only once stored and replicated: the guarantee of a client's ok. Reads ask
 * the serving master with one NATS request.
 */
import { randomUUID } from 'node:crypto';
import { errors as natsErrors, type NatsConnection } from '@nats-io/transport-node';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { Errors, SandbarError, httpError } from '../errors.js';
import type { ReplyTarget, WorkerBus } from '../bus/worker-bus.js';
import type { Cmd, HistoryQuery } from '../bus/messages.js';
import type { Subjects } from '../bus/subjects.js';
import type { UserControl } from '../bus/user-control.js';
import type { SandbarConfig } from '../config/types.js';
import { API_OPERATIONS, type ApiOperation } from '../config/integration-rules.js';
import type { Logger } from '../observability/logger.js';
import { shardOf } from '../placement/shard.js';
import { checkBody } from '../protocol/user-channel.js';
import { SYSTEM_SENDER, userDisconnected, type EventSink } from '../events/schema.js';
import { OPERATIONS } from './schemas.js';
import { revokeUser } from '../auth/revocation.js';

/** The close code of a revocation. */
const REVOKED_CODE = Errors.AUTH_REVOKED.closeCode!;

/** The codes of a bad field. */
type FieldCode = typeof Errors.BAD_PAYLOAD.code | typeof Errors.INVALID_ID.code | typeof Errors.TOO_LARGE.code;

/** A bad request: the code, and the field it is about (`{error: {code, message, field}}`, with the code's HTTP status). */
export class FieldError extends SandbarError {
  constructor(code: FieldCode, readonly field: string, message: string) {
    super(code, message);
  }
}

/** One write's answer, as a promise (the bus calls back once). */
class Answer implements ReplyTarget {
  resolve!: (v: unknown) => void;
  reject!: (e: unknown) => void;
  readonly promise = new Promise<unknown>((res, rej) => { this.resolve = res; this.reject = rej; });
  onReply(ok: boolean, res: unknown, err: SandbarError | null): void {
    if (ok) this.resolve(res);
    else this.reject(err);
  }
}

export interface ApiDeps {
  readonly bus: WorkerBus;
  readonly nc: NatsConnection;
  readonly subjects: Subjects;
  readonly config: SandbarConfig;
  readonly logger: Logger;
  readonly userControl: UserControl;
  /** The events stream (events.enabled), for user.disconnected. */
  readonly events: EventSink | null;
}

const DEFAULT_LIMIT = 100;
const DISCONNECT_CODE = 4002;

export function isOperation(op: string): op is ApiOperation {
  return (API_OPERATIONS as readonly string[]).includes(op);
}

export class ApiService {
  private readonly validators = new Map<ApiOperation, ValidateFunction>();
  private readonly maxReadBytes: number;

  constructor(private readonly d: ApiDeps) {
    const ajv = new Ajv({ allErrors: false, strict: false });
    for (const op of API_OPERATIONS) this.validators.set(op, ajv.compile(OPERATIONS[op].request));
    this.maxReadBytes = Math.floor(((d.nc.info?.max_payload ?? 1048576) - 4096) / 2);
  }

  /** Runs one operation; throws a SandbarError (a FieldError for a bad field). */
  async call(op: string, body: unknown): Promise<unknown> {
    if (!isOperation(op)) throw Errors.API_UNKNOWN_OPERATION(`no operation "${op}"; the operations are ${API_OPERATIONS.join(', ')}`);
    const validate = this.validators.get(op)!;
    if (!validate(body)) throw fieldError(validate.errors?.[0]);
    const b = body as Record<string, unknown>;
    switch (op) {
      case 'publish': return this.publish(b.room as string, b);
      case 'broadcast': return this.broadcast(b);
      case 'dm': {
        const cmd: Cmd = { op: 'u.dm', id: b.to as string, from: this.sender(b), mid: b.id as string, body: b.body, size: this.size(b), cid: 0, rw: '' };
        return this.write(cmd);
      }
      case 'presence': {
        const { kind, id } = roomOrUser(b);
        const info = await this.read(kind === 'room' ? { op: 'r.info', id } : { op: 'u.info', id }) as { presence?: unknown };
        return { [kind]: id, presence: info.presence ?? {} };
      }
      case 'history': {
        const { kind, id } = roomOrUser(b);
        if (b.after !== undefined && b.before !== undefined) throw new FieldError(Errors.BAD_PAYLOAD.code, 'before', 'give after or before, not both');
        const q: HistoryQuery = { op: kind === 'room' ? 'r.hist' : 'u.hist', id, after: (b.after as number | undefined) ?? 0, before: (b.before as number | undefined) ?? null, limit: (b.limit as number | undefined) ?? DEFAULT_LIMIT, maxBytes: this.maxReadBytes };
        return { [kind]: id, ...(await this.read(q) as object) };
      }
      case 'disconnect': {
        const user = b.user as string;
        const code = (b.code as number | undefined) ?? DISCONNECT_CODE;
        const reason = (b.reason as string | undefined) ?? 'disconnected by the server API';
        // revoke: the auth mechanism (docs/auth.md): close with 4403 and refuse the user's
        // tokens issued until now for auth.revocationTtlS, so the client cannot reconnect at once.
        if (b.revoke === true) revokeUser(this.d.nc, this.d.subjects, user, reason);
        else await this.d.userControl.send({ t: 'disconnect', user, code, reason });
        const ev = this.d.events;
        if (ev?.wants('user.disconnected')) ev.publish(userDisconnected(user, (b.id as string | undefined) ?? randomUUID(), code, reason, Date.now()), user);
        this.d.logger.info({ user, code }, 'user disconnected by the server API');
        return { user, code: b.revoke === true ? REVOKED_CODE : code };
      }
      case 'unsubscribe': {
        await this.d.userControl.send({ t: 'unsubscribe', user: b.user as string, room: b.room as string });
        return { user: b.user, room: b.room };
      }
    }
  }

  private sender(b: Record<string, unknown>): string {
    return (b.from as string | undefined) ?? SYSTEM_SENDER;
  }

  /** Checks the body against message.maxBytes; its encoded length (counted by the storage budget). */
  private size(b: Record<string, unknown>): number {
    try {
      return checkBody(b.body, this.d.config.message.maxBytes);
    } catch (err) {
      throw new FieldError((err as SandbarError).code as FieldCode, 'body', (err as Error).message);
    }
  }

  private publish(room: string, b: Record<string, unknown>, size = this.size(b)): Promise<unknown> {
    return this.write({ op: 'r.msg', id: room, from: this.sender(b), mid: b.id as string, body: b.body, size, cid: 0, rw: '' });
  }

  private async broadcast(b: Record<string, unknown>): Promise<unknown> {
    const rooms = b.rooms as string[];
    const max = this.d.config.api.maxBroadcastRooms;
    if (rooms.length > max) throw new FieldError(Errors.BAD_PAYLOAD.code, 'rooms', `rooms names ${rooms.length} rooms; at most ${max} (api.maxBroadcastRooms)`);
    const size = this.size(b);
    const results = await Promise.all(rooms.map((room) => this.publish(room, b, size).then(
      (r) => ({ room, ...(r as object) }),
      (err: unknown) => ({ room, error: httpError(err).body.error }),
    )));
    return { results };
  }

  private write(cmd: Cmd): Promise<unknown> {
    const a = new Answer();
    this.d.bus.request(shardOf(cmd.id, this.d.config.shards), cmd as Cmd & { cid: number; rw: string }, a);
    return a.promise;
  }

  /** Asks the serving master; a shard with no master yet (start-up, failover) is asked again until request.timeoutMs. */
  private async read(q: { op: 'u.info' | 'r.info'; id: string } | HistoryQuery): Promise<unknown> {
    const shard = shardOf(q.id, this.d.config.shards);
    const deadline = Date.now() + this.d.config.request.timeoutMs;
    const data = JSON.stringify(q);
    for (;;) {
      const left = deadline - Date.now();
      try {
        const r = await this.d.nc.request(this.d.subjects.shardCmd(shard), data, { timeout: Math.max(50, Math.min(left, 2000)) });
        return r.json();
      } catch (err) {
        if (Date.now() + 100 >= deadline) {
          throw Errors.UNAVAILABLE(`shard ${shard} of ${q.id} did not answer within ${this.d.config.request.timeoutMs} ms (request.timeoutMs)`, { cause: err });
        }
        if (err instanceof natsErrors.RequestError && err.isNoResponders()) await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
}

function roomOrUser(b: Record<string, unknown>): { kind: 'room' | 'user'; id: string } {
  if (b.room !== undefined && b.user !== undefined) throw new FieldError(Errors.BAD_PAYLOAD.code, 'user', 'give room or user, not both');
  if (b.room !== undefined) return { kind: 'room', id: b.room as string };
  if (b.user !== undefined) return { kind: 'user', id: b.user as string };
  throw new FieldError(Errors.BAD_PAYLOAD.code, 'room', 'missing field "room" or "user"');
}

/** A schema failure as a FieldError naming the field. */
function fieldError(e: ErrorObject | undefined): FieldError {
  if (!e) return new FieldError(Errors.BAD_PAYLOAD.code, '', 'the request body is not valid');
  const path = e.instancePath.replace(/^\//, '').replace(/\//g, '.');
  if (e.keyword === 'required') {
    const f = (e.params as { missingProperty: string }).missingProperty;
    return new FieldError(Errors.BAD_PAYLOAD.code, path ? `${path}.${f}` : f, `missing field "${path ? `${path}.${f}` : f}"`);
  }
  if (e.keyword === 'additionalProperties') {
    const f = (e.params as { additionalProperty: string }).additionalProperty;
    return new FieldError(Errors.BAD_PAYLOAD.code, path ? `${path}.${f}` : f, `unknown field "${path ? `${path}.${f}` : f}"`);
  }
  if (path === '') return new FieldError(Errors.BAD_PAYLOAD.code, '', `the request body ${e.message ?? 'is not valid'} (a JSON object is expected)`);
  const isId = e.keyword === 'pattern' && (e.schemaPath.includes('/room/') || e.schemaPath.includes('/user/') || e.schemaPath.includes('/to/') || e.schemaPath.includes('/from/') || e.schemaPath.includes('/rooms/'));
  if (isId) return new FieldError(Errors.INVALID_ID.code, path, `field "${path}" is not an id: 1-64 characters of A-Z a-z 0-9 _ - . @`);
  return new FieldError(Errors.BAD_PAYLOAD.code, path, `field "${path}" ${e.message ?? 'is not valid'}`);
}
