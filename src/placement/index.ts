export { fnv1a32, shardOf } from './shard.js';
export { place, shardsOf } from './rendezvous.js';
export type { HostView, Place, Placement } from './rendezvous.js';
