import { expect } from 'chai';
import { ProcessMetrics, requestKind, statFamilies, STAT_METRICS } from '../../../src/observability/metrics.js';
import { hostFamilies } from '../../../src/observability/host-metrics.js';
import { authFamilies } from '../../../src/observability/auth-metrics.js';
import { renderText } from '../../../src/observability/exposition.js';
import { sandbarFamilies } from '../../support/metric-catalogue.js';
import type { WorkerStats } from '../../../src/cluster/ipc.js';

const STATS: WorkerStats = {
  sessions: 3, heapUsed: 1, rss: 2, framesIn: 4, framesOut: 5, bytesOut: 6, crashes: 0, natsConnected: true, loopDelayMs: 1.5,
  masterShards: 10, replicaShards: 11, promotions: 1, handoffs: 2, pendingRequests: 0, roomDeliveries: 7, natsReconnects: 0,
  longpollSessions: 1, fenced: false, shardsWithoutMaster: 0,
  eventsPublished: 0, eventsDropped: 0, eventsPending: 0, webhookDeliveries: 0, webhookFailures: 0, webhookDeadLetters: 0, apiUnauthorized: 0,
  restoring: 0, heapLimit: 268435456, storageBytes: 1024, storageBudgetBytes: 107374182, storageWarnings: 0, storageRefusedFull: 0, storageRefusedShare: 0,
  storageRefusedShard: 0, storageRefusedLog: 0, storageSenders: 2, sendQuotaRefused: 0, inboxFull: 0, inboxExpired: 0, historyTrimmed: 0,
};


describe('observability: Sandbar metrics by convention', () => {
  it('names: sandbar_ prefix, counters end in _total and nothing else does, base units only, no duplicates', () => {
    const names = new Set<string>();
    const { worker, host } = sandbarFamilies();
    for (const f of [...worker, ...host]) {
      expect(f.name, f.name).to.match(/^sandbar_[a-z_]+$/);
      expect(names.has(f.name), `${f.name} twice`).to.equal(false);
      names.add(f.name);
      if (f.type === 'counter') expect(f.name).to.match(/_total$/);
      else expect(f.name).to.not.match(/_total$/);
      expect(f.name, 'base units: seconds and bytes').to.not.match(/_(ms|milliseconds|kb|mb)(_|$)/);
      if (f.type === 'histogram') expect(f.name).to.match(/_seconds$/);
      expect(f.help.length, `help of ${f.name}`).to.be.greaterThan(10);
    }
  });

  it('every WorkerStats field has a metric or a stated reason it has none (the map is total)', () => {
    expect(Object.keys(STAT_METRICS).sort()).to.deep.equal(Object.keys(STATS).sort());
    // Booleans become 1/0.
    const text = renderText(statFamilies(STATS));
    expect(text).to.include('sandbar_nats_connected 1\n');
    expect(text).to.include('sandbar_fenced 0\n');
    expect(text).to.include('sandbar_sessions 3\n');
  });

  it('maps each command op to its request kind', () => {
    expect(['u.dm', 'r.msg', 'u.join', 'r.join', 'u.ack', 'u.leave'].map(requestKind)).to.deep.equal(['dm', 'room_msg', 'user_join', 'room_join', 'ack', 'other']);
  });

  it('counts replies and times them; with histograms off it still counts and times nothing', () => {
    const m = new ProcessMetrics();
    m.reply('u.dm', 3);
    m.reply('u.dm', 30);
    m.takeover('failover', 1500);
    m.histograms = false;
    m.reply('u.dm', 3000);
    m.takeover('handoff', 10);
    const text = renderText(m.families());
    expect(text).to.include('sandbar_requests_total{kind="dm"} 3\n');
    expect(text).to.include('sandbar_request_duration_seconds_count{kind="dm"} 2\n');
    expect(text).to.include('sandbar_request_duration_seconds_bucket{kind="dm",le="0.005"} 1\n');
    expect(text).to.include('sandbar_request_duration_seconds_sum{kind="dm"} 0.033\n');
    expect(text).to.include('sandbar_shard_takeover_duration_seconds_count{kind="failover"} 1\n');
    expect(text).to.include('sandbar_shard_takeover_duration_seconds_count{kind="handoff"} 0\n');
  });

  it('keyed counters start at 0 for the known keys and grow new keys as they happen', () => {
    const m = new ProcessMetrics();
    m.sessionCloses.inc('SANDBAR_ERR_SLOW_CONSUMER');
    m.sessionCloses.inc('SANDBAR_ERR_SOMETHING_NEW');
    m.upgradesRefused.inc('accept_rate');
    const text = renderText(m.families());
    expect(text).to.include('sandbar_session_closes_total{reason="SANDBAR_ERR_SLOW_CONSUMER"} 1\n');
    expect(text).to.include('sandbar_session_closes_total{reason="SANDBAR_ERR_SOMETHING_NEW"} 1\n');
    expect(text).to.include('sandbar_session_closes_total{reason="client"} 0\n');
    expect(text).to.include('sandbar_upgrades_refused_total{reason="accept_rate"} 1\n');
    expect(text).to.include('sandbar_upgrades_refused_total{reason="ip_rate"} 0\n');
    expect(text).to.include('sandbar_fences_total{reason="lease"} 0\n');
  });

  it('optional stats (a feature that is off) are exported as 0', () => {
    const { eventsPublished: _e, ...without } = STATS;
    expect(renderText(statFamilies(without as WorkerStats))).to.include('sandbar_events_published_total 0\n');
  });

  it('auth counters: refusals by code (the known ones from 0), the proxy\'s answers, JWKS fetches, revoked users', () => {
    const none = renderText(authFamilies({ refused: {}, proxy: null, jwks: null, revokedUsers: 0 }));
    expect(none).to.include('sandbar_auth_failures_total{code="SANDBAR_ERR_AUTH_REVOKED"} 0\n');
    expect(none).to.include('sandbar_authz_proxy_answers_total{answer="failure"} 0\n');
    const some = renderText(authFamilies({ refused: { SANDBAR_ERR_AUTH_EXPIRED: 3 }, proxy: { requests: 9, allowed: 5, denied: 2, failures: 2, cacheHits: 4 }, jwks: { fetches: 7, failures: 1 }, revokedUsers: 2 }));
    expect(some).to.include('sandbar_auth_failures_total{code="SANDBAR_ERR_AUTH_EXPIRED"} 3\n');
    expect(some).to.include('sandbar_authz_proxy_answers_total{answer="deny"} 2\n');
    expect(some).to.include('sandbar_authz_proxy_cache_hits_total 4\n');
    expect(some).to.include('sandbar_jwks_fetch_failures_total 1\n');
    expect(some).to.include('sandbar_revoked_users 2\n');
  });

  it('build info carries the versions as labels, value 1', () => {
    const text = renderText(hostFamilies({ version: '1.2.3', node: 'v24.1.0', nats: '2.10.0', restarts: 1, workers: 2, workersUp: 1, hosts: 3, suspectHosts: 1, natsConnected: false, leaseValid: null, leaseLost: 2 }));
    expect(text).to.include('sandbar_build_info{version="1.2.3",node="v24.1.0",nats="2.10.0"} 1\n');
    expect(text, 'no lease before membership starts').to.not.include('sandbar_lease_valid');
    expect(text).to.include('sandbar_lease_lost_total 2\n');
  });
});
