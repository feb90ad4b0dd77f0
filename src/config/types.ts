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
  readonly auth: { readonly secret: string; readonly tokenTtlS: number; readonly devTokenEndpoint: boolean };
  readonly longpoll: { readonly windowMs: number };
  readonly admin: { readonly token: string };
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
  readonly user: { readonly idleStopMs: number; readonly inboxMax: number; readonly inboxMaxBytes: number; readonly inboxTtlMs: number; readonly dedupWindow: number };
  readonly room: { readonly historyMax: number; readonly historyMaxBytes: number; readonly maxMembers: number };
  readonly sender: { readonly newRecipientsPerMin: number; readonly newRoomsPerMin: number; readonly bytesPerMin: number };
  readonly message: { readonly maxBytes: number };
  readonly request: { readonly timeoutMs: number };
  readonly log: { readonly level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent' };
  readonly debug: { readonly faultInjection: boolean };
}
