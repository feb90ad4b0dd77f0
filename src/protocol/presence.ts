/**
 * Phoenix Presence payloads, as the `Presence` class of the phoenix client
 * reads them: state `{key: {metas: [meta, ...]}}` and diffs
 * `{joins: state, leaves: state}`. The key is the user id; each connection
 * contributes one meta, told apart by its `phx_ref`.
 */
import type { Meta } from '../bus/messages.js';

export interface PresenceEntry { metas: Meta[] }
export interface PresenceDiff { joins: Record<string, PresenceEntry>; leaves: Record<string, PresenceEntry> }

export function presenceDiff(key: string, joined: Meta | null, left: Meta[] | null): PresenceDiff {
  return {
    joins: joined ? { [key]: { metas: [joined] } } : {},
    leaves: left && left.length ? { [key]: { metas: left } } : {},
  };
}

/** The meta of a connection from its join params: only known, bounded fields. */
export function metaFor(sessionId: string, params: unknown): Meta {
  const p = (params && typeof params === 'object' ? params : {}) as Record<string, unknown>;
  const device = typeof p.device === 'string' && p.device.length > 0 ? p.device.slice(0, 64) : undefined;
  return device === undefined ? { phx_ref: sessionId, online_at: Date.now() } : { phx_ref: sessionId, online_at: Date.now(), device };
}
