/**
 * `sandbar status` for a person: the reply of `sandbar.<cluster>.admin.status`
 * as aligned plain-text tables (hosts as the answering host sees them, then
 * that host's workers). `--json` prints the reply itself, for scripts.
 */

/** The parts of the admin.status reply the table shows (src/cluster/primary.ts status()). */
export interface StatusReply {
  cluster: string;
  host: string;
  version: string;
  shards: number;
  replicas: number;
  hosts: { hostId: string; workers: number[]; load: number; version: string; suspect: boolean; silentMs: number }[];
  workers: { index: number; pid: number | null; listening: boolean; serving: boolean; sessions: number; masterShards: number; replicaShards: number; heapUsed: number; rss: number }[];
  sessions: number;
  restarts: number;
}

/** Columns padded to their widest cell, two spaces apart; columns of numbers ('-' for none) right-aligned, their heading too. */
export function table(head: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const cells = [head.map(String), ...rows.map((r) => r.map(String))];
  const numeric = head.map((_, c) => rows.length > 0 && rows.every((r) => typeof r[c] === 'number' || r[c] === '-'));
  const widths = head.map((_, c) => Math.max(...cells.map((r) => r[c]!.length)));
  return cells.map((r) => r.map((v, c) => (numeric[c] ? v.padStart(widths[c]!) : v.padEnd(widths[c]!))).join('  ').trimEnd()).join('\n');
}

function mb(bytes: number): string {
  return `${Math.round(bytes / 1048576)} MB`;
}

export function formatStatus(s: StatusReply): string {
  const hosts = [...s.hosts].sort((a, b) => a.hostId.localeCompare(b.hostId));
  const out = [
    `cluster ${s.cluster}: ${hosts.length} host(s), ${s.shards} shards, ${s.replicas} replica(s) each; answered by ${s.host} (sandbar ${s.version})`,
    '',
    table(['HOST', 'STATE', 'WORKERS', 'SESSIONS', 'VERSION', 'LAST HEARD'],
      hosts.map((h) => [h.hostId, h.suspect ? 'suspect' : 'alive', h.workers.join(',') || '-', h.load, h.version, `${(h.silentMs / 1000).toFixed(1)} s ago`])),
    '',
    `workers of ${s.host} (${s.sessions} session(s), ${s.restarts} restart(s)):`,
    table(['WORKER', 'PID', 'STATE', 'SESSIONS', 'MASTER', 'REPLICA', 'HEAP', 'RSS'],
      s.workers.map((w) => [w.index, w.pid ?? '-', w.pid === null ? 'down' : w.serving ? 'serving' : 'starting', w.sessions, w.masterShards, w.replicaShards, mb(w.heapUsed), mb(w.rss)])),
  ];
  return out.join('\n') + '\n';
}
