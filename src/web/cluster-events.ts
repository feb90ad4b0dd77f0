/**
 * What the cluster page shows besides live stats: the shard map (a copy of
 * the ownership bucket this worker already watches) and a bounded ring of
 * recent failovers and handoffs with their durations.
 *
 * Derived, not reported: a shard whose master changes is a **failover** when
 * the old master had left this worker's view (its worker or host died), else
 * a **handoff** (planned: a worker joined, came back, or a host stopped
 * gracefully). Changes from one old master are grouped into one event while
 * they keep coming (within 15 s). Its duration runs from the view change that
 * caused it (the moment this worker learned of the death, i.e. after
 * cluster.downAfterMs for a host) to the last shard claimed by its new master,
 * both on this worker's clock.
 *
 * For every shard whose new master is this worker, the time from that view
 * change to the record naming it goes to `onTakeover` (the takeover
 * histogram of /metrics): each claim is counted once in the cluster, by the
 * worker that made it.
 */
import type { OwnershipRecord } from '../placement/ownership.js';
import type { HostView } from '../placement/index.js';

export interface ClusterEvent {
  kind: 'failover' | 'handoff';
  /** The old master, `<hostId>.<worker>`. */
  from: string;
  /** New masters of its shards. */
  to: string[];
  shards: number;
  /** Unix ms when the view change that caused it reached this worker. */
  startedAt: number;
  durationMs: number;
}

/** Events kept; older ones are dropped first. */
export const EVENTS_MAX = 50;
const GROUP_MS = 15_000;

export class ClusterEvents {
  /** shard → its ownership record, as the bucket watch delivers them. */
  readonly records = new Map<number, OwnershipRecord>();
  readonly ring: ClusterEvent[] = [];
  private addrs = new Set<string>();
  /** Worker address → when it left the view (unix ms); pruned with the ring. */
  private readonly gone = new Map<string, number>();
  private viewAt = Date.now();

  /**
   * @param self this worker's address (`<hostId>.<worker>`)
   * @param onTakeover told of each shard this worker became master of, with the ms since the view change that moved it
   */
  constructor(private readonly self = '', private readonly onTakeover: (kind: ClusterEvent['kind'], ms: number) => void = () => {}) {}

  onView(view: readonly HostView[]): void {
    const now = Date.now();
    const next = new Set(view.flatMap((h) => (h.alive ?? []).map((w) => `${h.hostId}.${w}`)));
    for (const a of this.addrs) if (!next.has(a)) this.gone.set(a, now);
    for (const a of next) this.gone.delete(a);
    // Deaths older than any event could still be grouped with are forgotten.
    for (const [a, at] of this.gone) if (now - at > 10 * GROUP_MS) this.gone.delete(a);
    this.addrs = next;
    this.viewAt = now;
  }

  onOwnership(shard: number, rec: OwnershipRecord): void {
    const prev = this.records.get(shard);
    this.records.set(shard, rec);
    if (!prev || prev.master === rec.master) return;
    const now = Date.now();
    const kind = this.gone.has(prev.master) ? 'failover' : 'handoff';
    let ev = this.ring.find((e) => e.kind === kind && e.from === prev.master && now - (e.startedAt + e.durationMs) < GROUP_MS);
    if (!ev) {
      ev = { kind, from: prev.master, to: [], shards: 0, startedAt: kind === 'failover' ? this.gone.get(prev.master)! : this.viewAt, durationMs: 0 };
      this.ring.unshift(ev);
      if (this.ring.length > EVENTS_MAX) this.ring.length = EVENTS_MAX;
    }
    ev.shards++;
    if (!ev.to.includes(rec.master)) ev.to.push(rec.master);
    ev.durationMs = Math.max(0, now - ev.startedAt);
    if (rec.master === this.self) this.onTakeover(kind, Math.max(0, now - (kind === 'failover' ? this.gone.get(prev.master)! : this.viewAt)));
  }

  /** Shards with no ownership record, or whose record names a master outside the view (gone, not yet replaced). */
  shardsWithoutMaster(shards: number, view: readonly HostView[]): number {
    if (view.length === 0) return 0;
    const live = new Set(view.flatMap((h) => (h.alive ?? Array.from({ length: h.workers }, (_, w) => w)).map((w) => `${h.hostId}.${w}`)));
    let n = 0;
    for (let s = 0; s < shards; s++) {
      const r = this.records.get(s);
      if (!r || !live.has(r.master)) n++;
    }
    return n;
  }

  /** The shard map, compact: addresses once, then per shard an index (-1: no master yet). */
  shardMap(shards: number): { addrs: string[]; master: number[]; replicas: number[][] } {
    const addrs: string[] = [];
    const index = new Map<string, number>();
    const idx = (a: string) => {
      let i = index.get(a);
      if (i === undefined) { i = addrs.length; addrs.push(a); index.set(a, i); }
      return i;
    };
    const master: number[] = [];
    const replicas: number[][] = [];
    for (let n = 0; n < shards; n++) {
      const r = this.records.get(n);
      master.push(r ? idx(r.master) : -1);
      replicas.push(r ? r.replicas.map(idx) : []);
    }
    return { addrs, master, replicas };
  }
}
