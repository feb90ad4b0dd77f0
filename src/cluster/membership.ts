/**
 * Who is alive: each primary publishes a heartbeat on sandbar.<c>.hb.<hostId>
 * every cluster.heartbeatMs, and runs the failure detector on everyone
 * else's. A host silent for cluster.suspectAfterMs is suspect (still in the
 * view); after cluster.downAfterMs it is down and leaves the view, and its
 * shards are promoted elsewhere. A host that stops gracefully says `leave`
 * first, so nobody waits for the timeout. Liveness uses the monotonic clock;
 * heartbeats carry jitter so hosts started together do not beat in step.
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Subjects } from '../bus/subjects.js';
import type { Logger } from '../observability/logger.js';
import type { HostView } from '../placement/rendezvous.js';

export interface Heartbeat {
  t: 'hb' | 'leave';
  hostId: string;
  /** Changes on every start of the host: a restarted host is a new member. */
  incarnation: string;
  /** Indexes of the workers that are up and serving. */
  workers: number[];
  load: number;
  version: string;
}

interface Peer { hb: Heartbeat; lastSeen: number; suspect: boolean }

/**
 * When a majority of the hosts this host has known was last heard from, on
 * the wall clock (Date.now()): with n hosts known (ourselves included, heard
 * now), the k-th most recent time, k = floor(n / 2) + 1.
 */
export function majorityHeardAt(lastHeard: readonly number[], now: number): number {
  const times = [now, ...lastHeard].sort((a, b) => b - a);
  return times[Math.floor(times.length / 2)]!;
}

export class Membership {
  private readonly peers = new Map<string, Peer>();
  /** Every other host heard from and not gone by `leave`, with when (Date.now()); down hosts stay. */
  private readonly known = new Map<string, number>();
  private sub: Subscription | null = null;
  private beat: NodeJS.Timeout | null = null;
  private check: NodeJS.Timeout | null = null;
  private lastView = '';
  /** No view is emitted before this: hosts started together first hear of each other. */
  private discoverUntil = 0;
  /** While the host has lost its lease, views are not emitted (see setActing). */
  private suspended = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly subjects: Subjects,
    private readonly self: () => Heartbeat,
    private readonly opts: { heartbeatMs: number; suspectAfterMs: number; downAfterMs: number },
    private readonly logger: Logger,
    /** Called with the live view whenever it changes (sorted by hostId). */
    private readonly onView: (view: HostView[]) => void,
  ) {}

  start(): void {
    this.discoverUntil = performance.now() + 2 * this.opts.heartbeatMs + 100;
    setTimeout(() => this.emit(), 2 * this.opts.heartbeatMs + 120).unref();
    this.sub = this.nc.subscribe(this.subjects.heartbeatAll(), { callback: (err, msg) => {
      if (err) return;
      let hb: Heartbeat;
      try { hb = msg.json<Heartbeat>(); } catch { return; }
      this.onHeartbeat(hb);
    } });
    const tick = () => {
      this.publish('hb');
      // ±10% jitter.
      this.beat = setTimeout(tick, this.opts.heartbeatMs * (0.9 + Math.random() * 0.2));
      this.beat.unref();
    };
    tick();
    this.check = setInterval(() => this.detect(), Math.max(10, Math.floor(this.opts.heartbeatMs / 2)));
    this.check.unref();
  }

  /** Publishes our heartbeat now (e.g. when a worker comes or goes). */
  publish(t: 'hb' | 'leave' = 'hb'): void {
    const hb = { ...this.self(), t };
    this.nc.publish(this.subjects.heartbeat(hb.hostId), JSON.stringify(hb));
    if (t === 'hb') this.onHeartbeat(hb);
  }

  private onHeartbeat(hb: Heartbeat): void {
    if (hb.t === 'leave') {
      this.known.delete(hb.hostId);
      if (this.peers.delete(hb.hostId)) this.logger.info({ host: hb.hostId }, 'host left the cluster');
      this.emit();
      return;
    }
    const prev = this.peers.get(hb.hostId);
    if (!prev) this.logger.info({ host: hb.hostId, incarnation: hb.incarnation, workers: hb.workers }, 'host joined the cluster');
    else if (prev.suspect) this.logger.info({ host: hb.hostId }, 'suspect host is alive again');
    this.peers.set(hb.hostId, { hb, lastSeen: performance.now(), suspect: false });
    if (hb.hostId !== this.self().hostId) this.known.set(hb.hostId, Date.now());
    this.emit();
  }

  private detect(): void {
    const now = performance.now();
    const selfId = this.self().hostId;
    for (const [id, p] of this.peers) {
      if (id === selfId) continue;
      const silent = now - p.lastSeen;
      if (silent > this.opts.downAfterMs) {
        this.peers.delete(id);
        this.logger.warn({ host: id, silentMs: Math.round(silent) }, 'host is down: no heartbeat within cluster.downAfterMs; its shards are promoted');
        this.emit();
      } else if (silent > this.opts.suspectAfterMs && !p.suspect) {
        p.suspect = true;
        this.logger.warn({ host: id, silentMs: Math.round(silent) }, 'host is suspect: heartbeats missing');
      }
    }
  }

  /** See {@link majorityHeardAt}: what lets this host keep acting while the KV bucket is unreachable. */
  majorityHeardAt(): number {
    return majorityHeardAt([...this.known.values()], Date.now());
  }

  /** What each live host said in its last heartbeat (for admin.status). */
  members(): { hostId: string; incarnation: string; workers: number[]; load: number; version: string; suspect: boolean; silentMs: number }[] {
    const now = performance.now();
    return [...this.peers.values()].map((p) => ({ hostId: p.hb.hostId, incarnation: p.hb.incarnation, workers: p.hb.workers, load: p.hb.load, version: p.hb.version, suspect: p.suspect, silentMs: Math.round(now - p.lastSeen) }));
  }

  view(): HostView[] {
    return [...this.peers.values()]
      .map((p) => ({ hostId: p.hb.hostId, workers: p.hb.workers.length, alive: [...p.hb.workers].sort((a, b) => a - b) }))
      .filter((h) => h.alive.length > 0)
      .sort((a, b) => (a.hostId < b.hostId ? -1 : a.hostId > b.hostId ? 1 : 0));
  }

  /**
   * A host that lost its lease (cut off from the majority) must not act on
   * what it sees from there: every other host looks dead, and promoting their
   * shards once the partition heals would depose live masters. So its view
   * stays frozen; when the lease comes back, a new discovery window lets it
   * hear the others again before any view goes out.
   */
  setActing(acting: boolean): void {
    if (acting !== this.suspended) return;
    this.suspended = !acting;
    if (acting) {
      const window = 2 * this.opts.heartbeatMs + 100;
      this.discoverUntil = performance.now() + window;
      setTimeout(() => this.emit(), window + 20).unref();
    }
  }

  private emit(): void {
    if (this.suspended || performance.now() < this.discoverUntil) return;
    const v = this.view();
    const key = JSON.stringify(v);
    if (key === this.lastView) return;
    this.lastView = key;
    this.onView(v);
  }

  /** Says `leave` and stops beating. */
  leave(): void {
    if (this.beat) clearTimeout(this.beat);
    if (this.check) clearInterval(this.check);
    this.publish('leave');
    this.sub?.unsubscribe();
  }
}
