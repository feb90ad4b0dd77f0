/**
 * auth: the hidden cost of authentication and authorization, side by side in
 * one run against one host.
 *
 * 1. Handshakes: for each token kind (the legacy HMAC token, JWT HS256,
 *    RS256, ES256, EdDSA), `--sessions` WebSocket upgrades, `--concurrency`
 *    at a time, each closed once open; the kinds alternate round by round
 *    (`--repeat`) so drift on a shared machine spreads over all of them.
 *    Reported: sessions/s, and the host's CPU time per handshake (primary,
 *    workers and nothing else: /proc of the host's process tree).
 * 2. Join latency: `room:` joins (phx_join to its ok) under the public policy
 *    and under the proxy policy, with the bench's own loopback HTTP proxy
 *    (answers at once), once with the proxy's cache cold (each join a new
 *    room: one proxy request each) and once warm (the same room again).
 *
 *   npm run build && node dist/bench/auth.js --sessions 2000 --repeat 3
 *   node dist/bench/auth.js --quick          # smoke run: 200 sessions, 1 repeat
 *   node dist/bench/auth.js --help
 */
import { createServer } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { exportSPKI, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { boolFlag, intFlag, runAsMain, type Flags } from './lib/args.js';
import { parseOrHelp } from './lib/settings.js';
import { treeCpuMicros } from './lib/proc.js';
import { startBenchHost, startBenchNats } from './lib/servers.js';
import { sleep } from './lib/metrics.js';
import { mintToken } from '../src/auth/token.js';
import { mintLegacyToken } from '../src/auth/legacy-token.js';
import { keyToml } from '../test/support/auth-keys.js';

const FLAGS: Flags = {
  sessions: { doc: 'Handshakes per token kind per round.', default: '2000' },
  concurrency: { doc: 'Handshakes in flight at once.', default: '50' },
  repeat: { doc: 'Rounds (each runs every kind once, in a rotated order).', default: '3' },
  joins: { doc: 'Joins per join-latency case.', default: '500' },
  workers: { doc: 'Sandbar workers.', default: '1' },
  quick: { doc: 'Smoke run: 200 sessions, 100 joins, 1 round (explicit flags still win).', boolean: true },
  json: { doc: 'Write the results as JSON to this path.' },
  help: { doc: 'This text.', boolean: true },
};

const TITLE = 'bench/auth: handshake rate and host CPU per token kind, join latency under the public and proxy policies.';
const SECRET = 'bench-auth-secret-0123456789abcdef';
const here = (rel: string) => fileURLToPath(new URL(rel, import.meta.url));

interface Kind { name: string; mint: (user: string) => Promise<string> }

async function keyFor(alg: 'RS256' | 'ES256' | 'EdDSA', kid: string): Promise<{ pem: string; sign: (user: string) => Promise<string> }> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const sign = (user: string) => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ sub: user, iat: now, exp: now + 3600 }).setProtectedHeader({ alg, kid, typ: 'JWT' }).sign(privateKey as CryptoKey);
  };
  return { pem: await exportSPKI(publicKey), sign };
}

/** Opens n sessions, c at a time, each closed once open; resolves with the wall time. */
async function handshakes(url: string, tokens: string[], c: number): Promise<{ ms: number; failed: number }> {
  let next = 0;
  let failed = 0;
  const t0 = performance.now();
  const one = (tok: string) => new Promise<void>((resolve) => {
    const ws = new WebSocket(`${url}/socket/websocket?vsn=2.0.0&token=${encodeURIComponent(tok)}`);
    ws.once('open', () => { ws.close(); resolve(); });
    ws.once('error', () => { failed++; resolve(); });
  });
  await Promise.all(Array.from({ length: c }, async () => { while (next < tokens.length) await one(tokens[next++]!); }));
  return { ms: performance.now() - t0, failed };
}

/** One session joining rooms one after another; the latency of each join (ms). */
async function joinLatencies(url: string, tok: string, rooms: string[]): Promise<number[]> {
  const ws = new WebSocket(`${url}/socket/websocket?vsn=2.0.0&token=${encodeURIComponent(tok)}`);
  await new Promise((r, j) => { ws.once('open', r); ws.once('error', j); });
  const waiting = new Map<string, () => void>();
  ws.on('message', (d: Buffer) => {
    const f = JSON.parse(d.toString()) as [string | null, string | null, string, string, { status?: string }];
    if (f[3] === 'phx_reply' && f[1] !== null) waiting.get(f[1])?.();
  });
  const out: number[] = [];
  let ref = 0;
  for (const room of rooms) {
    const r = String(++ref);
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      waiting.set(r, resolve);
      ws.send(JSON.stringify([r, r, `room:${room}`, 'phx_join', {}]));
    });
    waiting.delete(r);
    out.push(performance.now() - t0);
    // Leave again: a session holds at most session.maxChannels topics.
    ws.send(JSON.stringify([r, String(++ref), `room:${room}`, 'phx_leave', {}]));
  }
  ws.close();
  return out;
}

const pct = (xs: number[], p: number) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN; };

async function main(): Promise<number> {
  const f = parseOrHelp(process.argv.slice(2), FLAGS, TITLE);
  if (!f) return 0;
  const quick = boolFlag(f, 'quick');
  const sessions = intFlag(f, 'sessions', quick ? 200 : 2000, 1);
  const joins = intFlag(f, 'joins', quick ? 100 : 500, 1);
  const repeat = intFlag(f, 'repeat', quick ? 1 : 3, 1);
  const concurrency = intFlag(f, 'concurrency', 50, 1);
  const workers = intFlag(f, 'workers', 1, 1);

  const dir = mkdtempSync(join(tmpdir(), 'bench-auth-'));
  const proxy = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"allow":true}'));
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  const proxyUrl = `http://127.0.0.1:${(proxy.address() as { port: number }).port}/authorize`;
  const [rs, es, ed] = await Promise.all([keyFor('RS256', 'rs'), keyFor('ES256', 'es'), keyFor('EdDSA', 'ed')]);
  const conf = join(dir, 'bench.toml');
  const key = (kid: string, alg: string, pem: string) => keyToml(kid, alg, { publicKey: pem });
  writeFileSync(conf, `${key('rs', 'RS256', rs.pem)}${key('es', 'ES256', es.pem)}${key('ed', 'EdDSA', ed.pem)}
[authz]
proxyUrl = "${proxyUrl}"
rooms = [{ match = "pub-*", join = "public" }, { match = "prx-*", join = "proxy" }]
`);
  const nats = await startBenchNats(dir);
  const host = await startBenchHost({ nats, dir, workers, secret: SECRET, main: here('../src/main.js'), flags: { config: conf, 'auth.legacyTokens': true } });
  const url = `ws://127.0.0.1:${host.port}`;
  const kinds: Kind[] = [
    { name: 'legacy HMAC', mint: async (u) => mintLegacyToken(SECRET, u, 3600) },
    { name: 'JWT HS256', mint: async (u) => mintToken(SECRET, u, 3600) },
    { name: 'JWT RS256', mint: (u) => rs.sign(u) },
    { name: 'JWT ES256', mint: (u) => es.sign(u) },
    { name: 'JWT EdDSA', mint: (u) => ed.sign(u) },
  ];
  const results = new Map<string, { rate: number[]; cpuUs: number[]; failed: number }>(kinds.map((k) => [k.name, { rate: [], cpuUs: [], failed: 0 }]));
  try {
    // Warm-up: the JIT and the key imports.
    for (const k of kinds) await handshakes(url, await Promise.all(Array.from({ length: 50 }, (_, i) => k.mint(`warm${i}`))), 10);
    for (let round = 0; round < repeat; round++) {
      const order = kinds.map((_, i) => kinds[(i + round) % kinds.length]!);
      for (const k of order) {
        const tokens = await Promise.all(Array.from({ length: sessions }, (_, i) => k.mint(`u${round}-${i}`)));
        await sleep(300);
        const cpu0 = treeCpuMicros(host.pid);
        const r = await handshakes(url, tokens, concurrency);
        const cpu = treeCpuMicros(host.pid) - cpu0;
        const res = results.get(k.name)!;
        res.rate.push((sessions - r.failed) / (r.ms / 1000));
        res.cpuUs.push(cpu / Math.max(1, sessions - r.failed));
        res.failed += r.failed;
      }
    }
    console.log(`handshakes: ${sessions} per kind per round, ${concurrency} at a time, ${repeat} round(s), ${workers} worker(s); median of rounds`);
    console.log('kind           sessions/s   host CPU µs/handshake   failed');
    const median = (xs: number[]) => pct(xs, 50);
    for (const [name, r] of results) console.log(`${name.padEnd(14)} ${median(r.rate).toFixed(0).padStart(10)}   ${median(r.cpuUs).toFixed(0).padStart(21)}   ${r.failed}`);

    const tok = mintToken(SECRET, 'joiner', 3600);
    const pub = await joinLatencies(url, tok, Array.from({ length: joins }, (_, i) => `pub-${i}`));
    const cold = await joinLatencies(url, tok, Array.from({ length: joins }, (_, i) => `prx-${i}`));
    const warm = await joinLatencies(url, tok, Array.from({ length: joins }, () => 'prx-0'));
    console.log(`\njoin latency (ms), ${joins} joins each: p50 / p99`);
    const joinRows: Record<string, { p50: number; p99: number }> = {};
    for (const [name, xs] of [['public', pub], ['proxy, cache cold', cold], ['proxy, cache warm', warm]] as const) {
      joinRows[name] = { p50: pct(xs, 50), p99: pct(xs, 99) };
      console.log(`${name.padEnd(18)} ${pct(xs, 50).toFixed(2)} / ${pct(xs, 99).toFixed(2)}`);
    }
    const out = f.get('json');
    if (out) writeFileSync(out, JSON.stringify({ sessions, concurrency, repeat, workers, handshakes: Object.fromEntries(results), joins: joinRows }, null, 2));
    return 0;
  } finally {
    await host.stop();
    await nats.stop();
    proxy.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

runAsMain(import.meta.url, main, TITLE, FLAGS);
