/**
 * Rules for the keys of the server API, the events stream, webhooks and
 * client events (api.*, events.*, webhooks.*, room.clientEvents): the format
 * of each list entry, and the rules between keys. Used by load.ts; a broken
 * rule stops start-up with exit 78, naming the key, the value and what was
 * expected.
 */

/** The operations of the server API (docs/api.md), as named in api.keys. */
export const API_OPERATIONS = ['publish', 'broadcast', 'dm', 'presence', 'history', 'disconnect', 'unsubscribe'] as const;
export type ApiOperation = (typeof API_OPERATIONS)[number];

/** The event types of the events stream (docs/api.md, src/events/schema.ts). */
export const EVENT_TYPES = [
  'room.message', 'dm.stored', 'dm.delivered', 'dm.acked', 'presence.join', 'presence.leave',
  'session.connected', 'session.disconnected', 'user.disconnected',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** One configured API key: its name (logs, metrics), what it may do, and the secret itself. */
export interface ApiKeySpec { readonly name: string; readonly ops: ReadonlySet<ApiOperation>; readonly key: string }

const KEY_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const KEY_SECRET = /^[A-Za-z0-9_.~+/=-]{16,256}$/;

/** Parses `<name>:<ops>:<key>`; returns the problem in words when it is not one. */
export function parseApiKey(entry: string): ApiKeySpec | string {
  const first = entry.indexOf(':');
  const second = first < 0 ? -1 : entry.indexOf(':', first + 1);
  if (second < 0) return '"<name>:<operations>:<key>"';
  const name = entry.slice(0, first);
  const opsText = entry.slice(first + 1, second);
  const key = entry.slice(second + 1);
  if (!KEY_NAME.test(name)) return 'a name of 1-64 characters of A-Z a-z 0-9 _ - before the first ":"';
  if (!KEY_SECRET.test(key)) return 'a key of 16-256 characters of A-Z a-z 0-9 _ - . ~ + / = after the second ":"';
  const ops = new Set<ApiOperation>();
  for (const op of opsText.split('|')) {
    if (op === '*') for (const o of API_OPERATIONS) ops.add(o);
    else if ((API_OPERATIONS as readonly string[]).includes(op)) ops.add(op as ApiOperation);
    else return `operations "*" or a "|"-separated list of ${API_OPERATIONS.join(', ')} (got "${op}")`;
  }
  return { name, ops, key };
}

/** `<namespace>:<event>` of room.clientEvents. */
const CLIENT_EVENT = /^(\*|[A-Za-z0-9_@-]{1,64}):([A-Za-z0-9_.-]{1,64})$/;
const RESERVED_EVENTS = new Set(['msg', 'presence', 'presence_state', 'presence_diff', 'phx_join', 'phx_leave', 'phx_reply', 'phx_close', 'phx_error']);

type Rule = (v: unknown) => { what: string; value: unknown; expected: string } | undefined;

function eachEntry(key: string, check: (s: string) => string | undefined): Rule {
  return (v) => {
    const list = v as readonly string[];
    for (let i = 0; i < list.length; i++) {
      const problem = check(list[i]!);
      if (problem !== undefined) return { what: `${key}[${i}]`, value: list[i], expected: problem };
    }
    return undefined;
  };
}

/** Per-key rules beyond type and range (merged into load.ts's extraRules). */
export const integrationRules: Record<string, Rule> = {
  'api.keys': eachEntry('api.keys', (s) => { const r = parseApiKey(s); return typeof r === 'string' ? r : undefined; }),
  'events.types': eachEntry('events.types', (s) => (s === '*' || (EVENT_TYPES as readonly string[]).includes(s) ? undefined : `"*" or one of ${EVENT_TYPES.join(', ')}`)),
  'room.clientEvents': eachEntry('room.clientEvents', (s) => {
    const m = CLIENT_EVENT.exec(s);
    if (!m) return '"<namespace>:<event>" (namespace "*" or 1-64 characters of A-Z a-z 0-9 _ - @; event 1-64 characters of A-Z a-z 0-9 _ . -)';
    return RESERVED_EVENTS.has(m[2]!) ? `an event other than the channel's own ${[...RESERVED_EVENTS].join(', ')}` : undefined;
  }),
  'webhooks.urls': eachEntry('webhooks.urls', (s) => {
    try {
      const u = new URL(s);
      return (u.protocol === 'http:' || u.protocol === 'https:') && u.username === '' && u.password === '' ? undefined : 'an http:// or https:// URL without credentials';
    } catch {
      return 'an http:// or https:// URL';
    }
  }),
};

/** Whether an address is on the loopback interface (the API may run without keys there). */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

type Values = ReadonlyMap<string, unknown>;
type Invalid = (what: string, value: unknown, source: string, problem: string, secret?: boolean) => Error;

/** Rules between keys; throws the first broken one. */
export function checkIntegration(values: Values, sources: Record<string, string>, invalid: Invalid): void {
  const host = values.get('api.host') as string;
  if (values.has('api.port') && !values.has('api.keys') && !isLoopback(host)) {
    throw invalid('api.host', host, sources['api.host']!, `expected a loopback address (127.0.0.1, ::1, localhost) while api.keys is unset: the server API (api.port = ${String(values.get('api.port'))}, from ${sources['api.port']}) would be open to anyone on the network; set api.keys`);
  }
  const keys = values.get('api.keys') as readonly string[] | undefined;
  if (keys) {
    const names = new Set<string>();
    for (let i = 0; i < keys.length; i++) {
      const k = parseApiKey(keys[i]!) as ApiKeySpec;
      if (names.has(k.name)) throw invalid(`api.keys[${i}]`, keys[i], sources['api.keys']!, `expected a name used once (name "${k.name}" is used twice)`, true);
      names.add(k.name);
    }
  }
  if (values.has('webhooks.urls')) {
    if (!values.has('webhooks.secret')) throw invalid('webhooks.urls', values.get('webhooks.urls'), sources['webhooks.urls']!, 'expected webhooks.secret to be set as well (every request is signed)');
    if (values.get('events.enabled') !== true) throw invalid('webhooks.urls', values.get('webhooks.urls'), sources['webhooks.urls']!, `expected events.enabled = true (webhooks deliver the events stream; events.enabled is false, from ${sources['events.enabled']})`);
  }
  if ((values.get('webhooks.backoffMs') as number) > (values.get('webhooks.maxBackoffMs') as number)) {
    throw invalid('webhooks.backoffMs', values.get('webhooks.backoffMs'), sources['webhooks.backoffMs']!, `expected at most webhooks.maxBackoffMs = ${String(values.get('webhooks.maxBackoffMs'))}`);
  }
}
