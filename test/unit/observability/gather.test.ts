import { expect } from 'chai';
import { MetricsGatherer, type GatherPort } from '../../../src/observability/gather.js';
import type { Family } from '../../../src/observability/exposition.js';

const fam = (n: number): Family[] => [{ name: 'sandbar_sessions', help: 'S.', type: 'gauge', samples: [{ labels: {}, value: n }] }];

/** A primary with `n` workers; `answer` decides what each worker does with a request. */
function primary(n: number, answer: (g: MetricsGatherer, worker: number, id: number) => void, timeoutMs = 200): MetricsGatherer {
  const port: GatherPort = {
    hostId: 'h1',
    workers: () => Array.from({ length: n }, (_, index) => ({ index, ask: (id: number) => answer(g, index, id) })),
    own: async () => ({ host: [{ name: 'sandbar_worker_restarts_total', help: 'R.', type: 'counter', samples: [{ labels: {}, value: 2 }] }], process: [{ name: 'process_open_fds', help: 'F.', type: 'gauge', samples: [{ labels: {}, value: 9 }] }] }),
  };
  const g: MetricsGatherer = new MetricsGatherer(port, timeoutMs);
  return g;
}

describe('observability: the primary gathers its workers\' metrics', () => {
  it('answers 200 with every worker\'s samples labelled host and worker, and its own', async () => {
    const g = primary(2, (g, w, id) => setImmediate(() => g.onFamilies(w, id, fam(w + 10))));
    const r = await g.gather();
    expect(r.status).to.equal(200);
    expect(r.text).to.include('sandbar_sessions{host="h1",worker="0"} 10\nsandbar_sessions{host="h1",worker="1"} 11\n');
    expect(r.text).to.include('sandbar_worker_restarts_total{host="h1"} 2\n');
    expect(r.text).to.include('process_open_fds{host="h1",worker="primary"} 9\n');
  });

  it('answers 503 naming the worker that did not answer in time, never a partial scrape', async () => {
    const g = primary(3, (g, w, id) => { if (w !== 1) g.onFamilies(w, id, fam(w)); }, 100);
    const t0 = Date.now();
    const r = await g.gather();
    expect(r.status).to.equal(503);
    expect(r.text).to.match(/worker 1 of host h1 did not answer within 100 ms/);
    expect(r.text).to.not.include('sandbar_sessions');
    expect(Date.now() - t0).to.be.within(90, 1000);
  });

  it('fails at once, not at the timeout, when a worker it waits for exits', async () => {
    const g = primary(2, (g, w, id) => { if (w === 0) g.onFamilies(w, id, fam(0)); else setTimeout(() => g.onWorkerGone(1), 10); }, 5000);
    const t0 = Date.now();
    const r = await g.gather();
    expect(r.status).to.equal(503);
    expect(Date.now() - t0).to.be.below(1000);
  });

  it('drops late and unknown answers; concurrent scrapes each get their own workers\' answers', async () => {
    const asked: [number, number][] = [];
    const g = primary(2, (_g, w, id) => { asked.push([w, id]); });
    const a = g.gather();
    const b = g.gather();
    // Answer b's requests first, then a's; then a stray answer for a scrape that does not exist.
    const ids = [...new Set(asked.map(([, id]) => id))];
    expect(ids).to.have.length(2);
    for (const w of [0, 1]) g.onFamilies(w, ids[1]!, fam(100 + w));
    for (const w of [0, 1]) g.onFamilies(w, ids[0]!, fam(w));
    g.onFamilies(0, 999, fam(-1));
    const [ra, rb] = await Promise.all([a, b]);
    expect(ra.text).to.include('worker="1"} 1\n');
    expect(rb.text).to.include('worker="1"} 101\n');
    expect(ra.text + rb.text).to.not.include('-1\n');
  });
});
