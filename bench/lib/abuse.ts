/**
 * The storage attack of issue 21, as clients: sessions that send
 * maximum-size dms and room messages at the frame-rate limit, and an
 * ordinary pair of users that keep talking meanwhile. Used by
 * `bench/abuse.ts` (against any host) and `test/integration/abuse.test.ts`.
 *
 * Kinds of abuser (each its own user id, as with ordinary tokens):
 * - `spray`: dms to random, never-seen user ids;
 * - `fill`: dms to a few fixed ids of its own (within the recent-recipient
 *   ring: no "new recipient" cost), so only the stored-bytes budgets stop it;
 * - `roomSpray`: joins a random room, posts one message, leaves, again;
 * - `roomFill`: posts to one room.
 *
 * Raw Phoenix V2 frames over `ws`, one prebuilt body per client, so the
 * load generator stays cheap next to the server it loads.
 */
import WebSocket from 'ws';

export type AbuserKind = 'spray' | 'fill' | 'roomSpray' | 'roomFill';

export interface AbuseOptions {
  /** ws://host:port */
  readonly url: string;
  readonly token: (user: string) => string;
  /** Source address of client i (loopback aliases spread the per-IP limits, or keep them, as wanted). */
  readonly localAddress?: (i: number) => string | undefined;
  readonly kinds: Partial<Record<AbuserKind, number>>;
  /** Frames per second per abuser. */
  readonly perSecond: number;
  /** Encoded body bytes (message.maxBytes for the attack). */
  readonly bodyBytes: number;
  /** Targets of each `fill` abuser. */
  readonly fillTargets?: number;
  /** Prefix of every user and room id (runs apart from each other). */
  readonly prefix?: string;
}

/** A dm or room message the server acknowledged: where it went, its client id and seq. */
export interface Acked { readonly to: string; readonly mid: string; readonly seq: number }

const TICK_MS = 20;

export class Abuser {
  readonly replies = new Map<string, number>();
  readonly acked: Acked[] = [];
  closeCode: number | null = null;
  private ws!: WebSocket;
  private timer: NodeJS.Timeout | null = null;
  private nextRef = 1;
  private n = 0;
  /** ref → [target, mid] of pushes waiting for their reply. */
  private readonly waiting = new Map<string, [string, string]>();
  private readonly body: string;
  private credit = 0;
  /** roomSpray: the room joined now, and whether its message went out. */
  private room: { topic: string; joinRef: string; sent: boolean; joined: boolean } | null = null;

  constructor(readonly kind: AbuserKind, readonly user: string, private readonly o: AbuseOptions, private readonly index: number) {
    this.body = JSON.stringify('x'.repeat(Math.max(0, o.bodyBytes - 2)));
  }

  async open(): Promise<void> {
    const ws = new WebSocket(`${this.o.url}/socket/websocket?vsn=2.0.0&token=${encodeURIComponent(this.o.token(this.user))}`, { localAddress: this.o.localAddress?.(this.index) });
    this.ws = ws;
    ws.on('message', (d: Buffer) => this.onFrame(JSON.parse(d.toString()) as [string | null, string | null, string, string, { status?: string; response?: { code?: string; seq?: number } }]));
    ws.on('close', (code) => { this.closeCode = code; this.stop(); });
    ws.on('error', () => {});
    await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); ws.once('unexpected-response', (_q, r) => reject(new Error(`HTTP ${r.statusCode}`))); });
    const topic = this.kind === 'roomFill' ? `room:${this.o.prefix ?? ''}flood-${this.index}` : `user:${this.user}`;
    this.send(['j', this.ref(), topic, 'phx_join', {}]);
  }

  /** Pushes sent (dms and room messages; joins and leaves not counted). */
  get sent(): number { return this.pushes; }
  private pushes = 0;

  start(): void {
    let last = performance.now();
    this.timer = setInterval(() => {
      const now = performance.now();
      // A stalled load generator catches up by at most a quarter second: it
      // must not burst past the server's rate bucket and get itself closed.
      this.credit = Math.min(this.o.perSecond / 4, this.credit + (now - last) * this.o.perSecond / 1000);
      last = now;
      while (this.credit >= 1) { this.credit--; this.push(); }
    }, TICK_MS);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  close(): void { this.stop(); this.ws.close(); }

  /** Replies counted: `ok`, or the error code. */
  count(key: string): number { return this.replies.get(key) ?? 0; }

  private ref(): string { return String(this.nextRef++); }

  private send(f: unknown[]): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(f));
  }

  private sendPush(joinRef: string, topic: string, event: string, payloadStart: string, target: string, mid: string): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.pushes++;
    const ref = this.ref();
    this.waiting.set(ref, [target, mid]);
    // The body is spliced in as text: one big string per client, not one per frame.
    this.ws.send(`[${JSON.stringify(joinRef)},"${ref}",${JSON.stringify(topic)},"${event}",${payloadStart}"id":"${mid}","body":${this.body}}]`);
  }

  private push(): void {
    const p = this.o.prefix ?? '';
    const i = this.n++;
    switch (this.kind) {
      case 'spray': {
        const to = `${p}spray-${this.index}-${i}-${Math.random().toString(36).slice(2, 8)}`;
        this.sendPush('j', `user:${this.user}`, 'dm', `{"to":${JSON.stringify(to)},`, to, `m${i}`);
        return;
      }
      case 'fill': {
        const to = `${p}fill-${this.index}-${i % (this.o.fillTargets ?? 12)}`;
        this.sendPush('j', `user:${this.user}`, 'dm', `{"to":${JSON.stringify(to)},`, to, `m${i}`);
        return;
      }
      case 'roomFill': {
        const room = `${p}flood-${this.index}`;
        this.sendPush('j', `room:${room}`, 'msg', '{', room, `m${i}`);
        return;
      }
      case 'roomSpray': {
        // One frame per tick: join a new room, post once it is joined, then leave.
        const r = this.room;
        if (r && r.joined && !r.sent) {
          r.sent = true;
          this.sendPush(r.joinRef, r.topic, 'msg', '{', r.topic.slice(5), `m${i}`);
          return;
        }
        if (r && r.sent) {
          this.send([r.joinRef, this.ref(), r.topic, 'phx_leave', {}]);
          this.room = null;
          return;
        }
        if (r) return; // its join is still in flight
        const topic = `room:${p}spam-${this.index}-${i}-${Math.random().toString(36).slice(2, 8)}`;
        const joinRef = `r${i}`;
        this.room = { topic, joinRef, sent: false, joined: false };
        this.send([joinRef, joinRef, topic, 'phx_join', {}]);
        return;
      }
    }
  }

  private onFrame(f: [string | null, string | null, string, string, { status?: string; response?: { code?: string; seq?: number } }]): void {
    if (f[3] !== 'phx_reply' || f[1] === null) return;
    const r = f[4];
    if (this.room && f[1] === this.room.joinRef) {
      if (r.status === 'ok') this.room.joined = true;
      else { this.count1(`join:${r.response?.code ?? r.status}`); this.room = null; }
      return;
    }
    const w = this.waiting.get(f[1]);
    if (!w) return;
    this.waiting.delete(f[1]);
    if (r.status === 'ok') {
      this.count1('ok');
      this.acked.push({ to: w[0], mid: w[1], seq: r.response?.seq ?? 0 });
    } else this.count1(r.response?.code ?? String(r.status));
  }

  private count1(key: string): void { this.replies.set(key, (this.replies.get(key) ?? 0) + 1); }
}

/** Opens and joins every abuser (not yet sending). */
export async function openAbusers(o: AbuseOptions): Promise<Abuser[]> {
  const out: Abuser[] = [];
  let i = 0;
  for (const kind of ['spray', 'fill', 'roomSpray', 'roomFill'] as const) {
    for (let k = 0; k < (o.kinds[kind] ?? 0); k++) out.push(new Abuser(kind, `${o.prefix ?? ''}abuser-${kind}-${k}`, o, i++));
  }
  await Promise.all(out.map((a) => a.open()));
  return out;
}

/** Every abuser's replies added up, by `ok` or error code. */
export function tally(abusers: readonly Abuser[]): Record<string, number> {
  const t: Record<string, number> = {};
  for (const a of abusers) for (const [k, v] of a.replies) t[k] = (t[k] ?? 0) + v;
  return t;
}

/**
 * Two ordinary users who keep talking: each sends the other a small dm
 * every `everyMs`, and acknowledges every dm it gets. Every push must be
 * answered ok; what each sent and got is kept for the checks.
 */
export class OrdinaryPair {
  readonly sent: { from: string; mid: string; ok: boolean; code?: string; ms: number }[] = [];
  readonly got = new Map<string, Set<string>>();
  acks = 0;
  ackErrors = 0;
  private readonly socks = new Map<string, WebSocket>();
  private timer: NodeJS.Timeout | null = null;
  private nextRef = 1;
  private readonly waiting = new Map<string, { from: string; mid: string; at: number }>();

  constructor(private readonly url: string, private readonly token: (u: string) => string, readonly users: [string, string], private readonly localAddress?: string) {}

  async open(): Promise<void> {
    for (const u of this.users) {
      const ws = new WebSocket(`${this.url}/socket/websocket?vsn=2.0.0&token=${encodeURIComponent(this.token(u))}`, { localAddress: this.localAddress });
      this.socks.set(u, ws);
      this.got.set(u, new Set());
      ws.on('error', () => {});
      ws.on('message', (d: Buffer) => this.onFrame(u, JSON.parse(d.toString()) as [string | null, string | null, string, string, Record<string, unknown>]));
      await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
      ws.send(JSON.stringify(['u', String(this.nextRef++), `user:${u}`, 'phx_join', {}]));
    }
  }

  start(everyMs: number): void {
    let n = 0;
    this.timer = setInterval(() => {
      const i = n++;
      for (const [k, from] of this.users.entries()) {
        const to = this.users[1 - k]!;
        const ref = String(this.nextRef++);
        const mid = `${from}-${i}`;
        this.waiting.set(ref, { from, mid, at: performance.now() });
        this.socks.get(from)!.send(JSON.stringify(['u', ref, `user:${from}`, 'dm', { to, id: mid, body: { text: `hello ${i}` } }]));
      }
    }, everyMs);
  }

  stop(): void { if (this.timer) clearInterval(this.timer); this.timer = null; }

  close(): void { this.stop(); for (const ws of this.socks.values()) ws.close(); }

  /** Pushes sent and not answered yet. */
  get unanswered(): number { return this.waiting.size; }

  private onFrame(user: string, f: [string | null, string | null, string, string, Record<string, unknown>]): void {
    const ws = this.socks.get(user)!;
    if (f[3] === 'dm') {
      const m = f[4] as { seq: number; id: string };
      this.got.get(user)!.add(m.id);
      ws.send(JSON.stringify(['u', `a${this.nextRef++}`, `user:${user}`, 'ack', { seq: m.seq }]));
      return;
    }
    if (f[3] !== 'phx_reply' || f[1] === null) return;
    const r = f[4] as { status: string; response?: { code?: string } };
    if (f[1].startsWith('a')) {
      if (r.status === 'ok') this.acks++; else this.ackErrors++;
      return;
    }
    const w = this.waiting.get(f[1]);
    if (!w) return;
    this.waiting.delete(f[1]);
    this.sent.push({ from: w.from, mid: w.mid, ok: r.status === 'ok', code: r.response?.code, ms: performance.now() - w.at });
  }
}
