/**
 * The host-level metrics the primary reports itself (label `host` only): the
 * build, the supervisor, the cluster as this host's membership sees it, and
 * its lease. Built once per scrape from plain values.
 */
import type { Family } from './exposition.js';

export interface HostState {
  /** Sandbar's version, Node's (`process.version`), and the version of the NATS server the primary is connected to ('' when unknown). */
  readonly version: string;
  readonly node: string;
  readonly nats: string;
  /** Workers restarted by the supervisor since the host started. */
  readonly restarts: number;
  /** cluster.workers, and how many of them are running and listening now. */
  readonly workers: number;
  readonly workersUp: number;
  /** Hosts in this host's view of the cluster (itself included), and how many of them are suspect. */
  readonly hosts: number;
  readonly suspectHosts: number;
  /** The primary's NATS connection is up. */
  readonly natsConnected: boolean;
  /** The host holds its cluster lease now (null before membership started). */
  readonly leaseValid: boolean | null;
  /** Times the lease was lost (the host stopped acting as master). */
  readonly leaseLost: number;
}

function one(name: string, help: string, type: 'counter' | 'gauge', value: number, labels: Record<string, string> = {}): Family {
  return { name, help, type, samples: [{ labels, value }] };
}

export function hostFamilies(s: HostState): Family[] {
  const out = [
    one('sandbar_build_info', 'Always 1; the labels say the build: Sandbar version, Node version, and the version of the NATS server the primary is connected to.', 'gauge', 1, { version: s.version, node: s.node, nats: s.nats }),
    one('sandbar_worker_restarts_total', 'Workers restarted by the supervisor (crashes and kills of hung workers).', 'counter', s.restarts),
    one('sandbar_workers', 'Workers this host runs (cluster.workers).', 'gauge', s.workers),
    one('sandbar_workers_up', 'Workers of this host running and listening now.', 'gauge', s.workersUp),
    one('sandbar_cluster_hosts', 'Hosts in this host\'s view of the cluster, itself included.', 'gauge', s.hosts),
    one('sandbar_cluster_suspect_hosts', 'Hosts of the view whose heartbeats are missing for cluster.suspectAfterMs (not yet down).', 'gauge', s.suspectHosts),
    one('sandbar_primary_nats_connected', '1 while the primary is connected to NATS (heartbeats, lease, admin service).', 'gauge', s.natsConnected ? 1 : 0),
    one('sandbar_lease_lost_total', 'Times this host lost its cluster lease and stopped acting as master (self-fencing).', 'counter', s.leaseLost),
  ];
  if (s.leaseValid !== null) out.push(one('sandbar_lease_valid', '1 while this host holds its cluster lease (may act as master); 0 while it is self-fenced.', 'gauge', s.leaseValid ? 1 : 0));
  return out;
}
