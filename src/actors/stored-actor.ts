/**
 * What the user and room actors share about storage: each counts every byte
 * it stores into its worker's storage budget (docs/storage.md), in its shard
 * and, for a message, as its sender's, and uncounts it all when it stops.
 */
import { Actor, type ActorLink } from './actor.js';
import { shardOf } from '../placement/shard.js';
import { storageOf, type WorkerStorage } from '../storage/index.js';

/** What a stored actor needs of its shard host. */
export interface StoredActorHost extends ActorLink {
  readonly bus: object;
  readonly config: { readonly shards: number };
}

export abstract class StoredActor<M> extends Actor<M> {
  /** Everything this actor has counted into its worker's storage budget. */
  private counted = 0;
  protected readonly storage: WorkerStorage;
  protected readonly shard: number;

  constructor(host: StoredActorHost, readonly id: string, overhead: number) {
    super(host);
    this.storage = storageOf(host.bus);
    this.shard = shardOf(id, host.config.shards);
    this.count(overhead);
  }

  protected count(delta: number): void {
    this.counted += delta;
    this.storage.budget.add(this.shard, delta);
  }

  /** A stored message counts as its sender's too (storage.senderSharePercent). */
  protected countEntry(from: string, delta: number): void {
    this.counted += delta;
    this.storage.budget.entry(this.shard, from, delta);
  }

  /** Uncounts everything: the messages (per sender), then the rest. */
  protected uncountAll(messages: readonly { readonly from: string }[], sizes: readonly number[] | null): void {
    if (sizes) for (let i = 0; i < messages.length; i++) this.countEntry(messages[i]!.from, -sizes[i]!);
    this.count(-this.counted);
  }
}
