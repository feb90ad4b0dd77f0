/**
 * The server API's history reads, answered by the worker that serves the
 * shard (it receives the query on the shard's command subject only while it
 * is the serving master): a page of a room's kept history or a user's inbox,
 * by seq, bounded in count and in bytes.
 */
import type { HistoryQuery } from '../bus/messages.js';

interface Stored { readonly seq: number }
interface Source { readonly seq: number }

export interface HistoryPage { seq: number; messages: unknown[]; more: boolean }

/**
 * One page of `list` (ordered by seq): seq > after, oldest first; or, with
 * `before`, the newest with seq < before, still returned oldest first.
 */
export function page(list: readonly Stored[], last: number, q: HistoryQuery): HistoryPage {
  const out: Stored[] = [];
  let bytes = 0;
  let more = false;
  if (q.before === null) {
    for (const m of list) {
      if (m.seq <= q.after) continue;
      const size = JSON.stringify(m).length + 1;
      if (out.length >= q.limit || (out.length > 0 && bytes + size > q.maxBytes)) { more = true; break; }
      out.push(m);
      bytes += size;
    }
    return { seq: last, messages: out, more };
  }
  for (let i = list.length - 1; i >= 0; i--) {
    const m = list[i]!;
    if (m.seq >= q.before) continue;
    const size = JSON.stringify(m).length + 1;
    if (out.length >= q.limit || (out.length > 0 && bytes + size > q.maxBytes)) { more = true; break; }
    out.push(m);
    bytes += size;
  }
  return { seq: last, messages: out.reverse(), more };
}

/** The answer for a user or room this worker holds (or not: an empty page, as for a user that never got a dm). */
export function historyOf(q: HistoryQuery, users: ReadonlyMap<string, Source & { inbox: readonly Stored[] }>, rooms: ReadonlyMap<string, Source & { history: readonly Stored[] }>): HistoryPage {
  if (q.op === 'u.hist') {
    const u = users.get(q.id);
    return u ? page(u.inbox, u.seq, q) : { seq: 0, messages: [], more: false };
  }
  const r = rooms.get(q.id);
  return r ? page(r.history, r.seq, q) : { seq: 0, messages: [], more: false };
}
