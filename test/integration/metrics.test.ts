/**
 * /metrics of one real host: only on the internal listener by default, in
 * the Prometheus text format with a series per worker; 503 naming the worker
 * when one cannot answer (a stopped process), never a partial answer; back on
 * the public port with admin.listener = "public"; the session-close,
 * refusal and histogram series move with what clients do.
 */
import { expect } from 'chai';
import http from 'node:http';
import { startNatsServer, type NatsServerHandle } from '../support/nats.js';
import { startHost, token, type HostHandle } from '../support/host.js';
import { RawClient } from '../support/clients.js';

/** GET /metrics on a connection of its own (no keep-alive: each scrape is accepted by the next worker in turn). */
function scrape(port: number): Promise<{ status: number; type: string | null; text: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode!, type: res.headers['content-type'] ?? null, text, ms: Date.now() - t0 }));
    }).on('error', reject);
  });
}

function value(text: string, series: string): number {
  let sum = 0;
  let seen = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(series.replace(/\}$/, ''))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    seen = true;
  }
  return seen ? sum : NaN;
}

function sum(text: string, re: RegExp): number {
  return [...text.matchAll(re)].reduce((a, m) => a + Number(m[1]), 0);
}

describe('metrics: /metrics of a host', function () {
  this.timeout(60000);
  let nats: NatsServerHandle;
  let host: HostHandle;
  before(async () => {
    nats = await startNatsServer();
    host = await startHost({ nats: nats.url, workers: 2, flags: { 'session.idleTimeoutMs': 1000 } });
  });
  after(async () => {
    for (const pid of host?.workerPids().values() ?? []) { try { process.kill(pid, 'SIGCONT'); } catch { /* gone */ } }
    await host?.stop();
    await nats?.stop();
  });

  it('is served on the internal port only, as Prometheus text with a series per worker and the primary\'s process metrics', async () => {
    expect(host.adminPort).to.be.greaterThan(0).and.not.equal(host.port);
    expect((await fetch(`http://127.0.0.1:${host.port}/metrics`)).status, 'public port').to.equal(404);
    const r = await scrape(host.adminPort);
    expect(r.status).to.equal(200);
    expect(r.type).to.equal('text/plain; version=0.0.4; charset=utf-8');
    expect(r.text).to.match(/^# TYPE sandbar_sessions gauge$/m);
    expect(r.text).to.match(/^sandbar_sessions\{host="h1",worker="0"\} \d+$/m);
    expect(r.text).to.match(/^sandbar_sessions\{host="h1",worker="1"\} \d+$/m);
    expect(r.text).to.match(/^process_resident_memory_bytes\{host="h1",worker="primary"\} \d+$/m);
    expect(r.text).to.match(/^sandbar_build_info\{host="h1",version="[^"]+",node="v\d+[^"]*",nats="\d+\.\d+\.\d+"\} 1$/m);
    // One HELP and one TYPE per family, however many workers.
    expect(r.text.match(/^# TYPE sandbar_sessions /gm)).to.have.length(1);
    expect((await fetch(`http://127.0.0.1:${host.adminPort}/health/ready`)).status).to.equal(200);
  });

  it('counts what clients do: dm latency, refusals, slow-to-idle closes, refused tokens', async () => {
    const before = (await scrape(host.adminPort)).text;
    const a = await RawClient.open(host.url, token('ma'));
    await a.join('user:ma', {}, 'u');
    await a.request('u', 'user:ma', 'dm', { to: 'mb', id: 'x1', body: 'hi' });
    await a.request('u', 'user:ma', 'dm', { to: 'bad id!', body: 'hi' });
    await RawClient.open(host.url, null).then((c) => c.close(), () => {});
    // An idle session is closed by the server after session.idleTimeoutMs (1 s here).
    const idle = await RawClient.open(host.url, token('idle'));
    expect(await idle.closed).to.equal(4000);
    a.close();
    const after = (await scrape(host.adminPort)).text;
    const delta = (s: string) => value(after, s) - value(before, s);
    expect(delta('sandbar_requests_total{host="h1",worker="0",kind="dm"}') + delta('sandbar_requests_total{host="h1",worker="1",kind="dm"}')).to.equal(1);
    expect(value(after, 'sandbar_request_duration_seconds_count{host="h1",worker="0",kind="dm"}') + value(after, 'sandbar_request_duration_seconds_count{host="h1",worker="1",kind="dm"}')).to.be.at.least(1);
    expect(after).to.match(/^sandbar_refusals_total\{host="h1",worker="\d",code="SANDBAR_ERR_INVALID_ID"\} 1$/m);
    // The idle session, and maybe the first one too (it idles for a second as well).
    expect(sum(after, /^sandbar_session_closes_total\{host="h1",worker="\d",reason="SANDBAR_ERR_IDLE_TIMEOUT"\} (\d+)$/gm)).to.be.within(1, 2);
    expect(after).to.match(/^sandbar_auth_failures_total\{host="h1",worker="\d",code="SANDBAR_ERR_AUTH_MISSING"\} 1$/m);
  });

  it('answers 503 naming the worker that cannot answer (a stopped process), and 200 again once it runs', async () => {
    const pid = host.workerPids().get(1)!;
    process.kill(pid, 'SIGSTOP');
    // Continued after 2.5 s, well within cluster.workerHangMs (5 s): a scrape accepted by the stopped worker
    // itself waits for that; those accepted by worker 0 must not.
    const resume = setTimeout(() => process.kill(pid, 'SIGCONT'), 2500);
    let results: Awaited<ReturnType<typeof scrape>>[];
    try {
      // Four connections: the primary hands them to the workers in turn (rr), so worker 0 takes some.
      results = await Promise.all([1, 2, 3, 4].map(() => scrape(host.adminPort)));
    } finally {
      clearTimeout(resume);
      process.kill(pid, 'SIGCONT');
    }
    const failed = results.filter((r) => r.status === 503);
    expect(failed.length, JSON.stringify(results.map((r) => [r.status, r.ms]))).to.be.at.least(1);
    for (const r of failed) {
      expect(r.text).to.match(/^# metrics unavailable: worker 1 of host h1 did not answer within 1500 ms\n$/);
    }
    expect(Math.min(...failed.map((r) => r.ms)), 'answered at the gather timeout, not when the worker came back').to.be.below(2400);
    for (const r of results) expect([200, 503]).to.include(r.status);
    const deadline = Date.now() + 5000;
    let ok = 0;
    while (Date.now() < deadline && ok < 3) ok = (await scrape(host.adminPort)).status === 200 ? ok + 1 : 0;
    expect(ok).to.equal(3);
    // It was not killed as hung (stopped for less than cluster.workerHangMs).
    expect(host.workerPids().get(1)).to.equal(pid);
  });

  it('with admin.listener = "public", /metrics and /cluster are on the public port and no second listener opens', async () => {
    const one = await startHost({ nats: nats.url, workers: 1, flags: { hostId: 'h9', 'admin.listener': 'public', 'admin.token': 't0ken' } });
    try {
      expect(one.adminPort).to.equal(one.port);
      const ready = one.lines.find((l) => l.msg === 'host ready');
      expect(ready?.adminPort).to.equal(null);
      const r = await scrape(one.port);
      expect(r.status).to.equal(200);
      expect(r.text).to.match(/^sandbar_sessions\{host="h9",worker="0"\} 0$/m);
      expect((await fetch(`http://127.0.0.1:${one.port}/cluster`)).status).to.equal(200);
    } finally {
      await one.stop();
    }
  });
});
