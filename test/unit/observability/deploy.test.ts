/**
 * What ships in deploy/ names only series that exist: every query of the
 * Grafana dashboard and every alert rule reads series a Sandbar host
 * exports, with labels those series have. (The rules' behaviour is tested by
 * promtool in test/integration/prometheus.test.ts; the dashboard's queries
 * are evaluated against a real Prometheus there too.)
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { metricSelectors } from '../../helpers/promql.js';
import { knownSeries } from '../../helpers/metric-catalogue.js';

const ROOT = join(import.meta.dirname, '../../..');

interface Panel { title?: string; type: string; targets?: { expr: string }[]; panels?: Panel[] }

/** Every query of the dashboard with where it is, the templating included. */
export function dashboardQueries(): { where: string; expr: string }[] {
  const dash = JSON.parse(readFileSync(join(ROOT, 'deploy/grafana/sandbar.json'), 'utf8')) as { panels: Panel[]; templating: { list: { name: string; query?: string | { query: string } }[] } };
  const out: { where: string; expr: string }[] = [];
  const walk = (panels: Panel[]) => {
    for (const p of panels) {
      for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}"`, expr: t.expr });
      walk(p.panels ?? []);
    }
  };
  walk(dash.panels);
  for (const v of dash.templating.list) {
    const q = typeof v.query === 'string' ? v.query : v.query?.query;
    const m = q ? /^label_values\((\w+),\s*\w+\)$/.exec(q) : null;
    if (m) out.push({ where: `variable ${v.name}`, expr: m[1]! });
  }
  return out;
}

export function ruleQueries(): { where: string; expr: string }[] {
  const doc = parseYaml(readFileSync(join(ROOT, 'deploy/prometheus/sandbar.rules.yml'), 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] };
  return doc.groups.flatMap((g) => g.rules.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr })));
}

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
