import type { KeyConfig, Policy, RoomRule } from './tables.js';

/** The resolved, validated, frozen configuration (see schema.ts for every key's meaning). */
export interface SandbarConfig {
  readonly hostId: string;
  readonly dataDir: string;
  readonly shards: number;
  readonly cluster: {
    readonly name: string;
    /** Resolved: never 0 after loading (0 in the file means os.availableParallelism()). */
    readonly workers: number;
    readonly schedulingPolicy: 'none' | 'rr';
    readonly maxRestarts: number;
    readonly restartWindowMs: number;
    readonly restartBackoffMs: number;
    readonly workerPingMs: number;
    readonly workerHangMs: number;
    readonly shutdownTimeoutMs: number;
    readonly heartbeatMs: number;
    readonly suspectAfterMs: number;
    readonly downAfterMs: number;
    readonly selfFenceMs: number;
    readonly maxConcurrentHandoffs: number;
    /** MiB; 0: derived at start (see cluster/heap.ts). */
    readonly workerHeapMb: number;
  };
  readonly http: {
    readonly host: string;
    readonly port: number;
    readonly tlsCertFile?: string;
    readonly tlsKeyFile?: string;
    readonly ipConnectRate: number;
    readonly ipConnectBurst: number;
    readonly ipMaxSessions: number;
    readonly acceptRate: number;
    readonly acceptBurst: number;
  };
  readonly nats: {
    readonly servers: readonly string[];
    readonly embedded: boolean;
    readonly connectTimeoutMs: number;
    readonly user?: string;
    readonly pass?: string;
    readonly credsFile?: string;
    readonly tlsCaFile?: string;
    readonly tlsCertFile?: string;
    readonly tlsKeyFile?: string;
  };
  readonly auth: {
    readonly secret: string;
    readonly algorithms: readonly string[];
    /** [[auth.keys]] (file only; each file already read). */
    readonly keys: readonly KeyConfig[];
    readonly jwksFile?: string;
    readonly jwksUrl?: string;
    readonly jwksRefreshMs: number;
    readonly jwksTimeoutMs: number;
    readonly issuer?: string;
    readonly audience?: readonly string[];
    readonly clockSkewS: number;
    readonly maxTokenBytes: number;
    readonly expiryWarningMs: number;
    readonly revocationTtlS: number;
    readonly legacyTokens: boolean;
    readonly tokenTtlS: number;
    readonly devTokenEndpoint: boolean;
  };
  readonly authz: {
    readonly default: Policy;
    readonly roomsClaim: string;
    /** [[authz.rooms]] (file only), first match wins. */
    readonly rooms: readonly RoomRule[];
    readonly proxyUrl?: string;
    readonly proxyTimeoutMs: number;
    readonly proxyCacheMs: number;
    readonly proxyCacheMax: number;
    readonly proxyFailOpen: boolean;
    readonly proxyToken?: string;
  };
  readonly longpoll: { readonly windowMs: number };
  readonly admin: { readonly token: string; readonly listener: 'internal' | 'public'; readonly host: string; readonly port: number };
  readonly metrics: { readonly histograms: boolean };
  readonly session: {
    readonly idleTimeoutMs: number;
    readonly maxFrameBytes: number;
    readonly maxBufferedBytes: number;
    readonly maxChannels: number;
    readonly ratePerSecond: number;
    readonly rateBurst: number;
    readonly rateMaxRefused: number;
  };
  readonly replication: { readonly replicas: number; readonly ack: 'all' | 'none' };
  readonly persistence: {
    readonly mode: 'snapshots' | 'log' | 'none';
    readonly snapshotIntervalMs: number;
    readonly maxSnapshotBytes: number;
    readonly snapshotStoreMaxBytes: number;
    readonly logMaxBytes: number;
  };
  /** MiB; budgetMb 0: derived from the worker's heap limit (storage/budget.ts). */
  readonly storage: { readonly budgetMb: number; readonly warnPercent: number; readonly senderSharePercent: number };
  readonly user: { readonly idleStopMs: number; readonly inboxMax: number; readonly inboxMaxBytes: number; readonly inboxTtlMs: number; readonly dedupWindow: number; readonly dedupTtlMs: number; readonly dedupMaxIds: number };
  readonly room: { readonly historyMax: number; readonly historyMaxBytes: number; readonly maxMembers: number; readonly clientEvents?: readonly string[]; readonly maxMetaBytes: number };
  readonly sender: { readonly newRecipientsPerMin: number; readonly newRoomsPerMin: number; readonly bytesPerMin: number };
  readonly api: { readonly host: string; readonly port?: number; readonly keys?: readonly string[]; readonly maxBodyBytes: number; readonly maxBroadcastRooms: number };
  readonly events: {
    readonly enabled: boolean;
    readonly types: readonly string[];
    readonly maxBytes: number;
    readonly maxAgeMs: number;
    readonly partitions: number;
    readonly maxPending: number;
  };
  readonly webhooks: {
    readonly urls?: readonly string[];
    readonly secret?: string;
    readonly maxAttempts: number;
    readonly backoffMs: number;
    readonly maxBackoffMs: number;
    readonly timeoutMs: number;
  };
  readonly message: { readonly maxBytes: number };
  readonly request: { readonly timeoutMs: number };
  readonly log: { readonly level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'; readonly syslogPrefix: 'auto' | 'on' | 'off' };
  readonly debug: { readonly faultInjection: boolean };
}
