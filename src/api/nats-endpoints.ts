/**
 * The server API as NATS micro endpoints `sandbar.<c>.api.<operation>`, part
 * of each primary's `sandbar` service (beside admin.*): `nats req
 * sandbar.<c>.api.publish '{"room": ..., "id": ..., "body": ...}'`. The
 * primary holds no actors, so each request is handed to one of its workers
 * over IPC (in turn), which runs it exactly as an HTTP request (ApiService),
 * and the answer or error comes back the same way. Who may call these is a
 * matter of NATS permissions (docs/api.md), not of api.keys.
 */
import type { Worker } from 'node:cluster';
import { Errors, SandbarError, httpStatusOf, type ErrorCode, type HttpErrorBody } from '../errors.js';
import type { Subjects } from '../bus/subjects.js';
import { API_OPERATIONS, type ApiOperation } from '../config/integration-rules.js';
import type { EndpointSpec } from '../admin/micro.js';
import { OPERATIONS } from './schemas.js';

/** Primary → worker: run one operation; worker → primary: its answer. */
export type ApiToWorker = { t: 'api'; id: number; op: ApiOperation; body: string };
export type ApiToPrimary = { t: 'api'; id: number; ok: true; res: unknown } | { t: 'api'; id: number; ok: false; err: HttpErrorBody['error'] };

interface Waiting { resolve(v: unknown): void; reject(e: unknown): void; timer: NodeJS.Timeout }

export class ApiForwarder {
  private next = 0;
  private turn = 0;
  private readonly waiting = new Map<number, Waiting>();

  constructor(private readonly workers: () => Worker[], private readonly timeoutMs: number) {}

  call(op: ApiOperation, body: Uint8Array): Promise<unknown> {
    const ready = this.workers();
    if (ready.length === 0) return Promise.reject(Errors.UNAVAILABLE('no worker of this host is ready'));
    const w = ready[this.turn++ % ready.length]!;
    const id = ++this.next;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(Errors.UNAVAILABLE(`the worker did not answer within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.waiting.set(id, { resolve, reject, timer });
      w.send({ t: 'api', id, op, body: Buffer.from(body).toString('utf8') } satisfies ApiToWorker);
    });
  }

  onReply(msg: ApiToPrimary): void {
    const w = this.waiting.get(msg.id);
    if (!w) return;
    this.waiting.delete(msg.id);
    clearTimeout(w.timer);
    if (msg.ok) { w.resolve(msg.res); return; }
    // Rebuilt as a typed error; its status is the HTTP one (Nats-Service-Error-Code).
    const e = Object.assign(new SandbarError(msg.err.code as ErrorCode, msg.err.message), { status: httpStatusOf(msg.err.code) }, msg.err.field ? { field: msg.err.field } : {});
    w.reject(e);
  }
}

export function apiEndpoints(s: Subjects, forwarder: ApiForwarder): EndpointSpec[] {
  return API_OPERATIONS.map((op) => ({
    name: `api-${op}`,
    subject: s.api(op),
    metadata: { description: OPERATIONS[op].summary },
    handler: (req) => forwarder.call(op, req.data),
  }));
}
