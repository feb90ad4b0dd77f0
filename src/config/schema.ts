/**
 * The one configuration schema: every key, its type, default, unit and range.
 *
 * Keys are dotted paths (`session.idleTimeoutMs` is `[session] idleTimeoutMs`
 * in TOML and `SANDBAR_SESSION_IDLE_TIMEOUT_MS` in the environment).
 * `config/sandbar.toml` documents the same keys; a test keeps them in step.
 */

export type KeyType = 'string' | 'integer' | 'number' | 'boolean' | 'string[]' | 'enum';

export interface KeySpec {
  readonly type: KeyType;
  /** Default value; `null` where the loader derives it (documented in `doc`), or for an optional key. */
  readonly default: string | number | boolean | readonly string[] | null;
  readonly doc: string;
  readonly unit?: 'ms' | 's' | 'bytes' | 'count';
  readonly min?: number;
  readonly max?: number;
  /** Allowed values for `enum`. */
  readonly values?: readonly string[];
  /** For strings: a pattern the value must match, and how to say it. */
  readonly pattern?: RegExp;
  readonly patternDoc?: string;
  /** For strings: '' is a valid value (meaning "unset"). */
  readonly allowEmpty?: boolean;
  /** No default at all: unset unless a source gives it (credentials, file paths). */
  readonly optional?: boolean;
}

const ID = /^[A-Za-z0-9_-]{1,64}$/;
const ID_DOC = '1-64 characters of A-Z a-z 0-9 _ -';

export const schema = {
  hostId: { type: 'string', default: null, pattern: ID, patternDoc: ID_DOC, doc: 'Stable id of this host in the cluster. Default: the machine hostname, cleaned to the allowed characters.' },
  dataDir: { type: 'string', default: './.sandbar-data', doc: 'Directory for the embedded nats-server (JetStream store) and other local state.' },

  'cluster.name': { type: 'string', default: 'local', pattern: ID, patternDoc: ID_DOC, doc: 'Cluster name; every NATS subject starts with sandbar.<cluster.name>.' },
  'cluster.workers': { type: 'integer', default: 0, min: 0, max: 1024, unit: 'count', doc: 'Worker processes; 0 means os.availableParallelism().' },
  'cluster.schedulingPolicy': { type: 'enum', default: 'rr', values: ['none', 'rr'], doc: 'How node:cluster spreads new connections: "rr" (default) has the primary accept and hand each connection to the workers in turn, an even spread of long-lived connections; "none" lets workers accept from the shared socket, cheaper per handshake but the kernel may favour one worker (measured max/min up to 2.6). See docs/benchmarks.md.' },
  'cluster.maxRestarts': { type: 'integer', default: 5, min: 0, max: 1000, unit: 'count', doc: 'Worker restarts allowed within cluster.restartWindowMs before the host gives up and exits non-zero (OTP intensity).' },
  'cluster.restartWindowMs': { type: 'integer', default: 30000, min: 100, max: 3600000, unit: 'ms', doc: 'Window for cluster.maxRestarts (OTP period).' },
  'cluster.restartBackoffMs': { type: 'integer', default: 100, min: 0, max: 60000, unit: 'ms', doc: 'First restart delay; doubles with each restart inside the window, capped at 5 s.' },
  'cluster.workerPingMs': { type: 'integer', default: 1000, min: 50, max: 60000, unit: 'ms', doc: 'How often the primary pings each worker over IPC.' },
  'cluster.workerHangMs': { type: 'integer', default: 5000, min: 100, max: 600000, unit: 'ms', doc: 'A worker that has not answered a ping for this long is killed (SIGKILL) and restarted.' },
  'cluster.shutdownTimeoutMs': { type: 'integer', default: 10000, min: 100, max: 600000, unit: 'ms', doc: 'Graceful stop budget on SIGTERM/SIGINT; workers still alive after it are killed.' },
  'cluster.heartbeatMs': { type: 'integer', default: 500, min: 10, max: 60000, unit: 'ms', doc: 'Host heartbeat interval on sandbar.<cluster>.hb.<hostId>.' },
  'cluster.suspectAfterMs': { type: 'integer', default: 1500, min: 10, max: 600000, unit: 'ms', doc: 'A host with no heartbeat for this long is suspect.' },
  'cluster.downAfterMs': { type: 'integer', default: 3000, min: 10, max: 600000, unit: 'ms', doc: 'A host with no heartbeat for this long is down; its shards are promoted elsewhere.' },
  'cluster.selfFenceMs': { type: 'integer', default: 2000, min: 10, max: 600000, unit: 'ms', doc: 'A host that has neither renewed its lease in the ownership bucket (a NATS quorum write) nor heard a majority of the hosts it knows for this long, or a worker cut off from NATS for this long, stops serving its shards as master; must be below cluster.downAfterMs - cluster.heartbeatMs (checked at start).' },
  'cluster.maxConcurrentHandoffs': { type: 'integer', default: 64, min: 1, max: 4096, doc: 'Per worker: how many shards it hands off at once when placement moves them (a host joins, a worker comes back, a graceful stop); the others are served where they are until their turn.' },
  'cluster.workerHeapMb': { type: 'integer', default: 0, min: 0, max: 1048576, doc: 'V8 heap limit of each worker in MiB, passed to the forked workers as --max-old-space-size. 0 (default): derived at start as half of the machine\'s memory divided among the workers, between 256 and 4096 MiB (a 24 GiB machine with 2 workers gets 4096). The storage budget (storage.budgetMb) is a share of it.' },

  'http.host': { type: 'string', default: '0.0.0.0', doc: 'Address the HTTP/WebSocket listener binds.' },
  'http.port': { type: 'integer', default: 4000, min: 0, max: 65535, doc: 'Port of the HTTP/WebSocket listener; 0 picks a free one (logged at start).' },
  'http.tlsCertFile': { type: 'string', default: null, optional: true, doc: 'PEM certificate chain for HTTPS/WSS; with http.tlsKeyFile the listener speaks TLS (wss://). Unset: plain HTTP (terminate TLS in front).' },
  'http.tlsKeyFile': { type: 'string', default: null, optional: true, doc: 'PEM private key for http.tlsCertFile.' },
  'http.ipConnectRate': { type: 'integer', default: 50, min: 0, max: 1000000, unit: 'count', doc: 'New connections per second one client IP address may open (per host: each worker allows its share, rate / cluster.workers); more get HTTP 429 with Retry-After before the upgrade. 0: no limit.' },
  'http.ipConnectBurst': { type: 'integer', default: 100, min: 1, max: 1000000, unit: 'count', doc: 'Connections one IP address may open at once before http.ipConnectRate applies (per host, shared out like the rate).' },
  'http.ipMaxSessions': { type: 'integer', default: 1000, min: 0, max: 10000000, unit: 'count', doc: 'Most open sessions from one IP address (per host: each worker allows ceil(value / cluster.workers)); more get HTTP 429 before the upgrade. 0: no limit.' },
  'http.acceptRate': { type: 'integer', default: 1000, min: 0, max: 1000000, unit: 'count', doc: 'New sessions per second each worker admits (a token bucket); beyond it the upgrade is answered 503 with a Retry-After that grows with the refused load, so a reconnect storm is spread out instead of served at once. 0: no limit.' },
  'http.acceptBurst': { type: 'integer', default: 1000, min: 1, max: 1000000, unit: 'count', doc: 'New sessions each worker admits at once before http.acceptRate applies.' },

  'nats.servers': { type: 'string[]', default: ['nats://127.0.0.1:4222'], doc: 'NATS servers to connect to (any node of the NATS cluster; the client learns the rest).' },
  'nats.embedded': { type: 'boolean', default: true, doc: 'When no NATS server is reachable at start, run nats-server from PATH on the first nats.servers address (loopback only), with JetStream in dataDir.' },
  'nats.user': { type: 'string', default: null, optional: true, doc: 'NATS user name (with nats.pass); unset: connect without a user. See docs/security.md for the accounts and permissions to give it.' },
  'nats.pass': { type: 'string', default: null, optional: true, doc: 'Password of nats.user. Never printed.' },
  'nats.credsFile': { type: 'string', default: null, optional: true, doc: 'NATS credentials file (JWT + NKey seed, as `nsc` writes it), instead of nats.user/nats.pass.' },
  'nats.tlsCaFile': { type: 'string', default: null, optional: true, doc: 'PEM CA bundle that signs the NATS servers\' certificates; set it (or the client pair) to connect with TLS.' },
  'nats.tlsCertFile': { type: 'string', default: null, optional: true, doc: 'PEM client certificate for NATS servers that verify clients (with nats.tlsKeyFile).' },
  'nats.tlsKeyFile': { type: 'string', default: null, optional: true, doc: 'PEM private key of nats.tlsCertFile.' },
  'nats.connectTimeoutMs': { type: 'integer', default: 2000, min: 100, max: 120000, unit: 'ms', doc: 'How long start-up waits for NATS before trying the embedded server or failing.' },

  'auth.secret': { type: 'string', default: 'dev-secret-change-me', allowEmpty: true, doc: 'HMAC key (its UTF-8 bytes) that verifies HS256/HS384/HS512 tokens without a kid header, and signs the tokens of `sandbar token` and the dev endpoint. Change it in production (a start-up warning says when it is the default); every host of a cluster needs the same one. Empty: no key for tokens without kid (use auth.keys, auth.jwksFile or auth.jwksUrl).' },
  'auth.algorithms': { type: 'string[]', default: ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'], doc: 'JWS algorithms a token may be signed with; a key also accepts only the algorithm it is for. "none" is never accepted.' },
  'auth.jwksFile': { type: 'string', default: null, optional: true, doc: 'A JSON Web Key Set file (public keys, each with a kid) read at start; a token whose kid names one of them is verified with it.' },
  'auth.jwksUrl': { type: 'string', default: null, optional: true, doc: 'An http(s) URL serving a JSON Web Key Set, fetched at start and every auth.jwksRefreshMs, and again (at most once per 10 s) when a token names an unknown kid. A failed fetch keeps the keys it had (and logs a warning).' },
  'auth.jwksRefreshMs': { type: 'integer', default: 300000, min: 1000, max: 86400000, unit: 'ms', doc: 'How often the keys of auth.jwksUrl are fetched again.' },
  'auth.jwksTimeoutMs': { type: 'integer', default: 5000, min: 100, max: 60000, unit: 'ms', doc: 'Deadline of one fetch of auth.jwksUrl.' },
  'auth.issuer': { type: 'string', default: null, optional: true, doc: 'When set, a token must carry this iss claim.' },
  'auth.audience': { type: 'string[]', default: null, optional: true, doc: 'When set, a token\'s aud claim must name one of these.' },
  'auth.clockSkewS': { type: 'integer', default: 10, min: 0, max: 600, unit: 's', doc: 'Clock difference allowed when checking exp and nbf (a token is refused only this long after its exp).' },
  'auth.maxTokenBytes': { type: 'integer', default: 4096, min: 256, max: 65536, unit: 'bytes', doc: 'Tokens longer than this are refused before any work is done on them.' },
  'auth.expiryWarningMs': { type: 'integer', default: 60000, min: 0, max: 86400000, unit: 'ms', doc: 'A session gets a token_expiring push this long before its token\'s exp (docs/auth.md); it may send a fresh token (refresh), else it is closed at exp with 4401. 0: no warning.' },
  'auth.revocationTtlS': { type: 'integer', default: 86400, min: 0, max: 31536000, unit: 's', doc: 'After a user is revoked (disconnect user), tokens of that user issued before the revocation are refused for this long (keep it at least as long as the tokens you mint live). Kept in memory per worker, at most 100,000 users.' },
  'auth.legacyTokens': { type: 'boolean', default: false, doc: 'Also accept the pre-JWT token format (base64url({u,exp}).HMAC-SHA256 with auth.secret), for a migration. Off by default.' },
  'auth.devTokenEndpoint': { type: 'boolean', default: false, doc: 'Development only: serve POST /dev/token {user} → a signed token for any user, so the demo page at / can sign in without a token service. Never enable in production: anyone could act as anyone.' },
  'auth.tokenTtlS': { type: 'integer', default: 86400, min: 1, max: 31536000, unit: 's', doc: 'Lifetime of tokens minted by `sandbar token` and the dev token endpoint.' },

  'authz.default': { type: 'enum', default: 'deny', values: ['public', 'claims', 'proxy', 'deny'], doc: 'Policy of a room that no authz.rooms rule matches, for every action (docs/auth.md): "deny" (default), "public" (any signed-in user), "claims" (the token lists the room), "proxy" (the application is asked).' },
  'authz.roomsClaim': { type: 'string', default: 'rooms', doc: 'The token claim the "claims" policy reads: an array of room ids or globs (every action), or an object {join, history, publish, presence} of such arrays.' },
  'authz.proxyUrl': { type: 'string', default: null, optional: true, doc: 'http(s) URL the "proxy" policy POSTs {user, room, action, params} to; it answers {"allow": true or false, "reason"?}. Required when a rule uses "proxy".' },
  'authz.proxyTimeoutMs': { type: 'integer', default: 1000, min: 10, max: 60000, unit: 'ms', doc: 'Deadline of one proxy request; no answer in time counts as the proxy being down.' },
  'authz.proxyCacheMs': { type: 'integer', default: 5000, min: 0, max: 3600000, unit: 'ms', doc: 'How long a proxy answer is reused for the same user, room and action. 0: ask every time.' },
  'authz.proxyCacheMax': { type: 'integer', default: 10000, min: 1, max: 10000000, unit: 'count', doc: 'Most proxy answers a worker keeps (oldest dropped first).' },
  'authz.proxyFailOpen': { type: 'boolean', default: false, doc: 'When the proxy is down, slow or answers garbage: false (default) refuses the action, true allows it. Either way a counter and a rate-limited warning say so.' },
  'authz.proxyToken': { type: 'string', default: null, optional: true, doc: 'Sent to the proxy as Authorization: Bearer <value>, so the application can tell Sandbar\'s requests. Never printed.' },

  'session.idleTimeoutMs': { type: 'integer', default: 60000, min: 100, max: 3600000, unit: 'ms', doc: 'A session with no frame from its client for this long is closed (phoenix clients heartbeat every 30 s).' },
  'session.maxFrameBytes': { type: 'integer', default: 65536, min: 256, max: 16777216, unit: 'bytes', doc: 'Largest frame accepted from a client; a larger one closes the session with 1009.' },
  'session.maxBufferedBytes': { type: 'integer', default: 1048576, min: 1024, max: 1073741824, unit: 'bytes', doc: 'A client whose unsent outgoing data passes this is disconnected (close 4408) instead of growing server memory.' },
  'session.maxChannels': { type: 'integer', default: 100, min: 1, max: 100000, unit: 'count', doc: 'Most topics one session may have joined at once; one more join is refused with SANDBAR_ERR_TOO_MANY_CHANNELS.' },
  'session.ratePerSecond': { type: 'integer', default: 100, min: 0, max: 1000000, unit: 'count', doc: 'Frames per second one session may send (a token bucket, heartbeats included); a frame over it gets a phx_reply error SANDBAR_ERR_RATE_LIMITED and is not processed. 0: no limit.' },
  'session.rateBurst': { type: 'integer', default: 200, min: 1, max: 1000000, unit: 'count', doc: 'Frames a session may send at once before session.ratePerSecond applies.' },
  'session.rateMaxRefused': { type: 'integer', default: 50, min: 1, max: 1000000, unit: 'count', doc: 'A session with more refused frames than this within one second ignores the limit; it is closed with 4429 (SANDBAR_ERR_RATE_ABUSE).' },

  'longpoll.windowMs': { type: 'integer', default: 10000, min: 100, max: 60000, unit: 'ms', doc: 'How long a LongPoll poll is held when no frame waits; answered 204 after it. Keep it below the phoenix client\'s longpollerTimeout (20 s by default). A LongPoll session with no poll for session.idleTimeoutMs is closed.' },

  'admin.token': { type: 'string', default: '', allowEmpty: true, doc: 'Token that opens the cluster page (/cluster) and its channel. Empty (default): the cluster page is off (404).' },
  'admin.listener': { type: 'enum', default: 'internal', values: ['internal', 'public'], doc: 'Where the operator endpoints (/metrics, /cluster) are served: "internal" (default) on their own listener at admin.host:admin.port, so the public port serves only WebSocket, LongPoll, the demo page and health; "public" on the public listener (http.host:http.port) too, with no second listener.' },
  'admin.host': { type: 'string', default: '127.0.0.1', doc: 'Address the internal listener (admin.listener = "internal") binds: loopback by default; an address on a private network for a Prometheus on another machine. Never a public one.' },
  'admin.port': { type: 'integer', default: 4001, min: 0, max: 65535, doc: 'Port of the internal listener (/metrics, /cluster, health); 0 picks a free one (logged at start). Each host on one machine needs its own.' },
  'metrics.histograms': { type: 'boolean', default: true, doc: 'Time requests (dm, room msg, join) and shard takeovers into the latency histograms of /metrics. false: counters only (to measure what the timing costs; docs/benchmarks.md).' },

  shards: { type: 'integer', default: 1024, min: 1, max: 65536, unit: 'count', doc: 'Number of shards users and rooms are hashed into (FNV-1a 32 of the id, mod shards). Every host of a cluster needs the same value.' },
  'replication.replicas': { type: 'integer', default: 1, min: 0, max: 5, unit: 'count', doc: 'Replicas per shard besides its master.' },
  'replication.ack': { type: 'enum', default: 'all', values: ['all', 'none'], doc: '"all": a write is acknowledged after every live replica applied it; "none": at once (faster, may lose the last writes if the master dies).' },

  'persistence.mode': { type: 'enum', default: 'snapshots', values: ['snapshots', 'log', 'none'], doc: 'What survives a restart or crash of every host (docs/durability.md): "snapshots" (default) writes each changed shard to JetStream every persistence.snapshotIntervalMs and on a graceful stop with no live successor, so a crash of every host at once loses at most that window; "log" also appends every write to a JetStream stream before its ok (nothing acknowledged is lost; costs throughput); "none" keeps nothing beyond the in-memory replicas.' },
  'persistence.snapshotIntervalMs': { type: 'integer', default: 30000, min: 100, max: 3600000, unit: 'ms', doc: 'How often a master writes the snapshot of each shard that changed since its last one (modes snapshots and log); in mode snapshots this is the most a crash of every host at once can lose.' },
  'persistence.maxSnapshotBytes': { type: 'integer', default: 67108864, min: 1024, max: 1073741824, unit: 'bytes', doc: 'Largest snapshot of one shard; a shard over it is not written (an error names the shard and its size) and keeps its previous snapshot (and, in mode log, its untrimmed log).' },
  'persistence.snapshotStoreMaxBytes': { type: 'integer', default: 0, min: 0, max: 1125899906842624, unit: 'bytes', doc: 'JetStream max_bytes of the snapshot bucket (set when the host starts, also on an existing bucket). A snapshot that does not fit is not written and an error names the store (SANDBAR_ERR_JETSTREAM_FULL); its previous snapshot stays. Leave room for two snapshots of the largest shards (a new one is written before the old one is removed). 0: no limit of Sandbar\'s own (the NATS server\'s storage limit applies).' },
  'persistence.logMaxBytes': { type: 'integer', default: 0, min: 0, max: 1125899906842624, unit: 'bytes', doc: 'Mode log: JetStream max_bytes of the durable log stream (set when the host starts, also on an existing stream). When the log is full, new writes are refused with SANDBAR_ERR_JETSTREAM_FULL (at once, not after a timeout) until snapshots trim it. 0: no limit of Sandbar\'s own (the NATS server\'s storage limit applies).' },

  'storage.budgetMb': { type: 'integer', default: 0, min: 0, max: 1048576, doc: 'Per worker: the most stored state (inbox and room-history entries, dedup ids, user and room actors; counted in bytes as stored, master and replica copies alike) in MiB. Past it, the worker refuses new dms, room messages and new rooms on the shards it masters with SANDBAR_ERR_STORAGE_FULL; reads, acks, deliveries and leaves go on. 0 (default): 40 % of the worker\'s heap limit (cluster.workerHeapMb).' },
  'storage.senderSharePercent': { type: 'integer', default: 2, min: 1, max: 100, doc: 'Past storage.warnPercent, a dm or room message is refused (SANDBAR_ERR_STORAGE_FULL) when its sender\'s messages stored on the worker already hold more than this share of storage.budgetMb; senders below it still get in, so whoever filled the budget cannot take its last part from everyone else.' },
  'storage.warnPercent': { type: 'integer', default: 80, min: 1, max: 100, doc: 'A worker whose stored state passes this share of storage.budgetMb logs a warning (at most one a minute while above) and counts it.' },

  'user.idleStopMs': { type: 'integer', default: 300000, min: 100, max: 86400000, unit: 'ms', doc: 'A user actor with no connection and an empty inbox stops after this long.' },
  'user.inboxMax': { type: 'integer', default: 10000, min: 1, max: 10000000, unit: 'count', doc: 'Most unacknowledged messages one inbox holds; a dm to a full inbox is refused with an error reply (never dropped silently).' },
  'user.inboxMaxBytes': { type: 'integer', default: 4194304, min: 1024, max: 1073741824, unit: 'bytes', doc: 'Most bytes of unacknowledged messages one inbox holds (each message counted as stored: body, ids and bookkeeping); a dm that would pass it is refused with SANDBAR_ERR_INBOX_FULL.' },
  'user.inboxTtlMs': { type: 'integer', default: 2592000000, min: 0, max: 31536000000, unit: 'ms', doc: 'An unacknowledged message older than this (from the time its master stored it) is dropped from the inbox and counted; 0: never. Default: 30 days.' },
  'user.dedupWindow': { type: 'integer', default: 1000, min: 0, max: 1000000, unit: 'count', doc: 'How many recent client message ids per sender each user and room remembers to drop resends (dm and room msg, clients and the API alike); other senders never push a sender\'s own ids out. 0: no dedup. See also user.dedupTtlMs and user.dedupMaxIds.' },
  'user.dedupTtlMs': { type: 'integer', default: 300000, min: 0, max: 86400000, unit: 'ms', doc: 'A remembered message id is forgotten once a message stamped this much later is stored in the same user or room: a resend is recognised within this time of its original. 0: no time bound.' },
  'user.dedupMaxIds': { type: 'integer', default: 10000, min: 1, max: 10000000, unit: 'count', doc: 'Most message ids one user or room remembers, whoever sent them (about 150 bytes each); past it the oldest go first. The memory bound of dedup.' },
  'room.historyMax': { type: 'integer', default: 1000, min: 0, max: 1000000, unit: 'count', doc: 'Messages a room keeps for replay; older ones are dropped first.' },
  'room.historyMaxBytes': { type: 'integer', default: 4194304, min: 1024, max: 1073741824, unit: 'bytes', doc: 'Most bytes of messages a room keeps for replay (each counted as stored); older ones are dropped first.' },
  'room.clientEvents': { type: 'string[]', default: null, optional: true, doc: 'Ephemeral events clients may push on room: topics, relayed to the room\'s members and never stored, as "<namespace>:<event>": the namespace is the part of the room id before its first "." ("support" for room support.42), "*" any room; e.g. ["*:typing", "game:move"]. Unset: none (docs/protocol.md).' },
  'room.maxMetaBytes': { type: 'integer', default: 1024, min: 16, max: 65536, unit: 'bytes', doc: 'Largest presence meta a client may set with a presence push on a room: topic (UTF-8 bytes of its JSON).' },
  'room.maxMembers': { type: 'integer', default: 100000, min: 1, max: 10000000, unit: 'count', doc: 'Most connections joined to one room.' },

  'sender.newRecipientsPerMin': { type: 'integer', default: 100, min: 0, max: 1000000, unit: 'count', doc: 'Per sender and worker: dms to users it has not sent to recently (its last 16 recipients) per minute, as a token bucket holding one minute; more are refused with SANDBAR_ERR_SEND_QUOTA. 0: no limit.' },
  'sender.newRoomsPerMin': { type: 'integer', default: 30, min: 0, max: 1000000, unit: 'count', doc: 'Per sender and worker: messages to rooms it has not posted to recently (its last 8 rooms) per minute; more are refused with SANDBAR_ERR_SEND_QUOTA. 0: no limit.' },
  'sender.bytesPerMin': { type: 'integer', default: 8388608, min: 0, max: 1073741824, unit: 'bytes', doc: 'Per sender and worker: body bytes of dms and room messages per minute (a bucket holding one minute, at least message.maxBytes); more are refused with SANDBAR_ERR_SEND_QUOTA. 0: no limit.' },
  'message.maxBytes': { type: 'integer', default: 16384, min: 1, max: 16777216, unit: 'bytes', doc: 'Largest message body (UTF-8 bytes of its JSON) in a dm or room msg.' },
  'request.timeoutMs': { type: 'integer', default: 5000, min: 50, max: 600000, unit: 'ms', doc: 'Deadline of a request to a user or room actor, retries included.' },

  'api.host': { type: 'string', default: '127.0.0.1', doc: 'Address the server API listener binds (docs/api.md). A non-loopback address needs api.keys.' },
  'api.port': { type: 'integer', default: null, optional: true, min: 0, max: 65535, doc: 'Port of the server API listener (HTTP, its own port: never the public one). Unset (default): the HTTP API is off. 0 picks a free port (logged as "api listening").' },
  'api.keys': { type: 'string[]', default: null, optional: true, doc: 'API keys, each "<name>:<operations>:<key>": operations "*" or a "|"-separated list of publish, broadcast, dm, presence, history, disconnect, unsubscribe; the key at least 16 characters of A-Z a-z 0-9 _ - . ~ +  / =. Required when api.host is not loopback. Never printed.' },
  'api.maxBodyBytes': { type: 'integer', default: 1048576, min: 1024, max: 67108864, unit: 'bytes', doc: 'Largest HTTP API request body; a larger one is answered 413 (SANDBAR_ERR_API_BODY_TOO_LARGE).' },
  'api.maxBroadcastRooms': { type: 'integer', default: 1000, min: 1, max: 100000, unit: 'count', doc: 'Most rooms one broadcast may name.' },

  'events.enabled': { type: 'boolean', default: false, doc: 'Publish events (messages stored, dms stored, delivered and acknowledged, presence, sessions, API disconnects) to the JetStream stream sandbar_<cluster>_events (docs/api.md).' },
  'events.types': { type: 'string[]', default: ['*'], doc: 'Which event types go to the stream: "*" for all, or a list such as ["room.message", "dm.stored"] (docs/api.md lists the types).' },
  'events.maxBytes': { type: 'integer', default: 1073741824, min: 1048576, max: 1099511627776, unit: 'bytes', doc: 'Size limit of the events stream; the oldest events are discarded past it.' },
  'events.maxAgeMs': { type: 'integer', default: 86400000, min: 1000, max: 31536000000, unit: 'ms', doc: 'Events older than this are discarded from the stream.' },
  'events.partitions': { type: 'integer', default: 8, min: 1, max: 64, unit: 'count', doc: 'Events go to subject sandbar.<cluster>.events.<partition>.<type>, partition = shard mod this; webhooks deliver each partition in order, one event at a time (so this is also their concurrency). Every host needs the same value.' },
  'events.maxPending': { type: 'integer', default: 10000, min: 1, max: 10000000, unit: 'count', doc: 'Per worker: events published and not yet acknowledged by JetStream; an event past it is dropped (counted, and logged at most once a second) rather than held: the message path never waits for the stream.' },

  'webhooks.urls': { type: 'string[]', default: null, optional: true, doc: 'URLs (http or https) that get every event of the stream as a signed POST (docs/api.md); needs events.enabled and webhooks.secret. Unset: no webhooks.' },
  'webhooks.secret': { type: 'string', default: null, optional: true, doc: 'HMAC-SHA256 secret that signs webhook requests (header sandbar-signature: t=<unix ms>,v1=<hex of HMAC(secret, t + "." + body)>). Never printed.' },
  'webhooks.maxAttempts': { type: 'integer', default: 10, min: 1, max: 1000, unit: 'count', doc: 'Deliveries of one event to one URL before it goes to the dead-letter subject sandbar.<cluster>.events.dead.<webhook> and the next event is sent.' },
  'webhooks.backoffMs': { type: 'integer', default: 500, min: 10, max: 600000, unit: 'ms', doc: 'Delay before the first retry of a failed delivery; it doubles with each attempt, up to webhooks.maxBackoffMs.' },
  'webhooks.maxBackoffMs': { type: 'integer', default: 30000, min: 10, max: 3600000, unit: 'ms', doc: 'Longest delay between two deliveries of one event.' },
  'webhooks.timeoutMs': { type: 'integer', default: 5000, min: 100, max: 600000, unit: 'ms', doc: 'A webhook request not answered 2xx within this is a failed attempt.' },

  'log.level': { type: 'enum', default: 'info', values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], doc: 'pino log level.' },
  'log.syslogPrefix': { type: 'enum', default: 'auto', values: ['auto', 'on', 'off'], doc: 'Start each log line with its syslog priority (<3> error, <4> warning, <6> info, <7> debug), which journald reads (SyslogLevelPrefix=, on by default), so journalctl -p works. "auto": when stdout is the journal (systemd\'s $JOURNAL_STREAM names it).' },
  'debug.faultInjection': { type: 'boolean', default: false, doc: 'Enables the fault-injection hooks used by tests (the "crash" event on echo: topics). Never enable in production.' },
} as const satisfies Record<string, KeySpec>;

export type ConfigKey = keyof typeof schema;
