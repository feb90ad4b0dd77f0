/**
 * Property-based fuzzing of the wire (fast-check) against a real host: two
 * workers, a real nats-server, session.maxFrameBytes = 8192 so that frames
 * near and over the limit stay cheap.
 *
 * Every case opens a fresh session ("the offender"), sends what the property
 * generated, then a heartbeat probe, and compares what happened with an
 * oracle written from docs/protocol.md and docs/errors.md (not from src/):
 * the session is closed with the documented code, or it stays open and every
 * push that carried a ref got its phx_reply. After every case a bystander
 * (opened before, joined to echo:calm, heartbeating) must still answer an
 * echo push, and the host must have logged no worker death, no error other
 * than the 4400 closes' "session crashed" lines, and nothing outside its JSON
 * log (nats.js prints "reader closed" there when a subscription callback
 * throws). The last test checks /metrics: no worker restart, no session left
 * behind, no 1011, and the workers' live heap back within the margin of the
 * baseline. docs/reliability.md records what is generated and what was
 * observed, and the open findings.
 *
 * Bounded by default: RUNS (100) cases per property, at most TIME_BUDGET_MS
 * each; about 20 s for the file on a 2-core machine. Long runs:
 * FUZZ_RUNS=<cases per property> (no time budget). Replay a failure:
 * FUZZ_SEED=<the seed it printed>.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RawClient, SECRET, token, withHost, withTempDir } from '../support/index.js';
import { mintToken } from '../../src/auth/token.js';

const MAX_FRAME = 8192;
const HISTORY_MAX = 10;
/** request.timeoutMs of the host: a push to a user or room is answered within it, if only with an error. */
const REQUEST_TIMEOUT_MS = 3000;
const LONG = process.env.FUZZ_RUNS !== undefined;
const RUNS = LONG ? Math.max(1, Number.parseInt(process.env.FUZZ_RUNS!, 10) || 1) : 100;
/** Per property, default runs only; a long run (FUZZ_RUNS) goes through every case. */
const TIME_BUDGET_MS = LONG ? Number.POSITIVE_INFINITY : 2500;
/** Extra time for fast-check to shrink a failure before it is reported. */
const SHRINK_BUDGET_MS = 8000;
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
/**
 * Live heap of both workers after the run, less before it (each after a full
 * GC; see liveHeap), once the fuzz sessions are closed and the messages the
 * run stored by design are acknowledged or pushed out of room history.
 * Measured: +2.3 to +2.6 MiB after 900 cases, +4.0 MiB after 5,400 (JIT code and
 * feedback, plus the small actors of the random valid user and room ids the
 * run joined, which keep their sequence by design). The margin is 8 MiB plus
 * 512 bytes per case: a session that left even 10 KiB behind (a ws socket with
 * its buffers is several times that) would add 9 MiB over the 900 cases of a
 * default run.
 */
const HEAP_MARGIN_BASE = 8 * 1024 * 1024;
const HEAP_MARGIN_PER_CASE = 512;

/** What the offender sends. */
type Out =
  /** A text frame, sent as ws sends a string. */
  | { kind: 'text'; data: string }
  /** Raw bytes in a text frame (possibly invalid UTF-8): ws.send(buf, {binary: false}). */
  | { kind: 'utf8'; data: Uint8Array }
  | { kind: 'binary'; data: Uint8Array }
  /** Whole WebSocket frames written to the TCP socket as they are (masking included). */
  | { kind: 'wire'; data: Uint8Array; effect: WireEffect };

/** What a raw WebSocket frame does, per RFC 6455 as ws implements it. */
type WireEffect =
  /** echo: the client's own close frame, whose code (1005: none) the server sends back. */
  | { t: 'close'; code: number; echo?: boolean }
  /** A complete message (reassembled from fragments): a text frame with this text. */
  | { t: 'message'; text: string }
  /** A ping or an unsolicited pong: nothing visible. */
  | { t: 'none' };

interface Case {
  /** Join echo:x with join_ref "j" before the fuzz frames. */
  join: boolean;
  out: Out[];
}

interface Decoded { joinRef: string | null; ref: string | null; topic: string; event: string }

interface Expectation {
  /** null: the session must stay open and answer the probe. */
  close: number | null;
  reason?: RegExp;
  /** The close code is the client's own, sent back (not the server's verdict). */
  echo?: boolean;
  /** Refs (with their topic) that must get a phx_reply, text or binary. */
  replies: { ref: string; topic: string }[];
}

// ---- the oracle, from docs/protocol.md -------------------------------------------------

const utf8 = new TextDecoder('utf-8', { fatal: true });

function validUtf8(b: Uint8Array): boolean {
  try { utf8.decode(b); return true; } catch { return false; }
}

/** JSON nesting depth of a parsed value (docs/protocol.md: frames deeper than 64 levels close with 4400). */
function depthOf(v: unknown): number {
  if (v === null || typeof v !== 'object') return 0;
  let d = 0;
  for (const x of Object.values(v as object)) d = Math.max(d, depthOf(x));
  return d + 1;
}

/** A text frame by the rules of "Text frames", or null when it must close the session with 4400. */
function decodeTextFrame(text: string): Decoded | null {
  let v: unknown;
  try { v = JSON.parse(text); } catch { return null; }
  if (depthOf(v) > 64) return null;
  if (!Array.isArray(v) || v.length !== 5) return null;
  const [joinRef, ref, topic, event] = v as unknown[];
  if (joinRef !== null && typeof joinRef !== 'string') return null;
  if (ref !== null && typeof ref !== 'string') return null;
  if (typeof topic !== 'string' || topic === '') return null;
  if (typeof event !== 'string' || event === '') return null;
  return { joinRef, ref, topic, event };
}

/** A binary frame by the rules of "Client push (kind 0)", or null when it must close with 4400. */
function decodeBinaryFrame(b: Uint8Array): Decoded | null {
  if (b.length < 5 || b[0] !== 0) return null;
  const sizes = [b[1]!, b[2]!, b[3]!, b[4]!];
  if (5 + sizes.reduce((a, n) => a + n, 0) > b.length) return null;
  if (sizes[2] === 0 || sizes[3] === 0) return null;
  const fields: string[] = [];
  let at = 5;
  for (const n of sizes) {
    const part = b.subarray(at, at + n);
    if (!validUtf8(part)) return null;
    fields.push(utf8.decode(part));
    at += n;
  }
  return { joinRef: fields[0] || null, ref: fields[1] || null, topic: fields[2]!, event: fields[3]! };
}

/** What one case must lead to. Frames after the one that closes the session are never read. */
function expectationOf(c: Case): Expectation {
  const frames: Decoded[] = [];
  const done = (close: number | null, reason?: RegExp, echo = false): Expectation => {
    const replies: { ref: string; topic: string }[] = [];
    frames.forEach((f, i) => {
      if (f.ref === null) return;
      // A join whose channel a later join or leave of the same topic replaced
      // before it was answered gets phx_close (or nothing) instead of a reply.
      if (f.event === 'phx_join' && frames.slice(i + 1).some((g) => g.topic === f.topic && (g.event === 'phx_join' || g.event === 'phx_leave'))) return;
      replies.push({ ref: f.ref, topic: f.topic });
    });
    return { close, reason, echo, replies };
  };
  for (const o of c.out) {
    let f: Decoded | null;
    if (o.kind === 'wire') {
      if (o.effect.t === 'close') return done(o.effect.code, undefined, o.effect.echo);
      if (o.effect.t === 'none') continue;
      if (Buffer.byteLength(o.effect.text) > MAX_FRAME) return done(1009);
      f = decodeTextFrame(o.effect.text);
      if (!f) return done(4400, /^SANDBAR_ERR_FRAME_MALFORMED/);
    } else if (o.data.length > MAX_FRAME || (o.kind === 'text' && Buffer.byteLength(o.data) > MAX_FRAME)) {
      return done(1009);
    } else if (o.kind === 'binary') {
      f = decodeBinaryFrame(o.data);
      if (!f) return done(4400, /^SANDBAR_ERR_FRAME_BINARY/);
    } else {
      if (o.kind === 'utf8' && !validUtf8(o.data)) return done(1007);
      f = decodeTextFrame(o.kind === 'text' ? o.data : utf8.decode(o.data));
      if (!f) return done(4400, /^SANDBAR_ERR_FRAME_MALFORMED/);
    }
    frames.push(f);
  }
  return done(null);
}

// ---- encoders --------------------------------------------------------------------------

/** A client push in the binary layout, or null when a field is over 255 bytes. */
function binaryPush(joinRef: string | null, ref: string | null, topic: string, event: string, payload: Uint8Array): Uint8Array | null {
  const f = [joinRef ?? '', ref ?? '', topic, event].map((s) => Buffer.from(s, 'utf8'));
  if (f.some((b) => b.length > 255)) return null;
  return Buffer.concat([Buffer.from([0, ...f.map((b) => b.length)]), ...f, payload]);
}

/** ref and topic of a binary reply (kind 1), or null for anything else. */
function binaryReplyRef(b: Buffer): { ref: string; topic: string } | null {
  if (b.length < 5 || b[0] !== 1) return null;
  const [jr, ref, topic] = [b[1]!, b[2]!, b[3]!];
  const at = 5 + jr;
  return { ref: b.subarray(at, at + ref).toString('utf8'), topic: b.subarray(at + ref, at + ref + topic).toString('utf8') };
}

/** One WebSocket frame as a client writes it (RFC 6455 5.2); mask null sends it unmasked. */
function wsFrame(opcode: number, payload: Uint8Array, opts: { fin?: boolean; rsv?: number; mask?: Uint8Array | null } = {}): Uint8Array {
  const mask = opts.mask === undefined ? Buffer.from([0x12, 0x34, 0x56, 0x78]) : opts.mask;
  const head = [((opts.fin ?? true) ? 0x80 : 0) | ((opts.rsv ?? 0) << 4) | opcode];
  const m = mask ? 0x80 : 0;
  const n = payload.length;
  if (n < 126) head.push(m | n);
  else if (n < 65536) head.push(m | 126, n >> 8, n & 255);
  else head.push(m | 127, 0, 0, 0, 0, (n >>> 24) & 255, (n >> 16) & 255, (n >> 8) & 255, n & 255);
  const body = Buffer.from(payload);
  if (mask) for (let i = 0; i < body.length; i++) body[i]! ^= mask[i & 3]!;
  return Buffer.concat([Buffer.from(head), mask ? Buffer.from(mask) : Buffer.alloc(0), body]);
}

// ---- generators -----------------------------------------------------------------------------

const ID_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.@'.split('');
const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((n) => String.fromCharCode(n));
/** Strings of every kind: ASCII, any code point, lone surrogates (JSON escapes them). */
const anyString = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 16 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 16 }) },
  { weight: 1, arbitrary: fc.string({ unit: fc.oneof(loneSurrogate, fc.string({ minLength: 1, maxLength: 1 })), maxLength: 6 }) },
);
const validId = fc.string({ unit: fc.constantFrom(...ID_CHARS), minLength: 1, maxLength: 64 });
/** A small pool of ids, so the state that fuzzing creates (actors, inboxes) stays bounded. */
const poolId = fc.constantFrom('fuzz', 'fz-a', 'fz-b', 'lobby');
const topicArb = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('phoenix', 'echo:x', 'echo:calm', 'user:fuzz', 'user:other', 'room:lobby', 'room:fz-a', 'room:fz-team', 'room:fz-hidden', 'sandbar:session', 'sandbar:other') },
  { weight: 3, arbitrary: fc.tuple(fc.constantFrom('echo:', 'user:', 'room:'), fc.oneof(poolId, validId, anyString)).map(([p, s]) => p + s) },
  { weight: 1, arbitrary: anyString },
);
const eventArb = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('phx_join', 'phx_leave', 'heartbeat', 'dm', 'ack', 'msg', 'phx_reply', 'phx_close', 'phx_error', 'crash', 'refresh') },
  { weight: 1, arbitrary: anyString },
);
const smallInt = fc.integer({ min: -2, max: 30 });
const b64json = (v: unknown) => Buffer.from(JSON.stringify(v) ?? 'null').toString('base64url');
/** JWT-shaped text: random header and claims (alg none, unknown kids, odd sub/exp/nbf/aud/room), random or empty signature. */
const jwtLikeArb = fc.tuple(
  fc.record({ alg: fc.oneof(fc.constantFrom('HS256', 'HS384', 'HS512', 'RS256', 'ES256', 'EdDSA', 'none', 'None', 'nOnE', ''), anyString, fc.jsonValue({ maxDepth: 1 })), kid: fc.oneof(anyString, fc.jsonValue({ maxDepth: 1 })), typ: anyString, crit: fc.jsonValue({ maxDepth: 1 }) }, { requiredKeys: [] }),
  fc.record({ sub: fc.oneof(fc.constantFrom('fuzz', 'other'), anyString, fc.jsonValue({ maxDepth: 1 })), exp: fc.oneof(fc.integer(), fc.double(), anyString), nbf: fc.oneof(fc.integer(), anyString), aud: fc.jsonValue({ maxDepth: 2 }), room: fc.oneof(fc.constantFrom('fz-a', 'lobby'), anyString), rooms: fc.jsonValue({ maxDepth: 2 }) }, { requiredKeys: [] }),
  fc.oneof(fc.constant(''), fc.base64String({ maxLength: 90 }).map((x) => x.replace(/=/g, '').replace(/\+/g, '-').replace(/\//g, '_')), anyString),
).map(([h, c, sig]) => `${b64json(h)}.${b64json(c)}.${sig}`);
/** Whether a string can go in a query (a lone surrogate cannot: the client, not the server, refuses it). */
function encodable(t: string): boolean {
  try { encodeURIComponent(t); return true; } catch { return false; }
}
/** A genuine token (auth.secret) with random extra claims: a subscription token for a random room, or a refresh token of another user. */
const signedArb = fc.record({ user: fc.constantFrom('fuzz', 'other'), ttl: fc.integer({ min: 1, max: 3600 }), room: fc.oneof(fc.constantFrom('fz-a', 'lobby', 'fz-team'), anyString), actions: fc.jsonValue({ maxDepth: 1 }) }, { requiredKeys: ['user', 'ttl'] })
  .map(({ user, ttl, ...claims }) => mintToken(SECRET, user, ttl, Date.now(), claims));
const tokenArb = fc.oneof(jwtLikeArb, signedArb, anyString, fc.jsonValue({ maxDepth: 2 }));
const payloadArb = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }),
  fc.record({
    to: fc.oneof({ weight: 3, arbitrary: poolId }, { weight: 1, arbitrary: anyString }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 1 }) }),
    body: fc.jsonValue({ maxDepth: 3 }),
    id: fc.oneof(anyString, fc.integer(), fc.jsonValue({ maxDepth: 1 })),
  }, { requiredKeys: [] }),
  // Join params of the room authorization (a subscription token) and refresh payloads.
  fc.record({ token: tokenArb, last_seq: fc.oneof(smallInt, anyString), device: anyString }, { requiredKeys: ['token'] }),
  fc.record({
    seq: fc.oneof(smallInt, fc.double(), fc.jsonValue({ maxDepth: 1 })),
    last_seq: fc.oneof(smallInt, fc.double(), anyString),
    device: fc.oneof(anyString, fc.string({ minLength: 60, maxLength: 200 }), fc.jsonValue({ maxDepth: 1 })),
  }, { requiredKeys: [] }),
);

interface FrameSpec { joinRef: string | null; ref: string | null; topic: string; event: string; payload: unknown; asBinary: Uint8Array | null }

/** A valid frame: text, or binary (its payload then is bytes) when its strings fit in 255 bytes. */
function frameOut(f: FrameSpec): Out {
  if (f.asBinary) {
    const b = binaryPush(f.joinRef, f.ref, f.topic, f.event, f.asBinary);
    if (b) return { kind: 'binary', data: b };
  }
  return { kind: 'text', data: JSON.stringify([f.joinRef, f.ref, f.topic, f.event, f.payload]) };
}

const specFields = {
  joinRef: fc.oneof({ weight: 6, arbitrary: fc.constant('j') }, { weight: 2, arbitrary: fc.constant('k') }, { weight: 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: anyString }),
  ref: fc.option(fc.uuid(), { freq: 8 }),
  event: fc.oneof(
    { weight: 3, arbitrary: fc.constant('phx_join') },
    { weight: 1, arbitrary: fc.constant('phx_leave') },
    { weight: 4, arbitrary: fc.constantFrom('dm', 'ack', 'msg', 'heartbeat', 'ping') },
    { weight: 2, arbitrary: eventArb },
  ),
  payload: payloadArb,
  asBinary: fc.option(fc.uint8Array({ maxLength: 64 }), { freq: 3 }),
};

/** One valid frame with a random topic, event and payload. */
const validFrameArb = fc.record({ ...specFields, topic: topicArb }).filter((f) => f.topic !== '' && f.event !== '').map(frameOut);

/**
 * A session's worth of valid frames: most go to the one or two topics this
 * case is about, which it usually joins first (so joins are followed by
 * pushes, leaves and rejoins on the same channel), the rest anywhere.
 */
const sessionArb = fc.record({
  topics: fc.array(topicArb.filter((t) => t !== ''), { minLength: 1, maxLength: 2 }),
  opening: fc.option(fc.record({ ref: fc.uuid(), payload: payloadArb }), { freq: 4 }),
  frames: fc.array(fc.record({ ...specFields, pick: fc.nat(), elsewhere: fc.option(topicArb, { freq: 5 }) }), { minLength: 1, maxLength: 8 }),
}).map(({ topics, opening, frames }) => [
  ...(opening ? [{ joinRef: 'j', ref: opening.ref, topic: topics[0]!, event: 'phx_join', payload: opening.payload, asBinary: null }] : []),
  ...frames.map((f) => ({ ...f, topic: f.elsewhere ?? topics[f.pick % topics.length]! })),
].filter((f) => f.topic !== '' && f.event !== '').map(frameOut));

/** A value of any JSON type for one slot of a 5-element frame. */
const slotArb = fc.oneof(
  fc.constant(null), anyString, fc.constant(''), fc.integer(), fc.double(), fc.boolean(),
  fc.jsonValue({ maxDepth: 2 }), topicArb, eventArb, fc.uuid(),
);

/** Pads `prefix + filler + suffix` to exactly `bytes` UTF-8 bytes with `ch` (1 to 4 bytes), ASCII for the rest. */
function sized(prefix: string, suffix: string, bytes: number, ch: string): string {
  const room = bytes - Buffer.byteLength(prefix) - Buffer.byteLength(suffix);
  const w = Buffer.byteLength(ch);
  const n = Math.max(0, Math.floor(room / w));
  return prefix + ch.repeat(n) + 'a'.repeat(Math.max(0, room - n * w)) + suffix;
}

/** Invalid UTF-8 sequences: stray continuation, overlong, surrogate, past U+10FFFF, truncated, 0xFE/0xFF. */
const badUtf8 = fc.constantFrom(
  [0x80], [0xbf], [0xc0, 0x80], [0xc1, 0xbf], [0xe0, 0x80, 0x80], [0xed, 0xa0, 0x80], [0xed, 0xbf, 0xbf],
  [0xf4, 0x90, 0x80, 0x80], [0xf5, 0x80, 0x80, 0x80], [0xe2, 0x82], [0xf0, 0x9f, 0x98], [0xc3], [0xfe], [0xff],
);

/**
 * Preloaded (NODE_OPTIONS --require) into the host's processes, written to a
 * temp dir at start: SIGUSR2 runs a full garbage collection, so that heap
 * readings compare live objects rather than garbage. Sandbar handles no SIGUSR2.
 */
const GC_PRELOAD = `'use strict';
require('node:v8').setFlagsFromString('--expose-gc');
const gc = require('node:vm').runInNewContext('gc');
process.on('SIGUSR2', () => gc());
`;

// ---- the suite --------------------------------------------------------------------------------

describe('fuzz: random and mutated frames cost at most the offending session', function () {
  this.timeout(60000);
  let bystander: RawClient;
  let beat: NodeJS.Timeout;
  let baselineHeap = 0;
  /** Lines the host wrote outside its JSON log (nats.js writes "reader closed" there). */
  const rawStdout: string[] = [];
  /** Close codes the server chose, and (key "echo") client close frames it answered in kind. */
  const closeCodes = new Map<string, number>();
  const counts: string[] = [];
  let bystanderEchoes = 0;
  let totalCases = 0;
  let property = '';
  /** Replies the offenders got, by status and error code. */
  const replyCodes = new Map<string, number>();

  async function metrics(): Promise<Map<string, number>> {
    const text = await (await fetch(`http://127.0.0.1:${host.adminPort}/metrics`)).text();
    const sums = new Map<string, number>();
    for (const line of text.split('\n')) {
      // The workers' series only: the primary's heap is not the workers'.
      if (line.includes('worker="primary"')) continue;
      const m = /^([a-z_]+)\{[^}]*\} (\S+)$/.exec(line);
      if (m) sums.set(m[1]!, (sums.get(m[1]!) ?? 0) + Number(m[2]));
    }
    return sums;
  }

  /**
   * Live heap of both workers: each reading follows a full garbage collection
   * in every worker (SIGUSR2, see GC_PRELOAD) and two stats pings (250 ms);
   * the least of `readings`. Without it heapUsed is mostly garbage: an idle
   * worker's grows by about 150 KiB/s and drops by half at its next major GC.
   */
  async function liveHeap(readings: number): Promise<number> {
    let min = Number.POSITIVE_INFINITY;
    for (let i = 0; i < readings; i++) {
      for (const pid of host.workerPids().values()) process.kill(pid, 'SIGUSR2');
      await new Promise((r) => setTimeout(r, 700));
      min = Math.min(min, (await metrics()).get('nodejs_heap_size_used_bytes') ?? Number.NaN);
    }
    return min;
  }

  after(() => {
    clearInterval(beat);
    const codes = [...closeCodes].sort((a, b) => a[0].localeCompare(b[0])).map(([c, n]) => (c === 'echo' ? `client's own close code sent back×${n}` : `${c}×${n}`)).join(', ');
    console.log(`      cases per property: ${counts.join('; ')}`);
    console.log(`      close codes observed: ${codes}; bystander echoes: ${bystanderEchoes}`);
    console.log(`      replies to the offenders: ${[...replyCodes].map(([k, n]) => `${k}×${n}`).join(', ')}`);
    bystander?.close();
  });
  const gcDir = withTempDir('sandbar-fuzz-');
  const gcPreload = () => join(gcDir.path, 'gc-on-sigusr2.cjs');
  const authz = () => join(gcDir.path, 'authz.toml');
  before(() => {
    writeFileSync(gcPreload(), GC_PRELOAD);
    // Room authorization in play: claims (subscription tokens) and a hidden-presence room; the rest public.
    writeFileSync(authz(), '[authz]\nrooms = [{ match = "fz-team", join = "claims" }, { match = "fz-hidden", join = "public", presence = "deny" }]\n');
  });
  const { host } = withHost(() => ({
    workers: 2,
    env: { NODE_OPTIONS: [process.env.NODE_OPTIONS, `--require "${gcPreload()}"`].filter(Boolean).join(' ') },
    flags: {
      config: authz(),
      'session.maxFrameBytes': MAX_FRAME,
      'session.idleTimeoutMs': 5000,
      'cluster.workerPingMs': 250,
      // Bounds on what the fuzz sessions may leave behind by design.
      'user.inboxMax': 20,
      'user.idleStopMs': 100,
      'room.historyMax': HISTORY_MAX,
      'request.timeoutMs': REQUEST_TIMEOUT_MS,
      // Every case opens a session from 127.0.0.1, faster than the per-IP
      // connection rate allows, and the bystander answers after every case,
      // faster than the per-session frame rate allows; the limits have
      // their own test (limits.test.ts).
      'http.ipConnectRate': 0,
      'http.ipMaxSessions': 0,
      'session.ratePerSecond': 0,
    },
  }));
  before(async () => {
    host.proc.stdout!.on('data', (d: Buffer) => {
      for (const l of d.toString().split('\n')) if (l.trim() !== '' && !l.startsWith('{')) rawStdout.push(l);
    });
    bystander = await RawClient.open(host.url, token('bystander'));
    await bystander.join('echo:calm', {}, 'b');
    beat = setInterval(() => bystander.send([null, bystander.ref(), 'phoenix', 'heartbeat', {}]), 1000);
    // Baseline once the host has settled (shards served, first pings in).
    await new Promise((r) => setTimeout(r, 1000));
    baselineHeap = await liveHeap(3);
  });


  /**
   * A malformed frame stops its session through the actor's crash path: the
   * close code is the documented 4400, but the host logs it at error level as
   * "session crashed" and counts it in sandbar_session_crashes_total (see
   * docs/reliability.md, Open findings). Those lines are expected; any other
   * error, a worker death or a crash with another cause is not.
   */
  const FRAME_ERRORS = new Set(['SANDBAR_ERR_FRAME_MALFORMED', 'SANDBAR_ERR_FRAME_BINARY']);
  const expectedCrash = (l: { msg?: string; err?: unknown }) =>
    l.msg === 'session crashed; only this session is closed' && FRAME_ERRORS.has(String((l.err as { code?: unknown } | undefined)?.code));

  /** Log lines that must never appear, from `from` on. */
  function hostHealth(from: number): string | null {
    const bad = host.lines.slice(from).find((l) => ((l.level ?? 0) >= 50 && !expectedCrash(l)) || String(l.msg).startsWith('worker died'));
    if (bad) return `host logged: ${JSON.stringify(bad).slice(0, 1500)}`;
    if (rawStdout.length > 0) return `host wrote outside its JSON log: ${rawStdout.slice(0, 12).join('\n')}`;
    return null;
  }

  function replied(c: RawClient, want: { ref: string; topic: string }): boolean {
    if (c.frames.some((f) => f[1] === want.ref && f[2] === want.topic && f[3] === 'phx_reply')) return true;
    return c.binary.some((b) => { const r = binaryReplyRef(b); return r !== null && r.ref === want.ref && r.topic === want.topic; });
  }

  /** Runs one case against a fresh session and checks it; throws (for fast-check) when it does not hold. */
  async function runCase(c: Case): Promise<void> {
    const want = expectationOf(c);
    const from = host.lines.length;
    const client = await RawClient.open(host.url, token('fuzz'));
    let probe = '';
    try {
      if (c.join) expect((await client.join('echo:x', {}, 'j'))[4]).to.deep.include({ status: 'ok' });
      const socket = (client.ws as unknown as { _socket: { write(b: Uint8Array): boolean } })._socket;
      for (const o of c.out) {
        if (o.kind === 'text') client.ws.send(o.data);
        else if (o.kind === 'utf8') client.ws.send(o.data, { binary: false });
        else if (o.kind === 'binary') client.ws.send(o.data, { binary: true });
        else socket.write(o.data);
      }
      probe = randomUUID();
      client.send([null, probe, 'phoenix', 'heartbeat', {}]);
      const outcome = await Promise.race([
        client.closed.then((code) => ({ closed: code })),
        client.waitFor((f) => f[1] === probe && f[3] === 'phx_reply', 5000).then(() => ({ closed: null })),
      ]).catch((err: Error) => ({ closed: client.closeCode, err }));
      if ('err' in outcome) throw new Error(`no answer to the probe and no close: ${outcome.err.message}`);
      if (outcome.closed !== null) {
        const key = want.echo && outcome.closed === want.close ? 'echo' : String(outcome.closed);
        closeCodes.set(key, (closeCodes.get(key) ?? 0) + 1);
      }
      expect(outcome.closed, `close code (reason "${client.closeReason}")`).to.equal(want.close);
      if (want.reason) expect(client.closeReason).to.match(want.reason);
      if (want.close === null) {
        const deadline = Date.now() + REQUEST_TIMEOUT_MS + 2000;
        for (const r of want.replies) {
          while (!replied(client, r) && Date.now() < deadline && client.closeCode === null) await new Promise((res) => setTimeout(res, 10));
          expect(replied(client, r), `a phx_reply to ref ${JSON.stringify(r.ref)} on ${JSON.stringify(r.topic)}`).to.equal(true);
        }
        expect(client.closeCode, 'the session stays open').to.equal(null);
      }
      // One healthy host: every shard answers. UNAVAILABLE means a shard stopped serving.
      const unavailable = client.frames.find((f) => f[3] === 'phx_reply' && (f[4] as { response?: { code?: string } }).response?.code === 'SANDBAR_ERR_UNAVAILABLE');
      expect(unavailable, 'no shard stopped answering').to.equal(undefined);
    } finally {
      const tally = (key: string) => replyCodes.set(`${property}: ${key}`, (replyCodes.get(`${property}: ${key}`) ?? 0) + 1);
      for (const f of client.frames.slice(c.join ? 1 : 0)) {
        if (f[3] !== 'phx_reply' || f[1] === probe) continue;
        const p = f[4] as { status?: string; response?: { code?: string } };
        tally(p.status === 'ok' ? 'ok' : String(p.response?.code ?? p.status));
      }
      for (const b of client.binary) if (b[0] === 1) tally('ok (binary)');
      if (client.closeCode === null) {
        client.close();
        const t = setTimeout(() => client.terminate(), 2000);
        await client.closed;
        clearTimeout(t);
      }
    }
    const echo = await bystander.request('b', 'echo:calm', 'still-there', { n: bystanderEchoes });
    expect(echo[4], 'the bystander answers').to.deep.equal({ status: 'ok', response: { n: bystanderEchoes } });
    expect(bystander.closeCode, 'the bystander is open').to.equal(null);
    bystanderEchoes++;
    const health = hostHealth(from);
    if (health) throw new Error(health);
  }

  /** Checks a property over RUNS cases within TIME_BUDGET_MS; a failure reports the case as sent. */
  async function fuzz(name: string, arb: fc.Arbitrary<Case>): Promise<void> {
    property = name;
    let skipAfter = Date.now() + TIME_BUDGET_MS;
    let ran = 0;
    let first: { error: string; case: string } | null = null;
    const details = await fc.check(fc.asyncProperty(arb, async (c) => {
      if (Date.now() > skipAfter) return;
      ran++;
      try {
        await runCase(c);
      } catch (err) {
        if (!first) {
          first = { error: String((err as Error).message).slice(0, 2000), case: fc.stringify(c).slice(0, 4000) };
          skipAfter = Math.max(skipAfter, Date.now() + SHRINK_BUDGET_MS);
        }
        throw err;
      }
    }), { numRuns: RUNS, seed: SEED });
    counts.push(`${name} ${ran}`);
    totalCases += ran;
    if (details.failed) {
      const f = first as { error: string; case: string } | null;
      throw new Error(`${fc.defaultReportMessage(details)}\n\nFirst failing case, as sent:\n${f?.case}\n${f?.error}\nReplay: FUZZ_SEED=${details.seed}`);
    }
    expect(ran, 'cases run').to.be.greaterThan(0);
  }

  const single = (out: fc.Arbitrary<Out>) => fc.record({ join: fc.boolean(), out: out.map((o) => [o]) });

  it('arbitrary JSON text frames (fc.json, fc.anything): 4400 unless a valid frame, then a reply', async () => {
    await fuzz('json', single(fc.oneof(
      fc.json({ maxDepth: 4 }),
      fc.json({ maxDepth: 3, stringUnit: 'binary' }),
      fc.anything({ maxDepth: 3, withBoxedValues: true, withMap: true, withSet: true, withTypedArray: true, withSparseArray: true, withNullPrototype: true, withDate: true })
        .map((v) => JSON.stringify(v) ?? 'undefined'),
    ).map((data): Out => ({ kind: 'text', data }))));
  });

  it('5-element arrays (and other lengths) with a random JSON type in each slot', async () => {
    await fuzz('slots', single(fc.oneof(
      { weight: 4, arbitrary: fc.tuple(slotArb, slotArb, slotArb, slotArb, fc.jsonValue({ maxDepth: 3 })).map((a) => a as unknown[]) },
      { weight: 1, arbitrary: fc.array(slotArb, { maxLength: 8 }) },
    ).map((a): Out => ({ kind: 'text', data: JSON.stringify(a) }))));
  });

  it('sequences of valid frames: random events and payloads, phx_join/phx_leave on echo:*, user:*, room:*, phoenix (text and binary)', async () => {
    await fuzz('valid', fc.record({ join: fc.boolean(), out: sessionArb }));
  });

  it('deep nesting up to and past session.maxFrameBytes: 4400 past 64 levels, a reply below, 1009 when too large', async () => {
    const shape = fc.record({
      depth: fc.oneof(fc.integer({ min: 1, max: 80 }), fc.integer({ min: 1, max: 4200 }), fc.integer({ min: 4000, max: 4100 }), fc.constantFrom(60, 61, 62, 63, 1000, 4060, 4070, 4080, 4090)),
      objects: fc.boolean(),
      where: fc.constantFrom('echo', 'dm', 'room'),
    });
    await fuzz('deep', shape.map(({ depth, objects, where }): Case => {
      const d = objects ? Math.floor(depth / 3) : depth;
      const deep = objects ? '{"a":'.repeat(d) + '1' + '}'.repeat(d) : '['.repeat(d) + ']'.repeat(d);
      if (where === 'echo') return { join: true, out: [{ kind: 'text', data: `["j","deep","echo:x","deep",${deep}]` }] };
      const topic = where === 'dm' ? 'user:fuzz' : 'room:fz-deep';
      const push = where === 'dm' ? `["d","deep","user:fuzz","dm",{"to":"fz-deep","body":${deep}}]` : `["d","deep","room:fz-deep","msg",{"body":${deep}}]`;
      return { join: false, out: [{ kind: 'text', data: JSON.stringify(['d', 'join', topic, 'phx_join', {}]) }, { kind: 'text', data: push }] };
    }));
  });

  it('frames near and over session.maxFrameBytes (1 to 4-byte characters, text and binary): 1009 exactly past the limit', async () => {
    const size = fc.oneof(
      { weight: 6, arbitrary: fc.integer({ min: MAX_FRAME - 16, max: MAX_FRAME + 16 }) },
      { weight: 2, arbitrary: fc.integer({ min: MAX_FRAME - 400, max: MAX_FRAME + 400 }) },
      { weight: 1, arbitrary: fc.constantFrom(2 * MAX_FRAME, 65536, 1 << 20) },
    );
    await fuzz('size', fc.record({ bytes: size, ch: fc.constantFrom('a', 'é', '€', '😀', '\n'), binary: fc.boolean() }).map(({ bytes, ch, binary }): Case => {
      if (binary) {
        const head = binaryPush('j', 'big', 'echo:x', 'big', new Uint8Array(0))!;
        return { join: true, out: [{ kind: 'binary', data: Buffer.concat([head, Buffer.alloc(Math.max(0, bytes - head.length), ch.charCodeAt(0) & 0xff)]) }] };
      }
      // JSON escapes "\n" as two bytes: the filler stays inside a JSON string either way.
      const filler = ch === '\n' ? '\\n' : ch;
      return { join: true, out: [{ kind: 'text', data: sized('["j","big","echo:x","big",{"s":"', '"}]', bytes, filler) }] };
    }));
  });

  it('invalid UTF-8 in text frames closes that session with 1007', async () => {
    await fuzz('utf8', fc.record({ base: validFrameArb, bad: badUtf8, at: fc.nat(), join: fc.boolean() }).map(({ base, bad, at, join }): Case => {
      const text = Buffer.from(base.kind === 'text' ? base.data : '[null,"1","echo:x","e",{}]', 'utf8');
      const i = at % (text.length + 1);
      return { join, out: [{ kind: 'utf8', data: Buffer.concat([text.subarray(0, i), Buffer.from(bad), text.subarray(i)]) }] };
    }));
  });

  it('random binary frames', async () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      fc.tuple(fc.constantFrom(0, 1, 2, 3, 255), fc.uint8Array({ maxLength: 300 })).map(([k, rest]) => Buffer.concat([Buffer.from([k]), rest])),
      fc.tuple(fc.uint8Array({ minLength: 4, maxLength: 4 }).map((s) => s.map((n) => n % 12)), fc.uint8Array({ maxLength: 60 })).map(([s, rest]) => Buffer.concat([Buffer.from([0]), s, rest])),
    );
    await fuzz('binary', single(bytes.map((data): Out => ({ kind: 'binary', data }))));
  });

  it('mutated valid binary pushes: flipped bytes, wrong sizes, truncation, extra bytes', async () => {
    const mutation = fc.oneof(
      fc.record({ t: fc.constant('set' as const), at: fc.nat(), v: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ t: fc.constant('size' as const), at: fc.integer({ min: 0, max: 4 }), v: fc.oneof(fc.integer({ min: 0, max: 255 }), fc.integer({ min: -3, max: 3 })) }),
      fc.record({ t: fc.constant('truncate' as const), at: fc.nat() }),
      fc.record({ t: fc.constant('append' as const), v: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
      fc.record({ t: fc.constant('flip' as const), at: fc.nat(), v: fc.integer({ min: 0, max: 7 }) }),
    );
    const base = fc.record({
      joinRef: fc.constantFrom('j', 'k', ''), ref: fc.oneof(fc.uuid(), fc.constant('')),
      topic: fc.oneof(fc.constantFrom('echo:x', 'phoenix', 'user:fuzz', 'room:lobby'), topicArb), event: eventArb,
      payload: fc.uint8Array({ maxLength: 40 }),
    });
    await fuzz('mutated', fc.record({ base, mutations: fc.array(mutation, { minLength: 1, maxLength: 3 }) }).map(({ base: b, mutations }): Case => {
      let buf = Buffer.from(binaryPush(b.joinRef || null, b.ref || null, b.topic, b.event, b.payload) ?? binaryPush('j', '1', 'echo:x', 'e', b.payload)!);
      for (const m of mutations) {
        if (m.t === 'set' && buf.length > 0) buf[m.at % buf.length] = m.v;
        else if (m.t === 'size' && buf.length > m.at) buf[m.at] = m.v < 0 || m.v <= 3 ? (buf[m.at]! + m.v + 256) % 256 : m.v;
        else if (m.t === 'truncate') buf = buf.subarray(0, m.at % (buf.length + 1));
        else if (m.t === 'append') buf = Buffer.concat([buf, m.v]);
        else if (m.t === 'flip' && buf.length > 0) buf[m.at % buf.length]! ^= 1 << m.v;
      }
      return { join: true, out: [{ kind: 'binary', data: buf }] };
    }));
  });

  it('WebSocket-level faults on the raw socket: reserved opcodes, RSV bits, unmasked, bad fragments and control frames, close frames', async () => {
    const small = fc.uint8Array({ maxLength: 20 });
    const okText = validFrameArb.map((o) => (o.kind === 'text' ? o.data : '[null,"1","echo:x","e",{}]'));
    const validCode = fc.oneof(fc.constantFrom(1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014), fc.integer({ min: 3000, max: 4999 }));
    const invalidCode = fc.oneof(fc.integer({ min: 0, max: 999 }), fc.constantFrom(1004, 1005, 1006, 1015, 1016, 2000, 2999), fc.integer({ min: 5000, max: 65535 }));
    const wire = (data: Uint8Array, effect: WireEffect): Out => ({ kind: 'wire', data, effect });
    const one = fc.oneof(
      fc.tuple(fc.constantFrom(3, 4, 5, 6, 7, 11, 12, 13, 14, 15), small).map(([op, p]) => wire(wsFrame(op, p), { t: 'close', code: 1002 })),
      fc.tuple(fc.integer({ min: 1, max: 7 }), fc.constantFrom(1, 2, 9)).map(([rsv, op]) => wire(wsFrame(op, Buffer.from('[null,"1","phoenix","heartbeat",{}]'), { rsv }), { t: 'close', code: 1002 })),
      okText.map((t) => wire(wsFrame(1, Buffer.from(t), { mask: null }), { t: 'close', code: 1002 })),
      small.map((p) => wire(wsFrame(0, p), { t: 'close', code: 1002 })),
      fc.tuple(fc.constantFrom(8, 9, 10), fc.uint8Array({ minLength: 126, maxLength: 200 })).map(([op, p]) => wire(wsFrame(op, p), { t: 'close', code: 1002 })),
      fc.tuple(fc.constantFrom(9, 10), small).map(([op, p]) => wire(wsFrame(op, p, { fin: false }), { t: 'close', code: 1002 })),
      fc.integer({ min: 0, max: 255 }).map((b) => wire(wsFrame(8, Buffer.from([b])), { t: 'close', code: 1002 })),
      invalidCode.map((code) => wire(wsFrame(8, Buffer.from([code >> 8, code & 255])), { t: 'close', code: 1002 })),
      fc.tuple(validCode, badUtf8).map(([code, bad]) => wire(wsFrame(8, Buffer.from([code >> 8, code & 255, ...bad])), { t: 'close', code: 1007 })),
      fc.tuple(validCode, fc.string({ maxLength: 40 })).filter(([, r]) => Buffer.byteLength(r) <= 123)
        .map(([code, r]) => wire(wsFrame(8, Buffer.concat([Buffer.from([code >> 8, code & 255]), Buffer.from(r)])), { t: 'close', code, echo: true })),
      fc.constant(wire(wsFrame(8, new Uint8Array(0)), { t: 'close', code: 1005, echo: true })),
      fc.tuple(fc.constantFrom(9, 10), fc.uint8Array({ maxLength: 125 })).map(([op, p]) => wire(wsFrame(op, p), { t: 'none' })),
      // A message in fragments split anywhere (inside a UTF-8 character too), pings between them.
      fc.record({ text: fc.oneof(okText, fc.integer({ min: MAX_FRAME - 8, max: MAX_FRAME + 8 }).map((n) => sized('["j","f","echo:x","e","', '"]', n, 'é'))), cuts: fc.array(fc.nat(), { maxLength: 4 }), pings: fc.boolean(), key: fc.uint8Array({ minLength: 4, maxLength: 4 }) })
        .map(({ text, cuts, pings, key }) => {
          const b = Buffer.from(text);
          const at = [...new Set(cuts.map((c) => c % (b.length + 1)))].sort((x, y) => x - y);
          const parts = [0, ...at, b.length].slice(1).map((end, i, ends) => b.subarray(i === 0 ? 0 : ends[i - 1]!, end));
          const frames = parts.map((p, i) => wsFrame(i === 0 ? 1 : 0, p, { fin: i === parts.length - 1, mask: key }));
          const withPings = frames.flatMap((f, i) => (pings && i < frames.length - 1 ? [f, wsFrame(9, Buffer.from('p'))] : [f]));
          return wire(Buffer.concat(withPings), { t: 'message', text });
        }),
      // A new data frame while a fragmented message is open.
      fc.tuple(okText, fc.constantFrom(1, 2)).map(([t, op]) => wire(Buffer.concat([wsFrame(1, Buffer.from(t.slice(0, 3)), { fin: false }), wsFrame(op, Buffer.from('x'))]), { t: 'close', code: 1002 })),
    );
    await fuzz('wire', fc.record({ join: fc.boolean(), before: fc.option(validFrameArb, { freq: 2 }), w: one }).map(({ join, before, w }): Case => ({ join, out: before ? [before, w] : [w] })));
  });

  /**
   * Empties what the run stored by design, so that the heap comparison sees
   * leaks rather than messages: the inboxes of the pool's users are
   * acknowledged, and the histories of the pool's rooms are pushed out with
   * room.historyMax small messages. (A deep 8 KB body costs about 220 KiB of
   * heap once parsed, twice with its replica: see docs/reliability.md.)
   */
  async function emptyStoredState(): Promise<void> {
    for (const u of ['fuzz', 'fz-a', 'fz-b', 'lobby', 'fz-deep']) {
      const c = await RawClient.open(host.url, token(u));
      const j = await c.join(`user:${u}`, {}, 'u');
      const seq = (j[4] as { response: { seq: number } }).response.seq;
      expect((await c.request('u', `user:${u}`, 'ack', { seq }))[4]).to.deep.include({ status: 'ok' });
      c.close();
      await c.closed;
    }
    const c = await RawClient.open(host.url, token('fuzz'));
    for (const r of ['lobby', 'fz-a', 'fz-deep']) {
      await c.join(`room:${r}`, {}, r);
      for (let i = 0; i < HISTORY_MAX; i++) expect((await c.request(r, `room:${r}`, 'msg', { body: i }))[4]).to.deep.include({ status: 'ok' });
    }
    c.close();
    await c.closed;
  }

  it('tokens at the upgrade: JWT-shaped text with random header and claims, genuine tokens, garbage; 403 with an SANDBAR_ERR_AUTH_* code unless genuine and unexpired', async () => {
    property = 'upgrade tokens';
    let ran = 0;
    const deadline = Date.now() + TIME_BUDGET_MS;
    const details = await fc.check(fc.asyncProperty(fc.oneof(jwtLikeArb, signedArb, anyString, fc.string({ minLength: 4000, maxLength: 6000 })).filter(encodable), async (tok) => {
      if (Date.now() > deadline) return;
      ran++;
      const from = host.lines.length;
      const genuine = await RawClient.open(host.url, tok).then((c) => { c.close(); return true; }, (e: { statusCode?: number; code?: string }) => {
        expect(e.statusCode, `answer to ${tok.slice(0, 200)}`).to.equal(403);
        expect(String(e.code)).to.match(/^SANDBAR_ERR_AUTH_(MISSING|INVALID|EXPIRED)$/);
        replyCodes.set(`${property}: ${e.code}`, (replyCodes.get(`${property}: ${e.code}`) ?? 0) + 1);
        return false;
      });
      // Only a token signed with auth.secret (what signedArb makes) may open a session.
      if (genuine) expect(tok.split('.').length).to.equal(3);
      const health = hostHealth(from);
      if (health) throw new Error(health);
    }), { numRuns: RUNS, seed: SEED });
    counts.push(`${property} ${ran}`);
    totalCases += ran;
    if (details.failed) throw new Error(`${fc.defaultReportMessage(details)}\nReplay: FUZZ_SEED=${details.seed}`);
    expect(ran).to.be.greaterThan(0);
  });

  it('room joins with authorization params (subscription tokens, last_seq) and refresh pushes: a reply each, the session stays', async () => {
    const join = fc.record({
      topic: fc.constantFrom('room:fz-team', 'room:fz-hidden', 'room:lobby', 'sandbar:session', 'phoenix'),
      event: fc.constantFrom('phx_join', 'refresh'),
      payload: fc.oneof(fc.record({ token: tokenArb, last_seq: fc.oneof(smallInt, anyString), device: anyString }, { requiredKeys: [] }), fc.jsonValue({ maxDepth: 2 })),
    }).map(({ topic, event, payload }): Out => ({ kind: 'text', data: JSON.stringify([event === 'phx_join' ? 'aj' : null, 'ar', topic, topic === 'phoenix' ? 'refresh' : event, payload]) }));
    await fuzz('authz params', fc.record({ join: fc.boolean(), out: fc.array(join, { minLength: 1, maxLength: 3 }) }));
  });

  it('afterwards: no worker restarted, no session left, no crash, and the workers\' heap back within the margin of the baseline', async () => {
    expect(hostHealth(0)).to.equal(null);
    await emptyStoredState();
    // Every fuzz session is closed: only the bystander is left.
    const deadline = Date.now() + 5000;
    let m = await metrics();
    while ((m.get('sandbar_sessions') !== 1 || m.get('sandbar_requests_pending') !== 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      m = await metrics();
    }
    expect(m.get('sandbar_sessions'), 'open sessions').to.equal(1);
    expect(m.get('sandbar_requests_pending'), 'requests waiting for a reply').to.equal(0);
    expect(m.get('sandbar_worker_restarts_total'), 'worker restarts').to.equal(0);
    // Only the 4400 closes of malformed frames go through the crash path (see expectedCrash).
    expect(m.get('sandbar_session_crashes_total'), 'session crashes').to.be.at.most(closeCodes.get('4400') ?? 0);
    expect(closeCodes.has('1011'), 'no session closed with 1011').to.equal(false);
    expect(host.workerPids().size).to.equal(2);
    const after = await liveHeap(3);
    const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
    const margin = HEAP_MARGIN_BASE + HEAP_MARGIN_PER_CASE * totalCases;
    console.log(`      workers' live heap: baseline ${mib(baselineHeap)}, after ${totalCases} cases ${mib(after)} (${after >= baselineHeap ? '+' : ''}${mib(after - baselineHeap)}; margin ${mib(margin)})`);
    expect(after - baselineHeap, 'heap growth over the run').to.be.below(margin);
  });
});

