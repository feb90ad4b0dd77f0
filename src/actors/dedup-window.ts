/**
 * The recent client message ids of one user or room actor, so that a resend
 * of a dm or room msg (a client or an API caller retrying after a lost reply)
 * is answered with the seq it got the first time instead of being stored
 * twice.
 *
 * It used to be one window of `user.dedupWindow` ids per actor, shared by
 * every sender: a resend to a busy recipient (a bot, a support inbox, a large
 * room) after that many messages from others was stored twice. Now each
 * sender has its own window, and two more bounds keep the memory of one actor
 * finite whatever the number of senders:
 *
 *   A resend is recognised when its original is
 *   - among the last `perSender` (user.dedupWindow) messages of that sender stored here, and
 *   - stamped less than `ttlMs` (user.dedupTtlMs) before the newest message stored here, and
 *   - among the last `maxIds` (user.dedupMaxIds) messages stored here, by anyone.
 *
 * `bytes` is what the window holds as the storage budget counts it
 * (storage/estimate.ts): its owner counts the change of it into the budget.
 *
 * So one actor holds at most `maxIds` ids (about 150 bytes each); within that,
 * other senders never push a sender's own ids out. Eviction happens only when
 * an id is added, and uses the master's stamp of the message (`at`), never the
 * local clock: a replica applying the same commands evicts the same ids.
 */
import { dedupBytes } from '../storage/estimate.js';

/** One remembered id; also a link in its sender's chain (oldest first). */
class Entry {
  next: Entry | null = null;
  constructor(readonly key: string, readonly sender: string, readonly seq: number, readonly at: number) {}
}

interface Chain { count: number; oldest: Entry; newest: Entry }

export interface DedupLimits {
  /** Ids remembered per sender (user.dedupWindow); 0 turns dedup off. */
  readonly perSender: number;
  /** Ids older than this (ms, by message stamp) are forgotten (user.dedupTtlMs); 0: no time bound. */
  readonly ttlMs: number;
  /** Ids remembered per actor at most (user.dedupMaxIds). */
  readonly maxIds: number;
}

/** Snapshot form: `[sender + "\n" + id, seq, at]` oldest first (older snapshots lack `at`). */
export type DedupEntry = [string, number, number?];

export class DedupWindow {
  /** The stored ids as the storage budget counts them (dedupBytes each). */
  bytes = 0;
  /** key → entry, in insertion order (oldest first): the global age order. */
  private readonly byKey = new Map<string, Entry>();
  private readonly bySender = new Map<string, Chain>();

  constructor(private readonly limits: DedupLimits) {}

  get size(): number { return this.byKey.size; }

  /** The seq stored for this sender's message id, if still remembered. */
  get(from: string, mid: string): number | undefined {
    return this.byKey.get(key(from, mid))?.seq;
  }

  /** Remembers a stored message; `at` is the master's stamp (ms). */
  add(from: string, mid: string, seq: number, at: number): void {
    const { perSender, ttlMs, maxIds } = this.limits;
    if (perSender <= 0 || maxIds <= 0) return;
    const k = key(from, mid);
    if (this.byKey.has(k)) return;
    const e = new Entry(k, from, seq, at);
    this.byKey.set(k, e);
    this.bytes += dedupBytes(k);
    const chain = this.bySender.get(from);
    if (chain) {
      chain.newest.next = e;
      chain.newest = e;
      if (++chain.count > perSender) this.evict(chain.oldest);
    } else {
      this.bySender.set(from, { count: 1, oldest: e, newest: e });
    }
    // The oldest entry overall is always the oldest of its sender's chain
    // (both are insertion orders), so each eviction below unlinks a chain head.
    if (ttlMs > 0) {
      for (const first of this.byKey.values()) {
        if (first.at > at - ttlMs) break;
        this.evict(first);
      }
    }
    while (this.byKey.size > maxIds) this.evict(this.byKey.values().next().value!);
  }

  /** Forgets a chain head. */
  private evict(e: Entry): void {
    this.byKey.delete(e.key);
    this.bytes -= dedupBytes(e.key);
    const chain = this.bySender.get(e.sender)!;
    if (--chain.count === 0) this.bySender.delete(e.sender);
    else chain.oldest = e.next!;
  }

  snapshot(): DedupEntry[] {
    const out: DedupEntry[] = [];
    for (const e of this.byKey.values()) out.push([e.key, e.seq, e.at]);
    return out;
  }

  /**
   * Replaces the content with a snapshot's. An entry without a stamp (a
   * snapshot written before stamps were kept) counts from `now`, so an
   * upgrade does not forget every id at once.
   */
  restore(entries: readonly DedupEntry[], now: number): void {
    this.byKey.clear();
    this.bySender.clear();
    this.bytes = 0;
    for (const [k, seq, at] of entries) {
      const nl = k.indexOf('\n');
      const from = nl < 0 ? '' : k.slice(0, nl);
      this.add(from, nl < 0 ? k : k.slice(nl + 1), seq, at ?? now);
    }
  }
}

function key(from: string, mid: string): string {
  return `${from}\n${mid}`;
}

const limitsByConfig = new WeakMap<object, DedupLimits>();

/** The limits from the configuration, one object per configuration (shared by every actor). */
export function dedupLimits(config: { readonly user: { readonly dedupWindow: number; readonly dedupTtlMs: number; readonly dedupMaxIds: number } }): DedupLimits {
  let l = limitsByConfig.get(config);
  if (!l) {
    const u = config.user;
    l = Object.freeze({ perSender: u.dedupWindow, ttlMs: u.dedupTtlMs, maxIds: u.dedupMaxIds });
    limitsByConfig.set(config, l);
  }
  return l;
}
