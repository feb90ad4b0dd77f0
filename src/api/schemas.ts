/**
 * The server API's operations and their JSON Schemas: one request schema and
 * one answer schema per operation. The same schemas validate a request over
 * HTTP (`POST /api/<operation>`) and over NATS (`sandbar.<c>.api.<operation>`),
 * and the OpenAPI document (`GET /api/openapi.json`) is generated from them.
 */
import type { ApiOperation } from '../config/integration-rules.js';

const ID = { type: 'string', pattern: '^[A-Za-z0-9_.@-]{1,64}$', description: 'A user or room id: 1-64 characters of A-Z a-z 0-9 _ - . @' } as const;
const MESSAGE_ID = { type: 'string', minLength: 1, maxLength: 128, description: 'The caller\'s id for this write: a retry with the same id (and the same from) is not stored twice (docs/api.md, idempotency)' } as const;
const BODY = { description: 'Any JSON value, at most message.maxBytes as JSON' } as const;
const FROM = { ...ID, description: 'The sender shown to clients: a user or bot id. Omitted: the system ($system)' } as const;
const SEQ = { type: 'integer', minimum: 0 } as const;
const STORED = {
  type: 'object',
  required: ['seq', 'epoch'],
  properties: { seq: SEQ, epoch: { type: 'integer', description: 'Ownership epoch of the shard that stored it' }, duplicate: { type: 'boolean', description: 'true: a retry of a write already stored (seq is the original\'s)' } },
} as const;
const ERROR = {
  type: 'object',
  required: ['error'],
  properties: { error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' }, field: { type: 'string' } } } },
} as const;
const META = { type: 'object', required: ['phx_ref', 'online_at'], properties: { phx_ref: { type: 'string' }, online_at: { type: 'integer' }, device: { type: 'string' } }, additionalProperties: true } as const;
const PRESENCE = { type: 'object', description: 'Phoenix Presence state: user id → {metas: [one per connection]}', additionalProperties: { type: 'object', properties: { metas: { type: 'array', items: META } } } } as const;
const MESSAGE = { type: 'object', required: ['seq', 'from', 'id', 'body', 'at'], properties: { seq: SEQ, from: { type: 'string' }, id: { type: 'string' }, body: {}, at: { type: 'integer' } } } as const;
const ROOM_OR_USER = { room: { ...ID, description: 'A room id (exactly one of room, user)' }, user: { ...ID, description: 'A user id (exactly one of room, user)' } } as const;

export interface OperationSpec {
  readonly summary: string;
  /** Writes go through the shard's replication; reads are answered by the master alone. */
  readonly write: boolean;
  readonly request: object;
  readonly response: object;
}

export const OPERATIONS: Record<ApiOperation, OperationSpec> = {
  publish: {
    summary: 'Publish a message to a room, stored and sequenced like a client msg; answered once stored and replicated.',
    write: true,
    request: { type: 'object', required: ['room', 'id', 'body'], additionalProperties: false, properties: { room: ID, id: MESSAGE_ID, body: BODY, from: FROM } },
    response: STORED,
  },
  broadcast: {
    summary: 'Publish one message to many rooms (each stored and sequenced in its room); one result per room.',
    write: true,
    request: { type: 'object', required: ['rooms', 'id', 'body'], additionalProperties: false, properties: { rooms: { type: 'array', items: ID, minItems: 1, uniqueItems: true, description: 'At most api.maxBroadcastRooms' }, id: MESSAGE_ID, body: BODY, from: FROM } },
    response: {
      type: 'object', required: ['results'],
      properties: { results: { type: 'array', items: { type: 'object', required: ['room'], properties: { room: { type: 'string' }, seq: SEQ, epoch: { type: 'integer' }, duplicate: { type: 'boolean' }, error: ERROR.properties.error } } } },
    },
  },
  dm: {
    summary: 'Send a direct message to a user\'s inbox (as a user, a bot or the system); answered once stored and replicated.',
    write: true,
    request: { type: 'object', required: ['to', 'id', 'body'], additionalProperties: false, properties: { to: ID, id: MESSAGE_ID, body: BODY, from: FROM } },
    response: STORED,
  },
  presence: {
    summary: 'Who is in a room, or the connections of a user, as a Phoenix Presence state.',
    write: false,
    request: { type: 'object', additionalProperties: false, properties: ROOM_OR_USER },
    response: { type: 'object', required: ['presence'], properties: { room: { type: 'string' }, user: { type: 'string' }, presence: PRESENCE } },
  },
  history: {
    summary: 'A page of a room\'s kept history or of a user\'s inbox (unacknowledged dms), by seq, oldest first.',
    write: false,
    request: {
      type: 'object', additionalProperties: false,
      properties: {
        ...ROOM_OR_USER,
        after: { type: 'integer', minimum: 0, description: 'Messages with seq > after (default 0: from the oldest kept)' },
        before: { type: 'integer', minimum: 1, description: 'Instead: the newest messages with seq < before (paging backwards)' },
        limit: { type: 'integer', minimum: 1, maximum: 1000, description: 'At most this many (default 100); fewer when the page would pass half the NATS max_payload' },
      },
    },
    response: { type: 'object', required: ['seq', 'messages', 'more'], properties: { room: { type: 'string' }, user: { type: 'string' }, seq: { ...SEQ, description: 'The last seq of the room or user' }, messages: { type: 'array', items: MESSAGE }, more: { type: 'boolean', description: 'More messages lie beyond this page in its direction' } } },
  },
  disconnect: {
    summary: 'Close every session of a user, on every host, with a close code and reason; with revoke, also refuse the user\'s current tokens for auth.revocationTtlS (the client may reconnect otherwise).',
    write: true,
    request: { type: 'object', required: ['user'], additionalProperties: false, properties: { user: ID, code: { type: 'integer', minimum: 4000, maximum: 4999, description: 'WebSocket close code (default 4002)' }, reason: { type: 'string', maxLength: 100 }, revoke: { type: 'boolean', description: 'Also revoke: close with 4403 and refuse the user\'s tokens issued until now for auth.revocationTtlS (docs/auth.md); code is then 4403' }, id: { ...MESSAGE_ID, description: 'The caller\'s id of this request (names the user.disconnected event)' } } },
    response: { type: 'object', required: ['user', 'code'], properties: { user: { type: 'string' }, code: { type: 'integer' } } },
  },
  unsubscribe: {
    summary: 'End a user\'s channels on a room on every host (the client gets phx_close, and leaves the room\'s presence).',
    write: true,
    request: { type: 'object', required: ['user', 'room'], additionalProperties: false, properties: { user: ID, room: ID } },
    response: { type: 'object', required: ['user', 'room'], properties: { user: { type: 'string' }, room: { type: 'string' } } },
  },
};

export const ERROR_SCHEMA = ERROR;
