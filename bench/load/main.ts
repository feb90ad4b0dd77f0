/**
 * Load fleet command line: open N sessions against a loopback WebSocket URL
 * from P client processes, hold them, close them, print what happened.
 *
 *   node dist/bench/load/main.js --url ws://127.0.0.1:4000/socket/websocket --sessions 2000 --mode phoenix --secret s
 *
 * Always bounded: the ramp stops at --max-seconds, and the hold ends there too.
 */
import { UsageError, assertLoopback, boolFlag, enumFlag, intFlag, numFlag, parseFlags, usage, type Flags } from '../lib/args.js';
import { Fleet, type FleetOptions } from './fleet.js';
import { formatReasons } from '../lib/report.js';

const FLAGS: Flags = {
  help: { boolean: true, doc: 'Print this help.' },
  url: { doc: 'Target ws:// URL on 127.0.0.0/8 (phoenix mode adds vsn=2.0.0 if absent and token=<minted> per session).', default: 'ws://127.0.0.1:4000/socket/websocket' },
  sessions: { doc: 'Sessions to open.', default: '1000' },
  processes: { doc: 'Client processes, each with source address 127.0.0.(2+i).', default: 'ceil(sessions / 15000)' },
  rate: { doc: 'Connection attempts per second across the fleet; 0 = as fast as the server answers (bounded by --concurrency).', default: '1000' },
  concurrency: { doc: 'Most handshakes in flight across the fleet.', default: '256' },
  mode: { doc: 'raw: open a WebSocket; phoenix: open, join user:<id>, wait for phx_reply ok, heartbeat.', default: 'raw' },
  secret: { doc: 'phoenix: token signing secret (auth.secret of the server).', default: 'dev-secret-change-me' },
  'token-ttl': { doc: 'phoenix: token lifetime in seconds.', default: '3600' },
  'token-module': { doc: 'phoenix: module exporting mintToken(secret, userId, ttlS).', default: 'dist/src/auth/token.js' },
  'user-prefix': { doc: 'phoenix: user ids are <prefix><i>.', default: 'bench' },
  'topic-kind': { doc: 'phoenix: sessions join <kind>:<userId>.', default: 'user' },
  users: { doc: 'phoenix: distinct user ids (session i uses user i mod users).', default: 'sessions' },
  'heartbeat-ms': { doc: 'phoenix: heartbeat period per session; 0 disables.', default: '30000' },
  'connect-timeout-ms': { doc: 'An attempt not open after this long fails with "timeout".', default: '10000' },
  'max-failures': { doc: 'Stop the ramp after this many failed attempts.', default: 'max(50, 1% of sessions)' },
  'max-seconds': { doc: 'Global deadline: ramp and hold together.', default: '60' },
  'hold-seconds': { doc: 'Keep the sessions open this long after the ramp (ends early at the deadline).', default: '0' },
  deflate: { boolean: true, doc: 'Offer permessage-deflate (off by default: idle sessions then cost no zlib state).' },
  json: { boolean: true, doc: 'Print the result as one JSON line as well.' },
};

function withPhoenixParams(url: string): string {
  const u = new URL(url);
  if (!u.searchParams.has('vsn')) u.searchParams.set('vsn', '2.0.0');
  return u.href;
}

async function main(): Promise<number> {
  const f = parseFlags(process.argv.slice(2), FLAGS);
  if (boolFlag(f, 'help')) {
    console.log(usage('bench/load: a multi-process WebSocket client fleet (loopback targets only).', FLAGS));
    return 0;
  }
  const mode = enumFlag(f, 'mode', ['raw', 'phoenix'] as const, 'raw');
  let url = f.get('url') ?? 'ws://127.0.0.1:4000/socket/websocket';
  const parsed = new URL(url);
  if (parsed.protocol !== 'ws:') throw new UsageError('--url must be ws://');
  assertLoopback(parsed.hostname);
  if (mode === 'phoenix') url = withPhoenixParams(url);
  const sessions = intFlag(f, 'sessions', 1000, 1);
  const maxSeconds = numFlag(f, 'max-seconds', 60, 1);
  const holdSeconds = numFlag(f, 'hold-seconds', 0);
  const tokenModule = f.get('token-module');
  const opts: FleetOptions = {
    url,
    sessions,
    ...(f.has('processes') ? { processes: intFlag(f, 'processes', 1, 1) } : {}),
    rate: numFlag(f, 'rate', 1000),
    concurrency: intFlag(f, 'concurrency', 256, 1),
    mode,
    connectTimeoutMs: intFlag(f, 'connect-timeout-ms', 10000, 1),
    heartbeatMs: intFlag(f, 'heartbeat-ms', 30000),
    secret: f.get('secret') ?? 'dev-secret-change-me',
    tokenTtlS: intFlag(f, 'token-ttl', 3600, 1),
    userPrefix: f.get('user-prefix') ?? 'bench',
    topicKind: f.get('topic-kind') ?? 'user',
    ...(f.has('users') ? { users: intFlag(f, 'users', sessions, 1) } : {}),
    ...(tokenModule ? { tokenModule: new URL(tokenModule, `file://${process.cwd()}/`).pathname } : {}),
    deflate: boolFlag(f, 'deflate'),
    maxSeconds,
    maxFailures: intFlag(f, 'max-failures', Math.max(50, Math.ceil(sessions / 100)), 1),
    onProgress: (p) =>
      console.error(`[${p.elapsedS.toFixed(1)}s] attempted=${p.attempted} opened=${p.opened} open=${p.open} inFlight=${p.inFlight} failed=${p.failedTotal}`),
  };
  const t0 = Date.now();
  const fleet = await Fleet.start(opts);
  const stop = (sig: string) => {
    const p = fleet.progress();
    console.log(`stopped by: signal ${sig} after ${p.elapsedS.toFixed(1)} s (attempted=${p.attempted} opened=${p.opened} open=${p.open} failed=${p.failedTotal})`);
    fleet.kill();
    process.exit(130);
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  console.error(`fleet: ${fleet.processes} client process(es), ${sessions} ${mode} sessions -> ${url}`);
  const outcome = await fleet.ramp();
  const rampReport = await fleet.report();
  let held = 0;
  if (holdSeconds > 0 && (outcome.reason === 'target-reached' || outcome.reason === 'all-attempted')) {
    const until = Math.min(Date.now() + holdSeconds * 1000, t0 + maxSeconds * 1000);
    while (Date.now() < until) await new Promise((r) => setTimeout(r, Math.min(1000, until - Date.now())));
    held = (Date.now() - t0) / 1000;
  }
  const end = held ? await fleet.report() : rampReport;
  await fleet.close();

  const L = rampReport.latency;
  console.log(`stopped by: ${outcome.reason} (${outcome.detail})`);
  console.log(`sessions: attempted=${rampReport.attempted} opened=${rampReport.opened} failed=${rampReport.failedTotal} [${formatReasons(rampReport.failed)}]`);
  console.log(`ramp: ${rampReport.rampSeconds.toFixed(2)} s, ${rampReport.connectRate.toFixed(0)} sessions/s; connect latency ms p50=${L.p50Ms} p90=${L.p90Ms} p99=${L.p99Ms} max=${L.maxMs} (n=${L.count})`);
  console.log(`closed by server: ${formatReasons(end.closedByServer)}; still open at end: ${end.open}; heartbeats sent: ${end.heartbeatsSent}`);
  console.log(`client processes: ${rampReport.processes}, CPU ${(rampReport.clientCpuMicros / 1e6).toFixed(2)} s over the ramp, RSS ${(rampReport.clientRssBytes / 2 ** 20).toFixed(0)} MiB`);
  if (boolFlag(f, 'json')) {
    const { histogram: _h, perChild: _p, ...rest } = end;
    console.log(JSON.stringify({ outcome, ramp: { ...rampReport, histogram: undefined, perChild: undefined }, end: rest }));
  }
  return outcome.reason === 'target-reached' ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError) {
      console.error(`error: ${err.message}\n\n${usage('bench/load', FLAGS)}`);
      process.exit(2);
    }
    console.error(err);
    process.exit(1);
  },
);
