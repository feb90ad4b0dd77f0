/**
 * What ships in deploy/ names only series that exist: every query of the
 * Grafana dashboard and every alert rule reads series a Sandbar host
 * exports, with labels those series have. (The rules' behaviour is tested by
 * promtool in test/integration/prometheus.test.ts; the dashboard's queries
 * are evaluated against a real Prometheus there too.)
 */
import { expect } from 'chai';
import { metricSelectors } from '../../support/promql.js';
import { dashboardQueries, ruleQueries } from '../../support/deploy-files.js';
import { knownSeries, sandbarFamilies } from '../../support/metric-catalogue.js';
import { documentedMetrics, documentedRuntimeMetrics } from '../../support/documented-metrics.js';

describe('deploy: the dashboard and the alert rules name only series that exist', () => {
  it('reads the selectors of a PromQL expression (and only those)', () => {
    expect(metricSelectors('histogram_quantile(0.99, sum by (le, kind) (rate(sandbar_request_duration_seconds_bucket{host=~"$host", kind="dm"}[$__rate_interval]))) > 1e3'))
      .to.deep.equal([{ name: 'sandbar_request_duration_seconds_bucket', labels: ['host', 'kind'] }]);
    expect(metricSelectors('max by (host, worker) (sandbar_fenced) == 1 and on(host) up{job="x"} offset 5m'))
      .to.deep.equal([{ name: 'sandbar_fenced', labels: [] }, { name: 'up', labels: ['job'] }]);
  });

  for (const [what, queries] of [['dashboard', dashboardQueries], ['alert rules', ruleQueries]] as const) {
    it(`${what}: every selector names an exported series and its labels`, async () => {
      const known = await knownSeries();
      const list = queries();
      expect(list.length, `queries in the ${what}`).to.be.greaterThan(8);
      for (const { where, expr } of list) {
        const sels = metricSelectors(expr);
        expect(sels.length, `${where}: ${expr} names no series`).to.be.greaterThan(0);
        for (const s of sels) {
          expect(known.has(s.name), `${where}: ${s.name} is not a series Sandbar exports (${expr})`).to.equal(true);
          for (const l of s.labels) expect(known.get(s.name)!.has(l), `${where}: ${s.name} has no label ${l}`).to.equal(true);
        }
      }
    });
  }

  it('the catalogue this checks against is not empty or trivially permissive', async () => {
    const known = await knownSeries();
    expect(known.has('sandbar_sessions')).to.equal(true);
    expect(known.has('sandbar_request_duration_seconds_bucket')).to.equal(true);
    expect(known.has('process_cpu_seconds_total')).to.equal(true);
    expect(known.has('nodejs_eventloop_lag_p99_seconds')).to.equal(true);
    expect(known.has('sandbar_event_loop_delay_ms'), 'the old name is gone').to.equal(false);
    expect(known.get('sandbar_sessions')!.has('reason')).to.equal(false);
  });
});

describe('docs: docs/operations.md documents exactly the metrics the code exports', () => {
  it('every Sandbar metric is in the tables, with its type, its labels, per worker or per host; and nothing else is', async () => {
    const { worker, host } = sandbarFamilies();
    const docs = documentedMetrics();
    const code = [...worker.map((f) => ({ f, per: 'worker' })), ...host.map((f) => ({ f, per: 'host' }))].map(({ f, per }) => ({
      name: f.name, type: f.type, per,
      labels: [...new Set(f.samples.flatMap((s) => Object.keys(s.labels)))].filter((l) => l !== 'le').sort(),
    }));
    expect(docs.map((d) => ({ name: d.name, type: d.type, per: d.per, labels: [...d.labels].sort() })).sort((a, b) => a.name.localeCompare(b.name)))
      .to.deep.equal(code.sort((a, b) => a.name.localeCompare(b.name)));
  });

  it('the runtime metrics it names are ones prom-client exports', async () => {
    const known = await knownSeries();
    const named = documentedRuntimeMetrics();
    expect(named.length).to.be.greaterThan(8);
    for (const n of named) expect(known.has(n) || known.has(`${n}_bucket`), n).to.equal(true);
  });
});
