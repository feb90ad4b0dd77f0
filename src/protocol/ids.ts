/**
 * User and room ids, and topic names.
 *
 * Ids end up in NATS subjects and KV keys, so the alphabet is deliberately
 * narrow: no spaces, no `*`/`>` wildcards, no `:` (the topic separator).
 */

const ID = /^[A-Za-z0-9_.@-]{1,64}$/;

/** Whether `id` is a valid user or room id: 1–64 characters of `A-Z a-z 0-9 _ - . @`. */
export function isValidId(id: unknown): id is string {
  return typeof id === 'string' && ID.test(id);
}

/** A topic split into its kind and id. */
export interface Topic {
  kind: string;
  id: string;
}

/**
 * Split a topic at its first `:`: `room:lobby` → `{kind: 'room', id: 'lobby'}`.
 * A topic without `:` (such as `phoenix`) is all kind, with id `''`.
 * The id is not validated here; use `isValidId` on it.
 */
export function parseTopic(topic: string): Topic {
  const colon = topic.indexOf(':');
  return colon < 0 ? { kind: topic, id: '' } : { kind: topic.slice(0, colon), id: topic.slice(colon + 1) };
}
