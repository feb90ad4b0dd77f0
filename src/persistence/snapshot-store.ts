/**
 * Shard snapshots in JetStream: a KV bucket `sandbar_<cluster>_snapshots`
 * (file storage, replicated on up to 3 NATS nodes, max_bytes from
 * persistence.snapshotStoreMaxBytes) holds, per shard, a head `shard.<n>`
 * and the body in chunks `chunk.<n>.<gen>.<i>` (a snapshot can pass NATS's
 * 1 MiB max payload).
 *
 * The body is written and read a chunk at a time (format 2,
 * snapshot-codec.ts): a write never holds the whole shard as one string, a
 * write that would pass persistence.maxSnapshotBytes stops at that point,
 * and a restore yields to the event loop between chunks, so a worker
 * restoring big shards still answers the supervisor's pings.
 *
 * The head carries what detects a bad snapshot: format version, shard,
 * epoch and seq of the state, byte length and SHA-256 of the body. It is
 * written last and by compare-and-set on the revision read before, so a
 * reader sees either the old snapshot or the new one whole, and a deposed
 * master (lower epoch) cannot overwrite its successor's snapshot.
 */
import { createHash, randomBytes } from 'node:crypto';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { Kvm, type KV } from '@nats-io/kv';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { SandbarError } from '../errors.js';
import { kvKeySubject, kvStream } from '../bus/subjects.js';
import type { ShardSnapshot } from '../actors/replication.js';
import { SnapshotDecoder, SnapshotEncoder, SnapshotFormatError, settleSizes } from './snapshot-codec.js';
import { applyMaxBytes, isStoreFull, storeFullError } from './store-limits.js';

/** 2: one record per line (snapshot-codec.ts); 1: one JSON document, still read. */
export const SNAPSHOT_VERSION = 2;
/** Well under NATS's default 1 MiB max payload. */
export const CHUNK_BYTES = 512 * 1024;

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

export async function ensureSnapshotBucket(nc: NatsConnection, cluster: string, maxBytes = 0): Promise<void> {
  const bucket = snapshotBucket(cluster);
  await new Kvm(nc).create(bucket, { history: 1, replicas: natsReplicas(nc), storage: 'file' });
  await applyMaxBytes(await jetstreamManager(nc), kvStream(bucket), maxBytes, 'persistence.snapshotStoreMaxBytes');
}

/** Why a snapshot was not written: a newer master's is there, or the shard is over persistence.maxSnapshotBytes. */
export type SaveResult = { ok: true; bytes: number } | { ok: false; why: 'newer' } | { ok: false; why: 'too-big'; bytes: number };

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
   * Writes snap as shard n's snapshot at (epoch, seq), encoding it a chunk at
   * a time (the snapshot's arrays must not change meanwhile: actors give
   * copies). Stops, removes what it wrote and answers `too-big` past
   * maxBytes; answers `newer`, writing nothing that counts, when the stored
   * snapshot has a higher epoch. Throws SANDBAR_ERR_JETSTREAM_FULL when the
   * bucket is full.
   */
  async save(n: number, epoch: number, seq: number, snap: ShardSnapshot, final: boolean, maxBytes = Infinity): Promise<SaveResult> {
    const key = SnapshotStore.headKey(n);
    const cur = await this.kv.get(key);
    let prev: SnapshotHead | null = null;
    if (cur && cur.operation === 'PUT' && cur.length > 0) {
      try { prev = cur.json<SnapshotHead>(); } catch { prev = null; }
      if (prev && typeof prev.epoch === 'number' && prev.epoch > epoch) return { ok: false, why: 'newer' };
    }
    const gen = `${epoch}-${seq}-${randomBytes(3).toString('hex')}`;
    const enc = new SnapshotEncoder(snap, CHUNK_BYTES);
    const hash = createHash('sha256');
    let chunks = 0;
    try {
      for (let chunk = enc.next(); chunk !== null; chunk = enc.next()) {
        if (enc.total > maxBytes) {
          await this.dropChunks(n, gen);
          return { ok: false, why: 'too-big', bytes: enc.total };
        }
        hash.update(chunk);
        await this.kv.put(SnapshotStore.chunkKey(n, gen, chunks++), chunk);
      }
      if (chunks === 0) await this.kv.put(SnapshotStore.chunkKey(n, gen, chunks++), new Uint8Array(0));
    } catch (err) {
      await this.dropChunks(n, gen);
      if (isStoreFull(err)) throw storeFullError(this.bucket, 'persistence.snapshotStoreMaxBytes', err);
      throw err;
    }
    const head: SnapshotHead = { v: SNAPSHOT_VERSION, shard: n, epoch, seq, gen, chunks, bytes: enc.total, sha256: hash.digest('hex'), at: Date.now(), final };
    try {
      if (cur) await this.kv.update(key, JSON.stringify(head), cur.revision);
      else await this.kv.create(key, JSON.stringify(head));
    } catch (err) {
      await this.dropChunks(n, gen);
      if (isStoreFull(err)) throw storeFullError(this.bucket, 'persistence.snapshotStoreMaxBytes', err);
      // Raced with another writer (a handoff's new master): theirs stands.
      return { ok: false, why: 'newer' };
    }
    if (prev && typeof prev.gen === 'string' && prev.gen !== gen) await this.dropChunks(n, prev.gen);
    return { ok: true, bytes: enc.total };
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
   * Shard n's snapshot, null when none was ever written. Reads and decodes
   * one chunk at a time, yielding to the event loop between chunks. Throws
   * SANDBAR_ERR_SNAPSHOT_CORRUPT when anything fails its checks: a head that
   * is not ours, a missing or short chunk, a length or SHA-256 mismatch, a
   * body that is not the snapshot of this shard.
   */
  async load(n: number): Promise<LoadedSnapshot | null> {
    const e = await this.kv.get(SnapshotStore.headKey(n));
    if (!e || e.operation !== 'PUT' || e.length === 0) return null;
    let head: SnapshotHead;
    try { head = e.json<SnapshotHead>(); } catch { throw corrupt(n, `the head (${e.length} bytes) is not JSON`); }
    if (!head || (head.v !== SNAPSHOT_VERSION && head.v !== 1)) throw corrupt(n, `unknown format version ${String(head?.v)} (expected ${SNAPSHOT_VERSION} or 1)`);
    if (head.shard !== n) throw corrupt(n, `the head names shard ${head.shard}`);
    if (!Number.isSafeInteger(head.chunks) || head.chunks < 1 || head.chunks > 4096 || !Number.isSafeInteger(head.bytes) || !Number.isSafeInteger(head.seq) || !Number.isSafeInteger(head.epoch) || typeof head.gen !== 'string') throw corrupt(n, 'the head has missing or invalid fields');
    const hash = createHash('sha256');
    const dec = head.v === 1 ? null : new SnapshotDecoder();
    const v1: Buffer[] = [];
    let bytes = 0;
    let bad: string | null = null;
    // One chunk read ahead while the one before is decoded.
    let next = this.kv.get(SnapshotStore.chunkKey(n, head.gen, 0));
    for (let i = 0; i < head.chunks; i++) {
      const p = await next;
      if (i + 1 < head.chunks) next = this.kv.get(SnapshotStore.chunkKey(n, head.gen, i + 1));
      if (!p || p.operation !== 'PUT') {
        if (i + 1 < head.chunks) await next.catch(() => null);
        throw corrupt(n, `chunk ${i + 1} of ${head.chunks} is missing`);
      }
      const chunk = Buffer.from(p.value.buffer, p.value.byteOffset, p.value.byteLength);
      bytes += chunk.length;
      if (bytes > head.bytes) throw corrupt(n, `more than the ${head.bytes} bytes the head says`);
      hash.update(chunk);
      if (dec && bad === null) {
        // A bad record is reported after the length and checksum: those name truncation and damage better.
        try { dec.push(chunk); } catch (err) {
          if (!(err instanceof SnapshotFormatError)) throw err;
          bad = err.message;
        }
      } else if (!dec) v1.push(chunk);
      // Decoding is the work that could hold the loop: let pings and I/O in between chunks.
      await yieldToLoop();
    }
    if (bytes !== head.bytes) throw corrupt(n, `${bytes} bytes where the head says ${head.bytes} (truncated?)`);
    if (hash.digest('hex') !== head.sha256) throw corrupt(n, 'SHA-256 mismatch');
    let snap: ShardSnapshot;
    if (dec) {
      if (bad !== null) throw corrupt(n, bad);
      try { snap = dec.end(); } catch (err) { throw corrupt(n, (err as Error).message); }
      settleSizes(snap);
    } else {
      try { snap = JSON.parse(Buffer.concat(v1).toString('utf8')) as ShardSnapshot; } catch { throw corrupt(n, 'the body is not JSON'); }
    }
    if (!snap || !Array.isArray(snap.users) || !Array.isArray(snap.rooms)) throw corrupt(n, 'the body has no users and rooms');
    return { head, snap };
  }
}
