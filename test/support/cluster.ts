/**
 * Helpers for cluster tests: the shard ownership records in KV, waiting for
 * ownership to settle where placement puts it, and a user's client that
 * follows its hosts (reconnects elsewhere, rejoins with last_seq).
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { RawClient, type Frame } from './clients.js';
import { token } from './host.js';
import { sleep } from './recorder.js';
import { place } from '../../src/placement/rendezvous.js';
import { bucketName } from '../../src/placement/ownership.js';

export interface Record_ { epoch: number; master: string; replicas: string[] }

/** Every shard's ownership record in the bucket of `cluster` (read 64 at a time). */
export async function records(nc: NatsConnection, SHARDS: number, cluster = 'local'): Promise<Map<number, Record_>> {
  const kv = await new Kvm(nc).open(bucketName(cluster));
  const out = new Map<number, Record_>();
  for (let base = 0; base < SHARDS; base += 64) {
    const batch = await Promise.all(Array.from({ length: Math.min(64, SHARDS - base) }, (_, k) => kv.get(`shard.${base + k}`)));
    batch.forEach((e, k) => { if (e && e.length > 0) out.set(base + k, e.json<Record_>()); });
  }
  return out;
}

/** Waits until the KV says every shard is mastered where placement over these hosts puts it. */
export async function settled(nc: NatsConnection, hosts: readonly { hostId: string; workers: number }[], SHARDS: number, timeoutMs = 20000, cluster = 'local'): Promise<Map<number, Record_>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // Right after a NATS node comes back, JetStream may answer "temporarily unavailable": ask again.
    const recs = await records(nc, SHARDS, cluster).catch(() => new Map<number, Record_>());
    const ok = Array.from({ length: SHARDS }, (_, n) => {
      const p = place(n, hosts, 1);
      return recs.get(n)?.master === `${p.master.hostId}.${p.master.worker}`;
    }).every(Boolean);
    if (ok) return recs;
    if (Date.now() > deadline) throw new Error(`shard ownership did not settle in ${timeoutMs} ms`);
    await sleep(200);
  }
}

/** A user's client that follows its host: reconnects elsewhere when closed and rejoins with last_seq. */
export class Peer {
  c!: RawClient;
  readonly got = new Map<string, number>(); // message id → seq
  readonly dupSeqs: number[] = [];
  lastSeq = 0;
  constructor(readonly id: string, public urls: string[]) {}
  async connect(): Promise<void> {
    for (const url of this.urls) {
      try {
        this.c = await RawClient.open(url, token(this.id));
        const j = await this.c.join(`user:${this.id}`, { last_seq: this.lastSeq }, 'u', 15000);
        if ((j[4] as { status: string }).status !== 'ok') throw new Error(JSON.stringify(j));
        this.c.ws.on('message', (d: Buffer, bin: boolean) => { if (!bin) this.onFrame(JSON.parse(d.toString()) as Frame); });
        for (const f of this.c.frames) this.onFrame(f);
        return;
      } catch { /* next host */ }
    }
    throw new Error(`${this.id}: no host accepted the connection`);
  }
  private onFrame(f: Frame): void {
    if (f[3] !== 'dm') return;
    const m = f[4] as { id: string; seq: number };
    const prev = this.got.get(m.id);
    if (prev !== undefined && prev !== m.seq) this.dupSeqs.push(m.seq);
    this.got.set(m.id, m.seq);
    if (m.seq > this.lastSeq) this.lastSeq = m.seq;
  }
}


/**
 * A user's whole inbox (nobody acks in these tests): joins `user:<id>` with
 * no last_seq and waits for the replay up to the seq the join reply names.
 * Fails on an id stored twice or a seq used twice.
 */
export async function readInbox(url: string, user: string): Promise<Map<string, number>> {
  const c = await RawClient.open(url, token(user));
  try {
    const reply = await c.join(`user:${user}`, {}, 'u', 15000);
    const r = reply[4] as { status: string; response: { seq: number } };
    // A refused join (a shard not served yet) is not an empty inbox: say so instead of counting its dms as lost.
    if (r.status !== 'ok') throw new Error(`${user}: inbox read refused: ${JSON.stringify(r)}`);
    const last = r.response.seq;
    if (last > 0) await c.waitFor((f) => f[3] === 'dm' && (f[4] as { seq: number }).seq === last, 10000);
    const inbox = new Map<string, number>();
    const seqs = new Set<number>();
    for (const f of c.frames) {
      if (f[3] !== 'dm') continue;
      const m = f[4] as { id: string; seq: number };
      if (inbox.has(m.id)) throw new Error(`${user}: ${m.id} stored twice`);
      if (seqs.has(m.seq)) throw new Error(`${user}: seq ${m.seq} used twice`);
      inbox.set(m.id, m.seq);
      seqs.add(m.seq);
    }
    return inbox;
  } finally {
    c.close();
  }
}

/** An acknowledged write, with the epoch of the master that acknowledged it. */
export interface Ack { id: string; to: string; seq: number; epoch: number; at: number; via: string }

/**
 * The fencing check: for each shard, no write is acknowledged under an epoch
 * after a write under a higher epoch was (allowing `slackMs` for replies in
 * flight on different sockets). Returns the violations, empty when none.
 */
export function overlappingMasters(acks: readonly Ack[], shardOf: (id: string) => number, slackMs = 100): string[] {
  const byShard = new Map<number, Map<number, { first: number; last: number; via: Set<string> }>>();
  for (const a of acks) {
    const n = shardOf(a.to);
    const m = byShard.get(n) ?? byShard.set(n, new Map()).get(n)!;
    const e = m.get(a.epoch) ?? m.set(a.epoch, { first: a.at, last: a.at, via: new Set() }).get(a.epoch)!;
    e.first = Math.min(e.first, a.at);
    e.last = Math.max(e.last, a.at);
    e.via.add(a.via);
  }
  const bad: string[] = [];
  for (const [n, epochs] of byShard) {
    const list = [...epochs.entries()].sort((a, b) => a[0] - b[0]);
    for (let i = 0; i < list.length; i++) {
      for (let j = i + 1; j < list.length; j++) {
        const [e1, a] = list[i]!;
        const [e2, b] = list[j]!;
        if (a.last > b.first + slackMs) bad.push(`shard ${n}: epoch ${e1} acked until ${a.last} (via ${[...a.via]}) after epoch ${e2} began at ${b.first} (via ${[...b.via]})`);
      }
    }
  }
  return bad;
}

/**
 * DM load: user i connects to urlOf(i) and sends dms until stop(), each
 * resent with the same id until acknowledged (dedup makes that safe); every
 * ok is recorded with its seq and epoch. A sender whose socket closes stops.
 */
export function dmLoad(users: string[], urlOf: (i: number) => string, opts: { via?: (i: number) => string; to?: (i: number, n: number) => string; timeoutMs?: number } = {}): { acks: Ack[]; clients: RawClient[]; stop(): Promise<void> } {
  const acks: Ack[] = [];
  const clients: RawClient[] = [];
  let running = true;
  const pick = opts.to ?? ((i: number, n: number) => users[(i + 1 + (n % 4)) % users.length]!);
  const loops = users.map(async (u, i) => {
    const c = await RawClient.open(urlOf(i), token(u));
    clients.push(c);
    await c.join(`user:${u}`, {}, 'u', 15000);
    for (let n = 0; running; n++) {
      const to = pick(i, n);
      const id = `${u}-${n}`;
      while (running) {
        const f = await c.request('u', `user:${u}`, 'dm', { to, id, body: n }, opts.timeoutMs ?? 6000).catch(() => null);
        const r = f?.[4] as { status: string; response: { seq: number; epoch: number } } | undefined;
        if (r?.status === 'ok') { acks.push({ id, to, seq: r.response.seq, epoch: r.response.epoch, at: Date.now(), via: opts.via?.(i) ?? u }); break; }
        if (c.closeCode !== null) return;
        await new Promise((res) => setTimeout(res, 50));
      }
      await new Promise((res) => setTimeout(res, 10));
    }
  });
  return { acks, clients, async stop() { running = false; await Promise.all(loops); } };
}

/** The acknowledged dms that are not in their recipient's inbox at the acknowledged seq (read through url). */
export async function lostAcks(url: string, acks: readonly Ack[]): Promise<Ack[]> {
  const inboxes = new Map<string, Map<string, number>>();
  for (const to of new Set(acks.map((a) => a.to))) inboxes.set(to, await readInbox(url, to));
  return acks.filter((a) => inboxes.get(a.to)!.get(a.id) !== a.seq);
}
