/**
 * Reconnect storm (issue 7, item 5): every session of a host is dropped at
 * once by a host restart (SIGTERM, then a new host on the same port) and
 * reconnects. The new host sheds the storm with 503 + Retry-After
 * (http.acceptRate) instead of taking it all at once; the clients honour the
 * hint (with jitter) or back off like the phoenix client when the port is
 * closed; all are back (open and joined to an echo: channel) within a bound.
 * Echo joins keep the figure about admission: user: and room: joins also
 * wait for the restarted host to claim its shards, which cluster.test.ts and
 * chat.test.ts measure.
 *
 * npm test runs the figure in the issue, 10,000 sessions (STORM_SESSIONS sets
 * another). They are first opened all in the same instant too (STORM_WAVE
 * opens them in waves of that many instead), against the default
 * http.acceptRate: the first host must shed that as well and not stall.
 * docs/reliability.md records the figures.
 */
import { expect } from 'chai';
import WebSocket from 'ws';
import { freePort, token, until, useLab, withNats, type HostHandle } from '../support/index.js';

const N = Number(process.env.STORM_SESSIONS ?? 10000);
const WAVE = Number(process.env.STORM_WAVE ?? N);
/** Source addresses the clients spread over (at most 50 sessions each: within the per-IP defaults). */
const ADDRS = Math.max(50, Math.ceil(N / 50));
/**
 * Per worker. The clients come back spread over the phoenix client's 5 s
 * backoff step, N / 5 a second; the 2 workers admit N / 10 a second, so the
 * storm must be shed, and admitting everyone takes about 10 s at any N.
 */
const ACCEPT_RATE = Math.ceil(N / 20);
/** The phoenix client's reconnectAfterMs steps, used when the port is closed. */
const BACKOFF = [10, 50, 100, 150, 200, 250, 500, 1000, 2000, 5000];

interface Counters { shed: number; tooMany: number; refused: number; retryAfter: Set<number>; back: number }

/** A client that keeps its session up: reconnects, honours Retry-After, joins echo:<id>. */
class StormClient {
  private ws: WebSocket | null = null;
  private attempt = 0;
  joined = false;
  stopped = false;

  constructor(private readonly url: string, readonly user: string, private readonly addr: string, private readonly c: Counters) {}

  connect(): void {
    if (this.stopped) return;
    // A handshake or a join that hangs (a connection lost in a full accept queue) is given up and retried.
    const ws = new WebSocket(`${this.url}/socket/websocket?vsn=2.0.0&token=${token(this.user)}`, { localAddress: this.addr, handshakeTimeout: 10000 });
    const joinTimer = setTimeout(() => { if (!this.joined) ws.terminate(); }, 20000);
    this.ws = ws;
    let retryMs: number | null = null;
    ws.on('unexpected-response', (_req, res) => {
      const ra = Number(res.headers['retry-after']);
      if (res.statusCode === 503) this.c.shed++;
      else if (res.statusCode === 429) this.c.tooMany++;
      if (Number.isFinite(ra)) this.c.retryAfter.add(ra);
      // Retry-After, spread over [1, 2) times the hint so the refused do not come back together.
      retryMs = Number.isFinite(ra) ? ra * 1000 * (1 + Math.random()) : 1000;
      res.resume();
      ws.terminate();
    });
    ws.on('error', () => {});
    ws.on('open', () => {
      this.attempt = 0;
      ws.send(JSON.stringify(['1', '1', `echo:${this.user}`, 'phx_join', {}]));
    });
    ws.on('message', (data: Buffer) => {
      const f = JSON.parse(data.toString()) as [string | null, string | null, string, string, { status?: string }];
      if (f[3] !== 'phx_reply' || f[1] !== '1') return;
      if (f[4].status === 'ok') {
        this.joined = true;
        this.c.back++;
      } else {
        throw new Error(`echo join refused: ${JSON.stringify(f[4])}`);
      }
    });
    ws.on('close', () => {
      clearTimeout(joinTimer);
      if (this.ws !== ws) return;
      if (this.joined) this.c.back--;
      this.joined = false;
      if (this.stopped) return;
      const wait = retryMs ?? BACKOFF[Math.min(this.attempt, BACKOFF.length - 1)]! * (0.5 + Math.random());
      if (retryMs === null) {
        this.attempt++;
        this.c.refused++;
      }
      setTimeout(() => this.connect(), wait);
    });
  }

  stop(): void {
    this.stopped = true;
    this.ws?.terminate();
  }
}

/** The host's last warn-or-worse log lines, for a failure message. */
function warnings(h: HostHandle): string {
  return JSON.stringify(h.lines.filter((l) => (l.level ?? 0) >= 40).slice(-6).map((l) => [l.time, l.worker, l.msg, l.code ?? l.err]));
}

describe(`reconnect storm: ${N} sessions dropped at once by a host restart`, function () {
  this.timeout(Math.max(120000, N * 30));
  let host: HostHandle | null = null;
  let clients: StormClient[] = [];
  after(() => { for (const c of clients) c.stop(); });
  const lab = useLab();
  const nats = withNats();

  it('every session is back (joined) within 4 times the admission time; the restarted host sheds the storm with 503 + Retry-After and no worker restarts', async () => {
    const port = await freePort();
    const flags = { 'http.port': port, 'http.acceptRate': ACCEPT_RATE, 'http.acceptBurst': ACCEPT_RATE / 2, 'session.idleTimeoutMs': 120000, 'cluster.shutdownTimeoutMs': 5000 };
    // The first host admits at the default http.acceptRate (1,000/s per worker), so the sessions are up sooner;
    // the restarted one sheds at ACCEPT_RATE.
    host = await lab.startHost({ nats: nats.url, workers: 2, flags: { ...flags, 'http.acceptRate': 1000, 'http.acceptBurst': 1000 } });
    const c: Counters = { shed: 0, tooMany: 0, refused: 0, retryAfter: new Set(), back: 0 };
    clients = Array.from({ length: N }, (_, i) => {
      const k = i % ADDRS;
      return new StormClient(`ws://127.0.0.1:${port}`, `s${i}`, `127.0.${2 + Math.floor(k / 250)}.${1 + (k % 250)}`, c);
    });
    // The first connections all come at once (or in waves of STORM_WAVE); the storm proper is the restart below.
    const t0 = Date.now();
    for (let i = 0; i < N; i += WAVE) {
      for (const cl of clients.slice(i, i + WAVE)) cl.connect();
      await until(() => c.back >= Math.min(N, i + WAVE), 60000, () => `${c.back} of ${i + WAVE} joined at first`);
    }
    await until(() => c.back === N, Math.max(60000, N * 10), () => `${c.back} of ${N} joined at first`);
    const firstMs = Date.now() - t0;
    const firstShed = c.shed;
    // The instant of N first connections did not stall or crash a worker of the first host either.
    expect(host.lines.filter((l) => /crash|uncaught|not answered|answering pings|restart/i.test(String(l.msg)))).to.deep.equal([]);

    // The host restarts: every session drops at once (1012), the port is closed for a while.
    c.shed = 0;
    c.retryAfter.clear();
    const tDrop = Date.now();
    await host.stop();
    host = null;
    // Clients are admitted as soon as a worker listens, before the host is ready (its shards claimed).
    host = await lab.startHost({ nats: nats.url, workers: 2, flags, noWait: true });
    await host.waitFor((l) => l.msg === 'worker listening' && l.worker === 0, 30000);
    await host.waitFor((l) => l.msg === 'worker listening' && l.worker === 1, 30000);
    const tReady = Date.now();
    await until(() => c.back === N, Math.max(90000, N * 12), () => `${c.back} of ${N} back after the restart (shed ${c.shed}); host warnings: ${warnings(host!)}`);
    const tBack = Date.now();
    const figures = {
      sessions: N, firstConnectMs: firstMs, firstShed,
      acceptRatePerWorker: ACCEPT_RATE, downMs: tReady - tDrop, backAfterListeningMs: tBack - tReady, backAfterDropMs: tBack - tDrop,
      shed: c.shed, tooMany: c.tooMany, connectRefused: c.refused, retryAfterS: [...c.retryAfter].sort((a, b) => a - b),
    };
    console.log(`      reconnect storm: ${JSON.stringify(figures)}`);
    // Shed, with a hint, rather than served all at once.
    expect(c.shed).to.be.greaterThan(0);
    expect(Math.min(...c.retryAfter)).to.be.at.least(1);
    // The bound we promise: 4 times what admission at http.acceptRate needs (10 s), from the moment both workers listen.
    expect(tBack - tReady).to.be.below((N / (2 * ACCEPT_RATE)) * 1000 * 4);
    // No collapse: both workers of the new host kept running, nothing crashed.
    expect(host.lines.filter((l) => l.msg === 'worker listening')).to.have.length(2);
    expect(host.lines.filter((l) => /crash|uncaught|not answered|answering pings|restart/i.test(String(l.msg)))).to.deep.equal([]);
  });
});
