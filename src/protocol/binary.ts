/**
 * Phoenix V2 binary frames, byte for byte as the phoenix client's serializer
 * (`assets/js/phoenix/serializer.js`) writes and reads them. Every size is one
 * byte, so each string field holds at most 255 UTF-8 bytes.
 *
 * | kind          | direction       | header bytes                                     | then                                   |
 * |---------------|-----------------|--------------------------------------------------|----------------------------------------|
 * | 0 push        | client → server | kind, join_ref size, ref size, topic size, event size | join_ref, ref, topic, event, payload |
 * | 0 push        | server → client | kind, join_ref size, topic size, event size      | join_ref, topic, event, payload        |
 * | 1 reply       | server → client | kind, join_ref size, ref size, topic size, status size | join_ref, ref, topic, status, payload |
 * | 2 broadcast   | server → client | kind, topic size, event size                     | topic, event, payload                  |
 *
 * The two push layouts differ because a server push carries no ref.
 */
import { Errors, SandbarError } from '../errors.js';
import type { Frame, ReplyStatus } from './frame.js';

/** Frame kinds of the binary layout. */
export const BinaryKind = { push: 0, reply: 1, broadcast: 2 } as const;

const MAX_FIELD_BYTES = 255;
/** Client push header: kind + four sizes. */
const CLIENT_PUSH_HEADER = 5;

// fatal: a string field that is not UTF-8 is a broken frame, not something to patch with U+FFFD.
const utf8 = new TextDecoder('utf-8', { fatal: true });

function bad(reason: string): SandbarError {
  return Errors.FRAME_BINARY(reason);
}

function text(bytes: Uint8Array, start: number, size: number, name: string): string {
  try {
    return utf8.decode(bytes.subarray(start, start + size));
  } catch {
    throw bad(`${name} is not valid UTF-8`);
  }
}

/**
 * Decode a binary push from a client (kind 0).
 *
 * The payload is a `Uint8Array` view into `bytes` (no copy), so `bytes` must
 * not be reused while the frame is in use. The layout cannot carry null, so a
 * zero-length join_ref or ref decodes as `null`.
 * @throws SandbarError SANDBAR_ERR_FRAME_BINARY for an unknown or server-only
 *   kind, a truncated frame, an empty topic or event, or non-UTF-8 strings.
 */
export function decodeBinary(bytes: Uint8Array): Frame {
  if (bytes.length === 0) throw bad('empty binary frame');
  const kind = bytes[0];
  if (kind === BinaryKind.reply || kind === BinaryKind.broadcast) {
    throw bad(`binary frame of kind ${kind} (${kind === BinaryKind.reply ? 'reply' : 'broadcast'}) is sent only by the server`);
  }
  if (kind !== BinaryKind.push) throw bad(`unknown binary frame kind ${kind}`);
  if (bytes.length < CLIENT_PUSH_HEADER) throw bad(`binary frame of ${bytes.length} bytes is shorter than its ${CLIENT_PUSH_HEADER}-byte header`);
  const joinRefSize = bytes[1], refSize = bytes[2], topicSize = bytes[3], eventSize = bytes[4];
  const end = CLIENT_PUSH_HEADER + joinRefSize + refSize + topicSize + eventSize;
  if (end > bytes.length) throw bad(`binary frame header announces ${end} bytes before the payload but the frame has ${bytes.length}`);
  if (topicSize === 0) throw bad('binary frame has an empty topic');
  if (eventSize === 0) throw bad('binary frame has an empty event');
  let at = CLIENT_PUSH_HEADER;
  const joinRef = joinRefSize === 0 ? null : text(bytes, at, joinRefSize, 'join_ref');
  at += joinRefSize;
  const ref = refSize === 0 ? null : text(bytes, at, refSize, 'ref');
  at += refSize;
  const topic = text(bytes, at, topicSize, 'topic');
  at += topicSize;
  const event = text(bytes, at, eventSize, 'event');
  return { joinRef, ref, topic, event, payload: bytes.subarray(end) };
}

/**
 * Lay out `kind`, one size byte per field, the fields, then the payload.
 * Buffer.allocUnsafe is safe here: every byte is written below.
 */
function pack(kind: number, names: readonly string[], fields: readonly string[], payload: Uint8Array): Buffer {
  const sizes = fields.map((f) => Buffer.byteLength(f, 'utf8'));
  let total = 1 + fields.length + payload.length;
  for (let i = 0; i < sizes.length; i++) {
    if (sizes[i] > MAX_FIELD_BYTES) throw bad(`cannot encode ${names[i]} in a binary frame: ${sizes[i]} bytes, at most ${MAX_FIELD_BYTES}`);
    total += sizes[i];
  }
  const out = Buffer.allocUnsafe(total);
  out[0] = kind;
  let at = 1;
  for (const size of sizes) out[at++] = size;
  for (let i = 0; i < fields.length; i++) at += out.write(fields[i], at, sizes[i], 'utf8');
  out.set(payload, at);
  return out;
}

/**
 * Encode a binary phx_reply (kind 1). The client decodes it as
 * `{event: "phx_reply", payload: {status, response: ArrayBuffer}}`.
 * A null ref is written as an empty string.
 * @throws SandbarError SANDBAR_ERR_FRAME_BINARY when a string exceeds 255 UTF-8 bytes.
 */
export function encodeBinaryReply(joinRef: string | null, ref: string | null, topic: string, status: ReplyStatus, payload: Uint8Array): Buffer {
  return pack(BinaryKind.reply, ['join_ref', 'ref', 'topic', 'status'], [joinRef ?? '', ref ?? '', topic, status], payload);
}

/**
 * Encode a binary server push to one joined channel (kind 0, no ref: the
 * layout the client decodes, not the one it sends).
 * @throws SandbarError SANDBAR_ERR_FRAME_BINARY when a string exceeds 255 UTF-8 bytes.
 */
export function encodeBinaryPush(joinRef: string | null, topic: string, event: string, payload: Uint8Array): Buffer {
  return pack(BinaryKind.push, ['join_ref', 'topic', 'event'], [joinRef ?? '', topic, event], payload);
}

/**
 * Encode a binary broadcast (kind 2, no refs); encode once, write to many sockets.
 * @throws SandbarError SANDBAR_ERR_FRAME_BINARY when a string exceeds 255 UTF-8 bytes.
 */
export function encodeBinaryBroadcast(topic: string, event: string, payload: Uint8Array): Buffer {
  return pack(BinaryKind.broadcast, ['topic', 'event'], [topic, event], payload);
}
