/**
 * `cluster:live`: the cluster page's channel. Joining needs the admin token
 * (`admin.token`) in the join payload `{admin_token}`; the socket token alone
 * is not enough (any user may hold one). While at least one page is joined,
 * this worker builds the cluster state once a second and pushes it as
 * `state`: hosts (suspect or not, as this host's membership sees them;
 * worker restarts) and their workers (sessions, shards, frame and dm rates,
 * event-loop delay, NATS connection, fencing: asked of each worker over NATS
 * with `{t: "stats"}`), the shard map and the recent failovers and handoffs
 * (src/web/cluster-events.ts). The page keeps the last minutes of states
 * and draws its graphs from them.
 *
 * One push: `lookup` `{kind: "user" | "room", id}` answers where that user or
 * room lives (shard, ownership record) and what its master holds (presence,
 * inbox or history size), asked of the master over the shard's subject as
 * the admin service does.
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import type { ChannelHandler, JoinedChannel } from '../protocol/channel-registry.js';
import type { SessionActor } from '../actors/session.js';
import { Errors, type SandbarError } from '../errors.js';
import type { Subjects } from '../bus/subjects.js';
import type { HostView } from '../placement/index.js';
import type { ClusterEvents } from './cluster-events.js';
import { shardOf } from '../placement/index.js';
import { isValidId } from '../protocol/ids.js';

export interface ClusterSource {
  readonly nc: NatsConnection;
  readonly subjects: Subjects;
  readonly adminToken: string;
  readonly shards: number;
  readonly replicas: number;
  readonly self: string;
  readonly events: ClusterEvents;
  view(): readonly HostView[];
  /** Hosts this worker's host finds suspect (heartbeats missing, not yet down). */
  suspects(): readonly string[];
}

/** A worker's answer to `{t: "stats"}` (src/cluster/worker.ts). */
interface WorkerStat {
  sessions: number; framesIn: number; framesOut: number; masterShards: number; replicaShards: number; heapUsed: number; longpoll?: number;
  dms?: number; loopDelayMs?: number; nats?: { connected: boolean; server: string | null; reconnects: number }; fenced?: boolean; hostRestarts?: number;
}

const PUSH_MS = 1000;

/** Equal-length digests, so the comparison takes the same time whatever was sent. */
export function adminTokenMatches(expected: string, given: unknown): boolean {
  if (expected === '' || typeof given !== 'string') return false;
  const a = createHash('sha256').update(expected).digest();
  const b = createHash('sha256').update(given).digest();
  return timingSafeEqual(a, b);
}

export function clusterChannel(src: ClusterSource): ChannelHandler {
  const members = new Set<{ s: SessionActor; ch: JoinedChannel }>();
  let timer: NodeJS.Timeout | null = null;
  let last: { at: number; by: Map<string, WorkerStat> } | null = null;
  let building = false;

  async function build(): Promise<unknown> {
    const view = src.view();
    const at = Date.now();
    const asks = view.flatMap((h) => (h.alive ?? []).map(async (w) => {
      const addr = `${h.hostId}.${w}`;
      try {
        const r = await src.nc.request(src.subjects.worker(h.hostId, w), JSON.stringify({ t: 'stats' }), { timeout: 800 });
        return [addr, r.json<WorkerStat>()] as const;
      } catch {
        return [addr, null] as const;
      }
    }));
    const by = new Map<string, WorkerStat>();
    for (const [a, st] of await Promise.all(asks)) if (st) by.set(a, st);
    const rate = (a: string, k: 'framesIn' | 'framesOut' | 'dms') => {
      const now = by.get(a)?.[k];
      const before = last?.by.get(a)?.[k];
      if (now === undefined || before === undefined || !last || now < before) return null;
      return Math.round(((now - before) * 1000) / Math.max(1, at - last.at));
    };
    const suspect = new Set(src.suspects());
    const hosts = view.map((h) => {
      const workers = (h.alive ?? []).map((w) => {
        const a = `${h.hostId}.${w}`;
        const st = by.get(a);
        return {
          addr: a, index: w, answered: st !== undefined, sessions: st?.sessions ?? 0, longpoll: st?.longpoll ?? 0, masterShards: st?.masterShards ?? 0, replicaShards: st?.replicaShards ?? 0, heapUsed: st?.heapUsed ?? 0,
          inPerS: rate(a, 'framesIn'), outPerS: rate(a, 'framesOut'), dmPerS: rate(a, 'dms'), loopDelayMs: st?.loopDelayMs ?? null,
          nats: st?.nats ?? null, fenced: st?.fenced ?? false,
        };
      });
      const restarts = (h.alive ?? []).map((w) => by.get(`${h.hostId}.${w}`)?.hostRestarts).find((r) => r !== undefined) ?? null;
      return { hostId: h.hostId, suspect: suspect.has(h.hostId), restarts, workers };
    });
    last = { at, by };
    return { at, self: src.self, replicas: src.replicas, hosts, shards: { count: src.shards, ...src.events.shardMap(src.shards) }, events: src.events.ring };
  }

  /** Where a user or room lives and what its master holds (the admin service's user/room answer). */
  async function lookup(kind: 'user' | 'room', id: string): Promise<unknown> {
    const shard = shardOf(id, src.shards);
    const record = src.events.records.get(shard) ?? null;
    try {
      const r = await src.nc.request(src.subjects.shardCmd(shard), JSON.stringify({ op: kind === 'user' ? 'u.info' : 'r.info', id }), { timeout: 2000 });
      return { kind, shard, record, ...r.json<Record<string, unknown>>() };
    } catch (err) {
      throw Errors.UNAVAILABLE(`shard ${shard} of ${kind} ${id} has no serving master right now (${(err as Error).message})`);
    }
  }

  function tick(): void {
    if (building || members.size === 0) return;
    building = true;
    build().then((state) => {
      for (const m of members) m.s.post({ run: (s) => { if (s.channel(m.ch.topic) === m.ch) s.push(m.ch, 'state', state); } });
    }).catch(() => {}).finally(() => { building = false; });
  }

  return {
    join(session, ch, params, ref) {
      if (ch.id !== 'live') throw Errors.UNMATCHED_TOPIC('the cluster channel is cluster:live');
      if (!adminTokenMatches(src.adminToken, (params as { admin_token?: unknown } | null)?.admin_token)) {
        throw Errors.FORBIDDEN(src.adminToken === '' ? 'the cluster page is off: set admin.token' : 'admin_token does not match admin.token');
      }
      const m = { s: session, ch };
      ch.state = m;
      members.add(m);
      session.joinOk(ch, ref, { self: src.self });
      if (!timer) { timer = setInterval(tick, PUSH_MS); timer.unref(); }
      tick();
    },
    handleIn(session, ch, event, payload, ref) {
      if (event !== 'lookup') throw Errors.UNKNOWN_EVENT(`cluster:live takes one push, lookup (got ${event})`);
      const { kind, id } = (payload ?? {}) as { kind?: unknown; id?: unknown };
      if (kind !== 'user' && kind !== 'room') throw Errors.BAD_PAYLOAD('lookup needs {kind: "user" | "room", id}');
      if (!isValidId(id)) throw Errors.INVALID_ID('id must be 1-64 characters of A-Z a-z 0-9 _ - . @');
      void lookup(kind, id).then(
        (res) => session.post({ run: (s) => { if (s.channel(ch.topic) === ch) s.reply(ch, ref, 'ok', res); } }),
        (err: SandbarError) => session.post({ run: (s) => { if (s.channel(ch.topic) === ch) s.replyError(ch.joinRef, ref, ch.topic, err); } }),
      );
    },
    leave(_session, ch) {
      members.delete(ch.state as { s: SessionActor; ch: JoinedChannel });
      if (members.size === 0 && timer) { clearInterval(timer); timer = null; last = null; }
    },
  };
}
