/**
 * Sandbar configuration: the schema of every key, the loaded config's type and
 * the loader. Import configuration from here, not from the files behind it.
 */
export { schema, type ConfigKey, type KeySpec, type KeyType } from './schema.js';
export type { SandbarConfig } from './types.js';
export { loadConfig, envNameOf, renamed, CONFIG_ENV, type LoadOptions, type LoadedConfig } from './load.js';
export { tableKeys, POLICIES, ROOM_ACTIONS, ALGORITHMS, globMatches, type KeyConfig, type Policy, type RoomAction, type RoomRule, type TableKey } from './tables.js';
