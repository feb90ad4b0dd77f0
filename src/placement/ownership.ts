/**
 * Shard ownership with fencing: a JetStream KV bucket holds, per shard,
 * `{epoch, master, replicas}`. A worker acts as master of a shard only after
 * it wrote that record by compare-and-set on the revision it read, with the
 * epoch one higher; so two claimants can never both win the same epoch, and
 * a master that sees a higher epoch for its shard stops serving it at once
 * (see the watch). Replicas reject replication entries of a lower epoch.
 */
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../observability/logger.js';

export interface OwnershipRecord { epoch: number; master: string; replicas: string[]; at: number }

export function bucketName(cluster: string): string {
  return `sandbar_${cluster}_shards`;
}

/** Creates the bucket if needed (the primary does this once), replicated on up to 3 NATS nodes. */
export async function ensureBucket(nc: NatsConnection, cluster: string, logger?: Logger, budgetMs = 30000): Promise<void> {
  const peers = nc.info?.connect_urls?.length ?? 0;
  await whileJetStreamElects(() => new Kvm(nc).create(bucketName(cluster), { history: 1, replicas: Math.min(3, Math.max(1, peers)) }).then(() => {}), `bucket ${bucketName(cluster)}`, logger, budgetMs);
}

/**
 * Runs a JetStream set-up step (creating a bucket or a stream), again every
 * 500 ms while the answer says JetStream is not ready yet: a NATS cluster
 * that just formed, or lost a node, answers "timeout" or "temporarily
 * unavailable" until its meta leader is elected. Other errors, and the last
 * one past budgetMs, are thrown.
 */
export async function whileJetStreamElects(step: () => Promise<void>, what: string, logger?: Logger, budgetMs = 30000): Promise<void> {
  const deadline = Date.now() + budgetMs;
  for (;;) {
    try {
      await step();
      return;
    } catch (err) {
      const msg = (err as Error).message;
      const transient = /timeout|temporarily unavailable|no suitable peers|leader/i.test(msg);
      if (!transient || Date.now() > deadline) throw err;
      logger?.warn({ what, err: msg }, 'JetStream not ready yet; retrying');
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

export class Ownership {
  private constructor(private readonly kv: KV, private readonly logger: Logger) {}

  static async open(nc: NatsConnection, cluster: string, logger: Logger): Promise<Ownership> {
    return new Ownership(await new Kvm(nc).open(bucketName(cluster)), logger);
  }

  private static key(shard: number): string { return `shard.${shard}`; }

  async read(shard: number): Promise<OwnershipRecord | null> {
    const e = await this.kv.get(Ownership.key(shard));
    if (!e || e.operation !== 'PUT' || e.length === 0) return null;
    return e.json<OwnershipRecord>();
  }

  /**
   * Claims a shard: epoch + 1 by compare-and-set. Returns the new epoch, or
   * null when another claimant kept winning (the caller retries on its next view).
   */
  async claim(shard: number, master: string, replicas: string[]): Promise<number | null> {
    const key = Ownership.key(shard);
    for (let attempt = 0; attempt < 5; attempt++) {
      const e = await this.kv.get(key);
      const prev = e && e.operation === 'PUT' && e.length > 0 ? e.json<OwnershipRecord>() : null;
      const epoch = (prev?.epoch ?? 0) + 1;
      const rec: OwnershipRecord = { epoch, master, replicas, at: Date.now() };
      try {
        if (!e) await this.kv.create(key, JSON.stringify(rec));
        else await this.kv.update(key, JSON.stringify(rec), e.revision);
        return epoch;
      } catch (err) {
        this.logger.debug({ shard, attempt, err: (err as Error).message }, 'ownership claim lost a race; retrying');
      }
    }
    return null;
  }

  /**
   * The serving master records a new replica set, keeping its epoch (only the
   * master writes its record; CAS on the revision it read). False when the
   * record has moved on: another master holds the shard.
   */
  async setReplicas(shard: number, epoch: number, master: string, replicas: string[]): Promise<boolean> {
    const key = Ownership.key(shard);
    for (let attempt = 0; attempt < 3; attempt++) {
      const e = await this.kv.get(key);
      if (!e || e.operation !== 'PUT' || e.length === 0) return false;
      const rec = e.json<OwnershipRecord>();
      if (rec.epoch !== epoch || rec.master !== master) return false;
      try {
        await this.kv.update(key, JSON.stringify({ ...rec, replicas, at: Date.now() }), e.revision);
        return true;
      } catch { /* raced with another write: read again */ }
    }
    return false;
  }

  /**
   * The host's lease (docs/architecture.md, fencing): a write that JetStream
   * acknowledges only once a quorum of the bucket's NATS nodes stored it, so
   * a host that can renew it is on the majority side of any partition.
   */
  async renewLease(hostId: string, incarnation: string): Promise<void> {
    await this.kv.put(`host.${hostId}`, JSON.stringify({ incarnation, at: Date.now() }));
  }

  /** Every shard's record (null where none is written yet). */
  async readAll(shards: number): Promise<({ shard: number } & OwnershipRecord | { shard: number; epoch: 0; master: null })[]> {
    const out: ({ shard: number } & OwnershipRecord | { shard: number; epoch: 0; master: null })[] = [];
    for (let i = 0; i < shards; i += 64) {
      const part = await Promise.all(Array.from({ length: Math.min(64, shards - i) }, (_, j) => this.read(i + j)));
      part.forEach((r, j) => out.push(r ? { shard: i + j, ...r } : { shard: i + j, epoch: 0, master: null }));
    }
    return out;
  }

  /** Calls fn for every record written from now on (and the current ones first). */
  async watch(fn: (shard: number, rec: OwnershipRecord) => void): Promise<{ stop(): void }> {
    const it = await this.kv.watch({ key: 'shard.*' });
    void (async () => {
      for await (const e of it) {
        if (e.operation !== 'PUT' || e.length === 0) continue;
        try { fn(Number(e.key.slice(6)), e.json<OwnershipRecord>()); } catch (err) { this.logger.error({ err }, 'ownership watch handler failed'); }
      }
    })().catch(() => {});
    return { stop: () => it.stop() };
  }
}
