/**
 * The only place that builds NATS subject strings.
 *
 * Grammar (every subject starts with `sandbar.<cluster>.`; ids are
 * `[A-Za-z0-9_.@-]`, and `.` inside a user or room id is escaped as `~2E`
 * since `.` separates NATS tokens):
 *
 *   sandbar.<cluster>.hb.<hostId>                heartbeats and leave messages
 *   sandbar.<cluster>.shard.<n>.cmd              requests to the master of shard n
 *   sandbar.<cluster>.shard.<n>.repl.<hostId>    replication log to one replica
 *   sandbar.<cluster>.w.<hostId>.<worker>        deliveries to session actors on one worker
 *   sandbar.<cluster>.room.<roomId>              room broadcasts (each worker with members subscribes once)
 *   sandbar.<cluster>.admin.<endpoint>[.<arg>]   operator endpoints (NATS micro service "sandbar")
 *   sandbar.<cluster>.ctl                        control: a worker took up its first view (re-announce joins to it)
 *   sandbar.<cluster>.auth.revoke                revocation: every worker closes the named user's sessions
 *   sandbar.<cluster>.lp.<hostId>.<worker>       LongPoll requests forwarded to the worker that holds the session
 *   sandbar.<cluster>.log.<n>                    durable log of shard n (JetStream stream, persistence.mode = "log")
 *   sandbar.<cluster>.logack.<hostId>.<worker>.<n>.<seq>   JetStream's PubAck for one log entry, to the worker that wrote it
 *   sandbar.<cluster>.events.<partition>.<type>  events out (JetStream stream sandbar_<cluster>_events; type has dots: room.message)
 *   sandbar.<cluster>.evack.<hostId>.<worker>.<n> JetStream's PubAck for one event, to the worker that published it
 *   sandbar.<cluster>.webhooks.dead.<webhook>    events a webhook could not take after webhooks.maxAttempts
 *   sandbar.<cluster>.api.<operation>            server API (NATS micro service "sandbar", beside admin.*)
 *   sandbar.<cluster>.userctl                    every worker: close or unsubscribe the local sessions of a user
 *
 * docs/subjects.md lists the same for `nats sub`.
 */

/**
 * JetStream's own subjects for the keys of a KV bucket (`$KV.<bucket>.<key>`,
 * in the stream `KV_<bucket>`): a stream purge by this filter removes old
 * values without leaving the delete markers a KV purge leaves per key.
 */
export function kvStream(bucket: string): string { return `KV_${bucket}`; }
export function kvKeySubject(bucket: string, key: string): string { return `$KV.${bucket}.${key}`; }

/** Escapes the characters NATS gives meaning to inside a token. */
export function token(id: string): string {
  return id.includes('.') ? id.replaceAll('.', '~2E') : id;
}

export function untoken(tok: string): string {
  return tok.includes('~2E') ? tok.replaceAll('~2E', '.') : tok;
}

export class Subjects {
  readonly prefix: string;
  constructor(readonly cluster: string) {
    this.prefix = `sandbar.${cluster}.`;
  }
  heartbeat(hostId: string): string { return `${this.prefix}hb.${token(hostId)}`; }
  heartbeatAll(): string { return `${this.prefix}hb.*`; }
  shardCmd(shard: number): string { return `${this.prefix}shard.${shard}.cmd`; }
  shardRepl(shard: number, hostId: string): string { return `${this.prefix}shard.${shard}.repl.${token(hostId)}`; }
  worker(hostId: string, worker: number): string { return `${this.prefix}w.${token(hostId)}.${worker}`; }
  room(roomId: string): string { return `${this.prefix}room.${token(roomId)}`; }
  admin(endpoint: string): string { return `${this.prefix}admin.${endpoint}`; }
  ctl(): string { return `${this.prefix}ctl`; }
  revoke(): string { return `${this.prefix}auth.revoke`; }
  longpoll(hostId: string, worker: number): string { return `${this.prefix}lp.${token(hostId)}.${worker}`; }
  shardLog(shard: number): string { return `${this.prefix}log.${shard}`; }
  shardLogAll(): string { return `${this.prefix}log.*`; }
  /** The PubAck subject of one log entry: the worker's ack prefix (one subscription) + shard + seq. */
  logAckPrefix(hostId: string, worker: number): string { return `${this.prefix}logack.${token(hostId)}.${worker}.`; }
  logAck(prefix: string, shard: number, seq: number): string { return `${prefix}${shard}.${seq}`; }
  /** Events out: `type` is one of the event types (dots included). */
  events(partition: number, type: string): string { return `${this.prefix}events.${partition}.${type}`; }
  /** Every event (the stream's subject). */
  eventsAll(): string { return `${this.prefix}events.>`; }
  /** Every event of one partition (a webhook consumer's filter). */
  eventsPartition(partition: number): string { return `${this.prefix}events.${partition}.>`; }
  /** The PubAck subjects of one worker's events: prefix + a counter. */
  eventAckPrefix(hostId: string, worker: number): string { return `${this.prefix}evack.${token(hostId)}.${worker}.`; }
  webhookDead(webhook: string): string { return `${this.prefix}webhooks.dead.${webhook}`; }
  api(operation: string): string { return `${this.prefix}api.${operation}`; }
  /** Control of the sessions of a user on every worker (disconnect, unsubscribe). */
  userCtl(): string { return `${this.prefix}userctl`; }
}
