/**
 * Which shard an entity (user or room id) lives in: FNV-1a 32 of the id's
 * UTF-8 bytes, modulo the shard count. Stable across versions, hosts and
 * languages (FNV-1a is specified at http://www.isthe.com/chongo/tech/comp/fnv/);
 * every host of a cluster must use the same `shards`.
 */
const encoder = new TextEncoder();

export function fnv1a32(input: string): number {
  const bytes = encoder.encode(input);
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i]!;
    // Multiply by the FNV prime 16777619 in 32 bits (Math.imul keeps it exact).
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export function shardOf(id: string, shards: number): number {
  return fnv1a32(id) % shards;
}
