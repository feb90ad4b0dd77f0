export { ShardPersistence, ensurePersistence, type PersistedShards, type Restored } from './shard-persistence.js';
export { SnapshotStore, snapshotBucket, type SnapshotHead } from './snapshot-store.js';
export { ShardLog, logStream, chainFrom, type LogEntry } from './shard-log.js';
