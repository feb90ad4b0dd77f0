/**
 * Raw WebSocket Phoenix V2 peers for tests: exact frames in, exact frames out.
 */
import WebSocket from 'ws';
import { token } from './host.js';
import { Recorder } from './recorder.js';

export type Frame = [string | null, string | null, string, string, unknown];

export class RawClient {
  readonly binary: Buffer[] = [];
  closeCode: number | null = null;
  closeReason = '';
  readonly closed: Promise<number>;
  private readonly recorder = new Recorder<Frame>({ what: 'a frame', context: () => `close ${this.closeCode}` });
  private nextRef = 1;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) { this.binary.push(data); return; }
      this.recorder.push(JSON.parse(data.toString()) as Frame);
    });
    this.closed = new Promise((resolve) => ws.on('close', (code: number, reason: Buffer) => {
      this.closeCode = code;
      this.closeReason = reason.toString();
      resolve(code);
      // Nothing more will arrive: whoever waits for a frame hears it now.
      this.recorder.end(`socket closed (${code}) while waiting for a frame`);
    }));
    ws.on('error', () => {});
  }

  /** Every text frame received so far, in order. */
  get frames(): Frame[] { return this.recorder.items; }

  static open(url: string, token: string | null, opts: { localAddress?: string; query?: string; protocols?: string[] } = {}): Promise<RawClient> {
    const q = opts.query ?? `vsn=2.0.0${token ? `&token=${encodeURIComponent(token)}` : ''}`;
    const ws = new WebSocket(`${url}/socket/websocket?${q}`, opts.protocols ?? [], { localAddress: opts.localAddress });
    const c = new RawClient(ws);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(c));
      ws.once('unexpected-response', (_req, res) => {
        // The refusal's JSON body ({error: {code, message}}) and Retry-After come with the error.
        let body = '';
        res.on('data', (d: Buffer) => { if (body.length < 4096) body += d.toString(); });
        res.on('end', () => {
          let error: { code?: string; message?: string } = {};
          try { error = (JSON.parse(body) as { error?: typeof error }).error ?? {}; } catch { /* not JSON */ }
          const retryAfter = res.headers['retry-after'] === undefined ? undefined : Number(res.headers['retry-after']);
          reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { statusCode: res.statusCode, code: error.code, reason: error.message, retryAfter }));
        });
        res.on('error', () => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { statusCode: res.statusCode })));
      });
      ws.once('error', reject);
    });
  }

  ref(): string { return String(this.nextRef++); }

  sendRaw(data: string | Buffer): void { this.ws.send(data); }

  send(f: Frame): void { this.ws.send(JSON.stringify(f)); }

  /** Sends a push and resolves with the phx_reply carrying its ref. */
  request(joinRef: string | null, topic: string, event: string, payload: unknown, timeoutMs = 5000): Promise<Frame> {
    const ref = this.ref();
    const p = this.waitFor((f) => f[1] === ref && f[3] === 'phx_reply', timeoutMs);
    this.send([joinRef, ref, topic, event, payload]);
    return p;
  }

  async join(topic: string, params: unknown = {}, joinRef?: string, timeoutMs = 5000): Promise<Frame> {
    const jr = joinRef ?? this.ref();
    const ref = this.ref();
    const p = this.waitFor((f) => f[1] === ref && f[3] === 'phx_reply', timeoutMs);
    this.send([jr, ref, topic, 'phx_join', params]);
    return p;
  }

  /** Resolves with the first frame (already received or future) matching pred; fails when the socket closes first. */
  waitFor(pred: (f: Frame) => boolean, timeoutMs = 5000): Promise<Frame> {
    return this.recorder.waitFor(pred, timeoutMs);
  }

  close(): void { this.ws.close(); }
  terminate(): void { this.ws.terminate(); }
}

/** Opens raw clients for userId until one lands on the given worker (learned from an echo join, session h1.<worker>.<n>). */
export async function clientOnWorker(url: string, userId: string, worker: number): Promise<RawClient> {
  for (let i = 0; i < 40; i++) {
    const c = await RawClient.open(url, token(userId));
    const j = await c.join('echo:where', {}, 'e');
    if (String((j[4] as { response: { session?: unknown } }).response.session).split('.')[1] === String(worker)) return c;
    c.close();
  }
  throw new Error(`no connection landed on worker ${worker} in 40 tries`);
}

/** Opens n clients, spread over source addresses 127.0.0.2.. (the kernel's port search is per address). */
export async function openMany(n: number, url: string, tokenFor: (i: number) => string, batch = 100): Promise<RawClient[]> {
  const out: RawClient[] = [];
  for (let i = 0; i < n; i += batch) {
    const part = await Promise.all(Array.from({ length: Math.min(batch, n - i) }, (_, j) => RawClient.open(url, tokenFor(i + j), { localAddress: `127.0.0.${2 + ((i + j) % 50)}` })));
    out.push(...part);
  }
  return out;
}
