/**
 * Phoenix Channels V2 text frames: `[join_ref, ref, topic, event, payload]`.
 *
 * The decoder is strict because every later stage trusts its output; the
 * encoders build the JSON text by concatenation (no intermediate array) since
 * they run once per outgoing message.
 */
import { Errors, SandbarError } from '../errors.js';

/** One decoded frame, text or binary. */
export interface Frame {
  /** Ref of the channel join this frame belongs to; null outside a channel (heartbeat, broadcast). */
  joinRef: string | null;
  /** Ref the client expects back in the phx_reply; null for server pushes and broadcasts. */
  ref: string | null;
  topic: string;
  event: string;
  /** Any JSON value for text frames (an object normally); a `Uint8Array` view for binary frames. */
  payload: unknown;
}

/** Reserved Phoenix event names and the topic of the socket-level heartbeat. */
export const Events = {
  join: 'phx_join',
  leave: 'phx_leave',
  reply: 'phx_reply',
  error: 'phx_error',
  close: 'phx_close',
  heartbeat: 'heartbeat',
} as const;

/** Topic of socket-level messages (the heartbeat), as the phoenix client sends it. */
export const PHOENIX_TOPIC = 'phoenix';

/** Status of a phx_reply. */
export type ReplyStatus = 'ok' | 'error';

function malformed(reason: string, cause?: unknown): SandbarError {
  return Errors.FRAME_MALFORMED(reason, cause === undefined ? undefined : { cause });
}

/**
 * Decode one text frame.
 *
 * Refs must be strings or null: the phoenix client always sends strings, so a
 * number means a different (or broken) client and is refused rather than guessed at.
 * @throws SandbarError SANDBAR_ERR_FRAME_MALFORMED with the precise reason.
 */
/** Deepest JSON nesting a frame may have: deeper ones are refused before parsing (a 4,000-deep body overflowed the stack when copied). */
export const MAX_JSON_DEPTH = 64;

/** Nesting depth of JSON text, by one scan that skips strings. */
function jsonDepth(text: string, limit: number): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \\ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 /* [ */ || c === 123 /* { */) {
      if (++depth > max) { max = depth; if (max > limit) return max; }
    } else if (c === 93 || c === 125) depth--;
  }
  return max;
}

export function decodeText(text: string): Frame {
  if (jsonDepth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) throw malformed(`JSON nested deeper than ${MAX_JSON_DEPTH} levels`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    // The parser's own message quotes the input; keep client data out of the reason.
    throw malformed('frame is not valid JSON', err);
  }
  if (!Array.isArray(value)) {
    throw malformed(value !== null && typeof value === 'object'
      ? 'frame is a JSON object, not an array (Phoenix V1 frames are not supported; connect with vsn=2.0.0)'
      : 'frame is not a JSON array');
  }
  if (value.length !== 5) throw malformed(`frame has ${value.length} elements, expected 5 [join_ref, ref, topic, event, payload]`);
  const [joinRef, ref, topic, event, payload] = value as unknown[];
  if (joinRef !== null && typeof joinRef !== 'string') throw malformed('join_ref must be a string or null');
  if (ref !== null && typeof ref !== 'string') throw malformed('ref must be a string or null');
  if (typeof topic !== 'string' || topic.length === 0) throw malformed('topic must be a non-empty string');
  if (typeof event !== 'string' || event.length === 0) throw malformed('event must be a non-empty string');
  return { joinRef, ref, topic, event, payload };
}

/** JSON text of a payload; `undefined` (or a function) becomes `{}` like Phoenix's empty map. */
function json(value: unknown): string {
  return JSON.stringify(value) ?? '{}';
}

/** JSON text of a ref: a string or `null`. */
function refJson(ref: string | null): string {
  return ref === null ? 'null' : JSON.stringify(ref);
}

/**
 * Encode a frame whose payload is already JSON text, without parsing or
 * re-serializing it. The caller guarantees `payloadJson` is valid JSON
 * (normally the output of `JSON.stringify`).
 */
export function encodeWithRawPayload(joinRef: string | null, ref: string | null, topic: string, event: string, payloadJson: string): string {
  return `[${refJson(joinRef)},${refJson(ref)},${JSON.stringify(topic)},${JSON.stringify(event)},${payloadJson}]`;
}

/**
 * Encode a phx_reply answering the push `ref` of channel `joinRef`:
 * `[join_ref, ref, topic, "phx_reply", {"status": status, "response": response}]`.
 * An undefined response is sent as `{}`.
 */
export function encodeReply(joinRef: string | null, ref: string | null, topic: string, status: ReplyStatus, response: unknown): string {
  return encodeWithRawPayload(joinRef, ref, topic, Events.reply, `{"status":${JSON.stringify(status)},"response":${json(response)}}`);
}

/** Encode a server push to one joined channel: `[join_ref, null, topic, event, payload]`. */
export function encodePush(joinRef: string | null, topic: string, event: string, payload: unknown): string {
  return encodeWithRawPayload(joinRef, null, topic, event, json(payload));
}

/**
 * The text before the payload of a broadcast frame, `[null,null,topic,event,`.
 * A broadcast frame is `prefix + payloadJson + "]"`, so a room can serialize a
 * message once and write the same string to every member's socket.
 */
export function encodeBroadcastPrefix(topic: string, event: string): string {
  return `[null,null,${JSON.stringify(topic)},${JSON.stringify(event)},`;
}

/** Encode a broadcast `[null, null, topic, event, payload]` (Phoenix sends broadcasts without join_ref). */
export function encodeBroadcast(topic: string, event: string, payload: unknown): string {
  return `${encodeBroadcastPrefix(topic, event)}${json(payload)}]`;
}
