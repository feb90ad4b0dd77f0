/**
 * The operator endpoints under sandbar.<cluster>.admin., served by every
 * host's primary as one NATS micro service named "sandbar" (queue group: one
 * host answers each request; `nats micro stats sandbar` gets every host).
 *
 *   admin.status            hosts, workers, sessions, shards served (the answering host in detail)
 *   admin.shards            the shard table from the ownership bucket: epoch, master, replicas
 *   admin.user.<id>         where the user's actor lives, its devices and presence, inbox size, last seen
 *   admin.room.<id>         where the room lives, members, presence, history size
 *   admin.sessions          sessions per worker (this host) and per host (all)
 *   admin.kick.<sessionId>  closes one session (close code 4001)
 *   admin.loglevel.<level>  sets the log level of every process of the answering host
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { Errors } from '../errors.js';
import type { SandbarConfig } from '../config/types.js';
import type { Subjects } from '../bus/subjects.js';
import { untoken } from '../bus/subjects.js';
import { isValidId } from '../protocol/ids.js';
import { shardOf } from '../placement/shard.js';
import type { Ownership } from '../placement/ownership.js';
import type { EndpointSpec, MicroRequest } from './micro.js';

const LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

export interface AdminContext {
  readonly nc: NatsConnection;
  readonly subjects: Subjects;
  readonly config: SandbarConfig;
  readonly ownership: Ownership;
  status(): unknown;
  sessions(): unknown;
  setLogLevel(level: string): void;
}

/** The id after `admin.<kind>.` in the subject, validated. */
function idFrom(req: MicroRequest, prefix: string, what: string): string {
  const rest = req.subject.length > prefix.length ? req.subject.slice(prefix.length) : '';
  if (rest === '') throw Errors.BAD_PAYLOAD(`usage: nats req ${prefix}<${what}> ''`);
  const id = untoken(rest);
  if (what !== 'sessionId' && !isValidId(id)) throw Errors.INVALID_ID(`${what} "${id}" is not 1-64 characters of A-Z a-z 0-9 _ - . @`);
  return id;
}

async function askMaster(ctx: AdminContext, op: 'u.info' | 'r.info', id: string): Promise<unknown> {
  const shard = shardOf(id, ctx.config.shards);
  const rec = await ctx.ownership.read(shard);
  try {
    const r = await ctx.nc.request(ctx.subjects.shardCmd(shard), JSON.stringify({ op, id }), { timeout: 2000 });
    return { ...(r.json<Record<string, unknown>>()), record: rec };
  } catch (err) {
    throw Errors.UNAVAILABLE(`shard ${shard} of ${id} has no serving master right now (${(err as Error).message})`);
  }
}

export function adminEndpoints(ctx: AdminContext): EndpointSpec[] {
  const s = ctx.subjects;
  const userPrefix = s.admin('user.');
  const roomPrefix = s.admin('room.');
  const kickPrefix = s.admin('kick.');
  const levelPrefix = s.admin('loglevel.');
  const usage = (what: string) => () => { throw Errors.BAD_PAYLOAD(`usage: nats req ${s.admin(what)}.<id> ''`); };
  return [
    { name: 'status', subject: s.admin('status'), handler: () => ctx.status() },
    {
      name: 'shards', subject: s.admin('shards'), handler: async () => {
        const table = await ctx.ownership.readAll(ctx.config.shards);
        return { shards: ctx.config.shards, records: table };
      },
    },
    { name: 'user', subject: s.admin('user.*'), handler: (req) => askMaster(ctx, 'u.info', idFrom(req, userPrefix, 'userId')) },
    { name: 'user-usage', subject: s.admin('user'), handler: usage('user') },
    { name: 'room', subject: s.admin('room.*'), handler: (req) => askMaster(ctx, 'r.info', idFrom(req, roomPrefix, 'roomId')) },
    { name: 'room-usage', subject: s.admin('room'), handler: usage('room') },
    { name: 'sessions', subject: s.admin('sessions'), handler: () => ctx.sessions() },
    {
      name: 'kick', subject: s.admin('kick.>'), handler: async (req) => {
        const sid = idFrom(req, kickPrefix, 'sessionId');
        const parts = sid.split('.');
        if (parts.length !== 4 || !/^\d+$/.test(parts[1]!)) throw Errors.BAD_PAYLOAD(`"${sid}" is not a session id (<hostId>.<worker>.<incarnation>.<n>)`);
        let reply: { error?: { code: string; message: string } };
        try {
          const r = await ctx.nc.request(s.worker(parts[0]!, Number(parts[1])), JSON.stringify({ t: 'kick', sid }), { timeout: 2000 });
          reply = r.json();
        } catch {
          throw Errors.NOT_FOUND(`no session ${sid}: worker ${parts[0]}.${parts[1]} does not answer`);
        }
        if (reply.error) throw Errors.NOT_FOUND(reply.error.message);
        return reply;
      },
    },
    { name: 'kick-usage', subject: s.admin('kick'), handler: usage('kick') },
    {
      name: 'loglevel', subject: s.admin('loglevel.*'), handler: (req) => {
        const level = req.subject.slice(levelPrefix.length);
        if (!LEVELS.has(level)) throw Errors.BAD_PAYLOAD(`log level "${level}" is not one of ${[...LEVELS].join(', ')}`);
        ctx.setLogLevel(level);
        return { level };
      },
    },
  ];
}
