/**
 * The primary's side of a scrape: a `GET /metrics` lands on one worker,
 * which asks the primary; the primary asks every running worker for its
 * families over IPC, waits for all of them (at most `timeoutMs`), labels
 * each worker's samples `host` and `worker`, merges them with its own and
 * answers the text. A worker that does not answer in time fails the whole
 * scrape with 503 naming it: a partial answer would make that worker's
 * counters vanish and come back, which reads as resets; a failed scrape is
 * what Prometheus records as `up == 0`.
 *
 * Our own aggregation rather than prom-client's AggregatorRegistry: its
 * cluster mode sums the workers into one series, so the restart of one
 * worker (its counters back to 0) makes the host's counter drop, which
 * rate() reads as a reset and turns into a spike; per-worker series keep the
 * spread visible and leave the sums to PromQL. And our hot-path histograms
 * record without label hashing (histogram.ts).
 */
import { mergeFamilies, renderText, withLabels, type Family } from './exposition.js';

/** What the primary answers a worker that asked for the host's metrics. */
export interface ScrapeResult {
  readonly status: 200 | 503;
  readonly text: string;
}

/** What the gatherer needs of the primary. */
export interface GatherPort {
  readonly hostId: string;
  /** The workers to ask now (running, with an IPC channel), each with a way to send it the request. */
  workers(): readonly { readonly index: number; ask(id: number): void }[];
  /** The primary's own families: host-level ones (`host` label only) and its process metrics (`worker="primary"`). */
  own(): Promise<{ host: Family[]; process: Family[] }>;
}

interface Gathering {
  readonly waiting: Set<number>;
  readonly got: Map<number, Family[]>;
  done(): void;
}

export class MetricsGatherer {
  private nextId = 1;
  private readonly open = new Map<number, Gathering>();

  constructor(private readonly port: GatherPort, private readonly timeoutMs: number) {}

  /** Asks every worker and answers the merged text, or 503 naming the workers that did not answer. */
  async gather(): Promise<ScrapeResult> {
    const id = this.nextId++;
    const workers = this.port.workers();
    let done!: () => void;
    const finished = new Promise<void>((r) => { done = r; });
    const g: Gathering = { waiting: new Set(workers.map((w) => w.index)), got: new Map(), done };
    this.open.set(id, g);
    const timer = setTimeout(done, this.timeoutMs);
    try {
      for (const w of workers) w.ask(id);
      if (g.waiting.size === 0) done();
      const own = this.port.own();
      await finished;
      const mine = await own;
      if (g.waiting.size > 0) {
        const missing = [...g.waiting].sort((a, b) => a - b);
        return { status: 503, text: `# metrics unavailable: worker ${missing.join(', ')} of host ${this.port.hostId} did not answer within ${this.timeoutMs} ms\n` };
      }
      const host = { host: this.port.hostId };
      const lists: Family[][] = [withLabels(mine.host, host), withLabels(mine.process, { ...host, worker: 'primary' })];
      for (const [index, families] of [...g.got].sort((a, b) => a[0] - b[0])) lists.push(withLabels(families, { ...host, worker: String(index) }));
      return { status: 200, text: renderText(mergeFamilies(lists)) };
    } finally {
      clearTimeout(timer);
      this.open.delete(id);
    }
  }

  /** A worker's answer to request `id`; late or unknown answers are dropped. */
  onFamilies(worker: number, id: number, families: Family[]): void {
    const g = this.open.get(id);
    if (!g || !g.waiting.delete(worker)) return;
    g.got.set(worker, families);
    if (g.waiting.size === 0) g.done();
  }

  /** A worker exited: a gathering waiting for it fails now instead of at its timeout. */
  onWorkerGone(worker: number): void {
    for (const g of this.open.values()) if (g.waiting.has(worker)) g.done();
  }
}
