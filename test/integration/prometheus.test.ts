/**
 * Sandbar's metrics as Prometheus sees them. First promtool checks what
 * ships in deploy/prometheus (the config, the rules, and the rules' unit
 * tests, which must also be able to fail). Then a real Prometheus (Debian's
 * package) scrapes a 3-host test cluster's internal ports every second with
 * the shipped rules loaded; through Prometheus's HTTP API the test finds
 * every series docs/operations.md documents, on every host and worker, with
 * the type it documents; evaluates every query of the Grafana dashboard;
 * sees the traffic it made in the counters and histograms; and kills one
 * host with kill -9 and sees it: that host's `up` drops to 0, the others
 * see two hosts, its shards are taken over (failover takeovers counted) and
 * SandbarHostDown goes pending.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNatsServer, type NatsServerHandle } from '../support/nats.js';
import { startHost, token, type HostHandle } from '../support/host.js';
import { RawClient } from '../support/clients.js';
import { eventually, PROMTOOL, requireBinary, startPrometheus, type PrometheusHandle } from '../support/prometheus.js';
import { documentedMetrics, documentedRuntimeMetrics } from '../support/documented-metrics.js';
import { dashboardQueries } from '../support/deploy-files.js';

const DEPLOY = join(import.meta.dirname, '../../deploy/prometheus');
const FLAGS = { 'cluster.heartbeatMs': 200, 'cluster.suspectAfterMs': 600, 'cluster.downAfterMs': 1200, 'cluster.selfFenceMs': 700, shards: 64 };

function promtool(args: string[], cwd = DEPLOY): { status: number | null; out: string } {
  const r = spawnSync(PROMTOOL, args, { cwd, encoding: 'utf8', timeout: 30000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('prometheus: what ships in deploy/prometheus passes promtool', function () {
  this.timeout(60000);
  before(() => requireBinary(PROMTOOL));

  it('promtool check config and check rules accept the scrape config and the rules', () => {
    const config = promtool(['check', 'config', 'prometheus.yml']);
    expect(config.status, config.out).to.equal(0);
    const rules = promtool(['check', 'rules', 'sandbar.rules.yml']);
    expect(rules.status, rules.out).to.equal(0);
    expect(rules.out).to.match(/SUCCESS: 12 rules found/);
  });

  it('promtool test rules: every alert fires where it should and not where it should not', () => {
    const r = promtool(['test', 'rules', 'sandbar.rules.test.yml']);
    expect(r.status, r.out).to.equal(0);
    expect(r.out).to.include('SUCCESS');
  });

  it('promtool test rules fails when an alert does not behave as its test says (the unit tests can fail)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sandbar-promtool-'));
    try {
      copyFileSync(join(DEPLOY, 'sandbar.rules.yml'), join(dir, 'sandbar.rules.yml'));
      // The host-down test, expecting the alert 30 s before its `for: 1m` allows.
      const tests = readFileSync(join(DEPLOY, 'sandbar.rules.test.yml'), 'utf8').replace('      - eval_time: 2m\n        alertname: SandbarHostDown', '      - eval_time: 1m15s\n        alertname: SandbarHostDown');
      writeFileSync(join(dir, 'sandbar.rules.test.yml'), tests);
      const r = promtool(['test', 'rules', 'sandbar.rules.test.yml'], dir);
      expect(r.status, r.out).to.not.equal(0);
      expect(r.out).to.include('SandbarHostDown');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('prometheus: a real Prometheus scraping a 3-host cluster', function () {
  this.timeout(120000);
  let nats: NatsServerHandle;
  let hosts: HostHandle[] = [];
  let prom: PrometheusHandle;
  const clients: RawClient[] = [];
  const WORKERS: Record<string, number> = { h1: 2, h2: 1, h3: 1 };

  before(async () => {
    requireBinary('prometheus');
    nats = await startNatsServer();
    hosts = await Promise.all(Object.entries(WORKERS).map(([hostId, workers]) => startHost({ nats: nats.url, workers, flags: { ...FLAGS, hostId } })));
    prom = await startPrometheus({ targets: hosts.map((h) => `127.0.0.1:${h.adminPort}`), ruleFiles: [join(DEPLOY, 'sandbar.rules.yml')], scrapeS: 1 });
    // Traffic for the counters and histograms: sessions on every host, dms between them, a room, a refused
    // push, a refused token.
    for (let i = 0; i < 6; i++) {
      const c = await RawClient.open(hosts[i % 3]!.url, token(`p${i}`));
      await c.join(`user:p${i}`, {}, 'u', 15000);
      clients.push(c);
    }
    await clients[0]!.join('room:ops', {}, 'r', 15000);
    await clients[0]!.request('r', 'room:ops', 'msg', { body: 'hello', id: 'm-room' }, 15000);
    for (let i = 0; i < 6; i++) await clients[i]!.request('u', `user:p${i}`, 'dm', { to: `p${(i + 1) % 6}`, id: `m${i}`, body: { i } }, 15000);
    await clients[1]!.request('u', 'user:p1', 'no-such-event', {});
    await RawClient.open(hosts[0]!.url, 'not-a-token').then((c) => c.close(), () => {});
  });
  after(async () => {
    for (const c of clients) c.close();
    await prom?.stop();
    await Promise.all(hosts.map((h) => h.stop()));
    await nats?.stop();
  });

  it('scrapes every host\'s internal port: three targets up', async () => {
    const up = await eventually('three targets up', async () => {
      const r = await prom.query('up{job="sandbar"} == 1');
      return r.length === 3 ? r : undefined;
    });
    expect(up.map((s) => s.metric.instance).sort()).to.deep.equal(hosts.map((h) => `127.0.0.1:${h.adminPort}`).sort());
  });

  it('finds every documented series on every host (and worker), with the documented type and labels', async () => {
    const docs = documentedMetrics();
    expect(docs.length).to.be.greaterThan(30);
    // Every series has been scraped at least once on every host by now.
    await eventually('a full scrape of every host', async () => ((await prom.query('count(sandbar_build_info)'))[0]?.value[1] === '3' ? true : undefined));
    const metadata = await prom.api<Record<string, { type: string }[]>>('metadata');
    for (const d of docs) {
      const series = d.type === 'histogram' ? `${d.name}_bucket` : d.name;
      const by = d.per === 'worker' ? 'host, worker' : 'host';
      const found = await prom.query(`count by (${by}) (${series})`);
      const want = d.per === 'worker' ? Object.values(WORKERS).reduce((a, b) => a + b, 0) : 3;
      expect(found.length, `${series}: ${found.length} ${d.per === 'worker' ? 'workers' : 'hosts'} report it, not ${want}`).to.equal(want);
      if (d.per === 'worker') expect(found.map((s) => s.metric.worker), series).to.not.include('primary');
      expect(metadata[d.name]?.[0]?.type, `type of ${d.name} in Prometheus`).to.equal(d.type);
      for (const label of d.labels) {
        const withLabel = await prom.query(`count(${series}{${label}!=""})`);
        expect(withLabel.length, `${series} has label ${label}`).to.equal(1);
      }
    }
    for (const name of documentedRuntimeMetrics()) {
      const series = metadata[name]?.[0]?.type === 'histogram' ? `${name}_count` : name;
      const found = await prom.query(`count by (host) (${series}{worker="primary"})`);
      expect(found.length, `${name} from every primary`).to.equal(3);
    }
    const build = await prom.query('sandbar_build_info');
    for (const s of build) expect(s.metric).to.include.keys('version', 'node', 'nats');
    expect(build[0]!.metric.nats).to.match(/^\d+\.\d+\.\d+/);
  });

  it('the counters and histograms hold the traffic this test made', async () => {
    const value = async (expr: string) => Number((await prom.query(expr))[0]?.value[1] ?? NaN);
    await eventually('the dms in the counters', async () => ((await value('sum(sandbar_requests_total{kind="dm"})')) >= 6 ? true : undefined));
    expect(await value('sum(sandbar_request_duration_seconds_count{kind="dm"})')).to.be.at.least(6);
    expect(await value('sum(sandbar_request_duration_seconds_bucket{kind="dm", le="+Inf"})')).to.be.at.least(6);
    expect(await value('histogram_quantile(0.5, sum by (le) (sandbar_request_duration_seconds_bucket{kind="dm"}))')).to.be.greaterThan(0);
    expect(await value('sum(sandbar_requests_total{kind="room_msg"})')).to.be.at.least(1);
    expect(await value('sum(sandbar_requests_total{kind="user_join"})')).to.be.at.least(6);
    expect(await value('sum(sandbar_sessions)')).to.equal(6);
    expect(await value('sum(sandbar_refusals_total{code="SANDBAR_ERR_UNKNOWN_EVENT"})')).to.equal(1);
    expect(await value('sum(sandbar_auth_failures_total{code="SANDBAR_ERR_AUTH_INVALID"})')).to.equal(1);
    expect(await value('max(sandbar_shards_without_master)')).to.equal(0);
    expect(await value('sum(sandbar_shards_master)')).to.equal(64);
  });

  it('every query of the Grafana dashboard evaluates, and the shipped rules load and evaluate', async () => {
    const queries = dashboardQueries();
    for (const { where, expr } of queries) {
      const q = expr.replaceAll('$host', '.*').replaceAll('$__rate_interval', '1m').replaceAll('$__range', '5m');
      await prom.query(q).catch((err: Error) => { throw new Error(`${where}: ${expr}: ${err.message}`); });
    }
    const rules = await prom.api<{ groups: { rules: { name: string; health: string; lastError?: string }[] }[] }>('rules');
    const loaded = rules.groups.flatMap((g) => g.rules);
    expect(loaded).to.have.length(12);
    await eventually('every rule evaluated', async () => {
      const r = await prom.api<{ groups: { rules: { health: string }[] }[] }>('rules');
      return r.groups.flatMap((g) => g.rules).every((x) => x.health === 'ok') ? true : undefined;
    });
  });

  it('a kill -9 of a host shows: its up drops to 0, the others see 2 hosts, its shards are taken over, SandbarHostDown is pending', async () => {
    const victim = hosts[2]!;
    const instance = `127.0.0.1:${victim.adminPort}`;
    const before = Number((await prom.query('sum(sandbar_shard_takeover_duration_seconds_count{kind="failover"})'))[0]?.value[1] ?? 0);
    victim.killHost();
    await eventually('up == 0 for the killed host', async () => ((await prom.query(`up{instance="${instance}"} == 0`)).length === 1 ? true : undefined));
    await eventually('the others see 2 hosts', async () => {
      const r = await prom.query('sandbar_cluster_hosts');
      return r.length === 2 && r.every((s) => s.value[1] === '2') ? true : undefined;
    });
    const takeovers = await eventually('failover takeovers counted', async () => {
      const n = Number((await prom.query('sum(sandbar_shard_takeover_duration_seconds_count{kind="failover"})'))[0]?.value[1] ?? 0);
      return n > before ? n : undefined;
    });
    expect(takeovers - before).to.be.at.least(1);
    await eventually('every shard served by the survivors', async () => {
      const r = await prom.query('sum(sandbar_shards_master)');
      return r[0]?.value[1] === '64' ? true : undefined;
    });
    expect(Number((await prom.query('sum(sandbar_promotions_total)'))[0]?.value[1])).to.be.at.least(1);
    await eventually('SandbarHostDown pending for the killed host', async () => {
      const alerts = await prom.api<{ alerts: { labels: Record<string, string>; state: string }[] }>('alerts');
      return alerts.alerts.some((a) => a.labels.alertname === 'SandbarHostDown' && a.labels.instance === instance && a.state === 'pending') ? true : undefined;
    });
  });
});
