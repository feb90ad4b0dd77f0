/**
 * Shard snapshots in JetStream: a KV bucket `sandbar_<cluster>_snapshots`
 * (file storage, replicated on up to 3 NATS nodes) holds, per shard, a head
 * `shard.<n>` and the body in chunks `chunk.<n>.<gen>.<i>` (a snapshot can
 * pass NATS's 1 MiB max payload).
 *
 * The head carries what detects a bad snapshot: format version, shard,
 * epoch and seq of the state, byte length and SHA-256 of the body. It is
 * written last and by compare-and-set on the revision read before, so a
 * reader sees either the old snapshot or the new one whole, and a deposed
 * master (lower epoch) cannot overwrite its successor's snapshot.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Kvm, type KV } from '@nats-io/kv';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { SandbarError } from '../errors.js';
import { kvKeySubject, kvStream } from '../bus/subjects.js';
import type { ShardSnapshot } from '../actors/replication.js';

export const SNAPSHOT_VERSION = 1;
/** Well under NATS's default 1 MiB max payload. */
const CHUNK_BYTES = 512 * 1024;

/** `<epoch>-<seq>-<random hex>`, as save() makes it. */
const GEN = /^[0-9]+-[0-9]+-[0-9a-f]+$/;

export interface SnapshotHead {
  v: number;
  shard: number;
  /** Epoch and seq of the shard's state when the snapshot was taken. */
  epoch: number;
  seq: number;
  gen: string;
  chunks: number;
  bytes: number;
  sha256: string;
  at: number;
  /** Written on a graceful stop (nothing after it), not periodically. */
  final: boolean;
}

export interface LoadedSnapshot { head: SnapshotHead; snap: ShardSnapshot }

export function snapshotBucket(cluster: string): string {
  return `sandbar_${cluster}_snapshots`;
}

export function natsReplicas(nc: NatsConnection): number {
  return Math.min(3, Math.max(1, nc.info?.connect_urls?.length ?? 0));
}

export async function ensureSnapshotBucket(nc: NatsConnection, cluster: string): Promise<void> {
  await new Kvm(nc).create(snapshotBucket(cluster), { history: 1, replicas: natsReplicas(nc), storage: 'file' });
}

function corrupt(shard: number, why: string): SandbarError {
  return new SandbarError('SANDBAR_ERR_SNAPSHOT_CORRUPT', `snapshot of shard ${shard} is unusable: ${why}`);
}

export class SnapshotStore {
  private constructor(private readonly kv: KV, private readonly jsm: JetStreamManager, private readonly bucket: string) {}

  static async open(nc: NatsConnection, cluster: string): Promise<SnapshotStore> {
    const bucket = snapshotBucket(cluster);
    return new SnapshotStore(await new Kvm(nc).open(bucket), await jetstreamManager(nc), bucket);
  }

  static headKey(shard: number): string { return `shard.${shard}`; }
  static chunkKey(shard: number, gen: string, i: number): string { return `chunk.${shard}.${gen}.${i}`; }

  /**
   * Encodes a snapshot now (a consistent point in time: the caller is on the
   * actors' thread) and returns the bytes; writing is separate so the caller
   * can check the size bound first.
   */
  static encode(snap: ShardSnapshot): Buffer {
    return Buffer.from(JSON.stringify(snap));
  }

  /**
   * Writes body as shard n's snapshot at (epoch, seq). Returns false, and
   * writes nothing that counts, when the stored snapshot has a higher epoch
   * (a newer master wrote it).
   */
  async save(n: number, epoch: number, seq: number, body: Buffer, final: boolean): Promise<boolean> {
    const key = SnapshotStore.headKey(n);
    const cur = await this.kv.get(key);
    let prev: SnapshotHead | null = null;
    if (cur && cur.operation === 'PUT' && cur.length > 0) {
      try { prev = cur.json<SnapshotHead>(); } catch { prev = null; }
      if (prev && typeof prev.epoch === 'number' && prev.epoch > epoch) return false;
    }
    const gen = `${epoch}-${seq}-${randomBytes(3).toString('hex')}`;
    const chunks = Math.max(1, Math.ceil(body.length / CHUNK_BYTES));
    const puts: Promise<unknown>[] = [];
    for (let i = 0; i < chunks; i++) puts.push(this.kv.put(SnapshotStore.chunkKey(n, gen, i), body.subarray(i * CHUNK_BYTES, (i + 1) * CHUNK_BYTES)));
    await Promise.all(puts);
    const head: SnapshotHead = { v: SNAPSHOT_VERSION, shard: n, epoch, seq, gen, chunks, bytes: body.length, sha256: createHash('sha256').update(body).digest('hex'), at: Date.now(), final };
    try {
      if (cur) await this.kv.update(key, JSON.stringify(head), cur.revision);
      else await this.kv.create(key, JSON.stringify(head));
    } catch {
      // Raced with another writer (a handoff's new master): theirs stands.
      await this.dropChunks(n, gen);
      return false;
    }
    if (prev && typeof prev.gen === 'string' && prev.gen !== gen) await this.dropChunks(n, prev.gen);
    return true;
  }

  /**
   * Removes one generation's chunks by a stream purge on their subjects: a
   * KV purge would leave a marker per key, and every snapshot has new keys,
   * so the bucket would grow for ever.
   */
  private async dropChunks(n: number, gen: string): Promise<void> {
    // The gen goes into a subject filter: never a wildcard from a damaged head.
    if (!GEN.test(gen)) return;
    await this.jsm.streams.purge(kvStream(this.bucket), { filter: kvKeySubject(this.bucket, `chunk.${n}.${gen}.*`) }).catch(() => {});
  }

  /**
   * Shard n's snapshot, null when none was ever written. Throws
   * SANDBAR_ERR_SNAPSHOT_CORRUPT when anything fails its checks: a head that
   * is not ours, a missing or short chunk, a length or SHA-256 mismatch, a
   * body that is not the snapshot of this shard.
   */
  async load(n: number): Promise<LoadedSnapshot | null> {
    const e = await this.kv.get(SnapshotStore.headKey(n));
    if (!e || e.operation !== 'PUT' || e.length === 0) return null;
    let head: SnapshotHead;
    try { head = e.json<SnapshotHead>(); } catch { throw corrupt(n, `the head (${e.length} bytes) is not JSON`); }
    if (!head || head.v !== SNAPSHOT_VERSION) throw corrupt(n, `unknown format version ${String(head?.v)} (expected ${SNAPSHOT_VERSION})`);
    if (head.shard !== n) throw corrupt(n, `the head names shard ${head.shard}`);
    if (!Number.isSafeInteger(head.chunks) || head.chunks < 1 || head.chunks > 4096 || !Number.isSafeInteger(head.bytes) || !Number.isSafeInteger(head.seq) || !Number.isSafeInteger(head.epoch) || typeof head.gen !== 'string') throw corrupt(n, 'the head has missing or invalid fields');
    const parts = await Promise.all(Array.from({ length: head.chunks }, (_, i) => this.kv.get(SnapshotStore.chunkKey(n, head.gen, i))));
    const bufs: Uint8Array[] = [];
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i];
      if (!p || p.operation !== 'PUT') throw corrupt(n, `chunk ${i + 1} of ${head.chunks} is missing`);
      bufs.push(p.value);
    }
    const body = Buffer.concat(bufs);
    if (body.length !== head.bytes) throw corrupt(n, `${body.length} bytes where the head says ${head.bytes} (truncated?)`);
    if (createHash('sha256').update(body).digest('hex') !== head.sha256) throw corrupt(n, 'SHA-256 mismatch');
    let snap: ShardSnapshot;
    try { snap = JSON.parse(body.toString('utf8')) as ShardSnapshot; } catch { throw corrupt(n, 'the body is not JSON'); }
    if (!snap || !Array.isArray(snap.users) || !Array.isArray(snap.rooms)) throw corrupt(n, 'the body has no users and rooms');
    return { head, snap };
  }
}
