/**
 * Placement: rendezvous (highest-random-weight) hashing of a shard over the
 * live workers of the live hosts. A pure function of (shard, live set): every
 * host computes the same table from the same view, and when one host leaves
 * only the shards it held move.
 *
 * Master and replicas go to distinct hosts first; with fewer hosts than
 * replicas + 1 they go to distinct workers of the same host, so a single
 * machine loses nothing when one worker crashes.
 */
import { fnv1a32 } from './shard.js';

export interface HostView {
  readonly hostId: string;
  /** Worker count of the host. */
  readonly workers: number;
  /** Indexes of the workers that are up; all of 0..workers-1 when absent. */
  readonly alive?: readonly number[];
}
export interface Place { readonly hostId: string; readonly worker: number }
export interface Placement { readonly master: Place; readonly replicas: readonly Place[] }

function score(shard: number, hostId: string, worker: number): number {
  return fnv1a32(`${shard}/${hostId}/${worker}`);
}

/** Master and up to `replicas` replicas of a shard. Some host must have a live worker. */
export function place(shard: number, hosts: readonly HostView[], replicas: number): Placement {
  // Each host's best worker for this shard, hosts ranked by that worker's score.
  const ranked: { hostId: string; order: number[] }[] = [];
  for (const h of hosts) {
    const live = h.alive ?? Array.from({ length: h.workers }, (_, w) => w);
    if (live.length === 0) continue;
    const order = [...live].sort((a, b) => score(shard, h.hostId, b) - score(shard, h.hostId, a) || a - b);
    ranked.push({ hostId: h.hostId, order });
  }
  ranked.sort((a, b) => score(shard, b.hostId, b.order[0]!) - score(shard, a.hostId, a.order[0]!) || (a.hostId < b.hostId ? -1 : 1));
  const picks: Place[] = [];
  // Round r takes the r-th best worker of each host in host order: distinct hosts first.
  for (let round = 0; picks.length < replicas + 1; round++) {
    let added = false;
    for (const h of ranked) {
      if (picks.length >= replicas + 1) break;
      const w = h.order[round];
      if (w === undefined) continue;
      picks.push({ hostId: h.hostId, worker: w });
      added = true;
    }
    if (!added) break;
  }
  return { master: picks[0]!, replicas: picks.slice(1) };
}

/** The shards whose master is (hostId, worker). */
export function shardsOf(hostId: string, worker: number, shards: number, hosts: readonly HostView[]): number[] {
  const out: number[] = [];
  for (let s = 0; s < shards; s++) {
    const m = place(s, hosts, 0).master;
    if (m.hostId === hostId && m.worker === worker) out.push(s);
  }
  return out;
}
