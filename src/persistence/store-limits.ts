/**
 * JetStream limits on what Sandbar stores (persistence.snapshotStoreMaxBytes,
 * persistence.logMaxBytes): `max_bytes` with discard policy `new`, so a full
 * store refuses a write at once with an error, instead of dropping old data
 * (which would be a snapshot chunk or a log entry a restore needs) or making
 * the writer wait for a timeout.
 */
import { DiscardPolicy, type JetStreamManager } from '@nats-io/jetstream';
import { SandbarError } from '../errors.js';

/** JetStream's error codes for a store out of room: the stream's max_bytes, the server's or account's storage. */
const FULL_CODES = new Set([10077, 10047, 10028]);
const FULL_TEXT = /maximum bytes|insufficient (storage )?resources|resource limits exceeded|storage limit/i;

/** Whether err (a JetStream API error, or a PubAck's `error`) says the store is full. */
export function isStoreFull(err: unknown): boolean {
  if (!err || typeof err !== 'object') return false;
  const e = err as { code?: unknown; err_code?: unknown; message?: unknown; description?: unknown };
  if (typeof e.err_code === 'number' && FULL_CODES.has(e.err_code)) return true;
  if (typeof e.code === 'number' && FULL_CODES.has(e.code)) return true;
  return FULL_TEXT.test(String(e.description ?? e.message ?? ''));
}

/**
 * Sets a stream's max_bytes (0: -1, no limit of ours) and discard policy
 * `new`, when they differ: at every start, so a changed setting applies to a
 * store that exists already. A limit the server cannot reserve is a clear
 * start-up error naming the key.
 */
export async function applyMaxBytes(jsm: JetStreamManager, stream: string, maxBytes: number, key: string): Promise<void> {
  const want = maxBytes > 0 ? maxBytes : -1;
  const info = await jsm.streams.info(stream);
  if (info.config.max_bytes === want && (want === -1 || info.config.discard === DiscardPolicy.New)) return;
  try {
    await jsm.streams.update(stream, { ...info.config, max_bytes: want, discard: DiscardPolicy.New });
  } catch (err) {
    throw new SandbarError('SANDBAR_ERR_CONFIG_INVALID', `config: ${key} = ${maxBytes}: JetStream refused it as max_bytes of ${stream} (${(err as Error).message}); use a value the NATS server's JetStream storage can hold, or 0`, { cause: err });
  }
}

/** The error a write into a full store gets (logged by the writer, with the store's name). */
export function storeFullError(store: string, key: string, err: unknown): SandbarError {
  return new SandbarError('SANDBAR_ERR_JETSTREAM_FULL', `JetStream store ${store} is full (${key}, or the NATS server's storage): ${(err as Error)?.message ?? String(err)}`, { cause: err });
}
