/**
 * The cluster page over time, in a real browser (Debian's chromium through
 * playwright-core), against two real hosts: it lives on the internal
 * listener only; it draws its graphs (sessions, frames/s, dm/s, event-loop
 * delay per worker) from the states it receives; it shows each worker's NATS
 * connection; a host whose primary stops (SIGSTOP: no heartbeats, its
 * workers lose their lease) is shown suspect and its workers fenced, and
 * both clear when it runs again; the search box finds where a user and a
 * room live and who is present. Screenshots go to test-artifacts/.
 */
import { expect } from 'chai';
import { existsSync, mkdirSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startNatsServer, type NatsServerHandle } from '../support/nats.js';
import { startHost, token, type HostHandle } from '../support/host.js';
import { RawClient } from '../support/clients.js';

const CHROMIUM = process.env.SANDBAR_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = 'test-artifacts';
const ADMIN = 'cluster-page-admin-token';
// Down only after 8 s, so a stopped host stays "suspect" long enough to be seen.
const FLAGS = {
  'cluster.heartbeatMs': 200, 'cluster.suspectAfterMs': 600, 'cluster.downAfterMs': 8000, 'cluster.selfFenceMs': 1500,
  shards: 64, 'admin.token': ADMIN,
};

describe('cluster page in chromium: graphs, NATS state, a suspect host, search', function () {
  this.timeout(90000);
  let nats: NatsServerHandle;
  let h1: HostHandle;
  let h2: HostHandle;
  let browser: Browser;
  let page: Page;
  const clients: RawClient[] = [];

  before(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`chromium not found at ${CHROMIUM}: install it (apt-get install -y chromium; .ci/run does) or set SANDBAR_CHROMIUM`);
    mkdirSync(ARTIFACTS, { recursive: true });
    nats = await startNatsServer();
    [h1, h2, browser] = await Promise.all([
      startHost({ nats: nats.url, workers: 1, flags: { ...FLAGS, hostId: 'h1' } }),
      startHost({ nats: nats.url, workers: 2, flags: { ...FLAGS, hostId: 'h2' } }),
      chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] }),
    ]);
    const ctx = await browser.newContext({ viewport: { width: 1300, height: 1000 } });
    ctx.setDefaultTimeout(15000);
    page = await ctx.newPage();
  });
  after(async () => {
    for (const c of clients) c.close();
    await browser?.close().catch(() => {});
    // A primary left stopped by a failed test would never exit on SIGTERM.
    for (const h of [h1, h2]) if (h?.proc.pid) { try { process.kill(h.proc.pid, 'SIGCONT'); } catch { /* gone */ } }
    await Promise.all([h1?.stop(), h2?.stop()]);
    await nats?.stop();
  });

  it('is served on the internal listener only: the public port answers 404 for /cluster and /metrics', async () => {
    for (const path of ['/cluster', '/cluster.js', '/metrics']) {
      expect((await fetch(`http://127.0.0.1:${h2.port}${path}`)).status, `public ${path}`).to.equal(404);
    }
    expect((await fetch(`http://127.0.0.1:${h2.adminPort}/cluster`)).status).to.equal(200);
    expect((await fetch(`http://127.0.0.1:${h2.port}/`)).status, 'the demo page stays public').to.equal(200);
  });

  it('draws sessions, frames/s, dm/s and event-loop delay per worker from what it receives, and each worker\'s NATS state', async () => {
    await page.goto(`http://127.0.0.1:${h2.adminPort}/cluster#token=${ADMIN}`);
    await page.waitForSelector('.host[data-host="h1"]');
    await page.waitForSelector('.host[data-host="h2"]');
    // Traffic for the graphs: sessions on both hosts, dms between them.
    for (let i = 0; i < 6; i++) {
      const c = await RawClient.open(i % 2 ? h1.url : h2.url, token(`u${i}`));
      await c.join(`user:u${i}`, {}, 'u');
      clients.push(c);
    }
    await clients[0]!.join('room:lobby', {}, 'r');
    let n = 0;
    const traffic = setInterval(() => { for (let i = 0; i < 6; i++) void clients[i]!.request('u', `user:u${i}`, 'dm', { to: `u${(i + 1) % 6}`, id: `m${++n}`, body: { n } }).catch(() => {}); }, 100);
    try {
      await page.waitForFunction(() => (window as unknown as { sandbarCluster: { history: { times: unknown[] } } }).sandbarCluster.history.times.length >= 5);
      await page.waitForFunction(() => {
        const last = (window as unknown as { sandbarCluster: { last: { hosts: { workers: { dmPerS: number | null }[] }[] } } }).sandbarCluster.last;
        return last.hosts.flatMap((h) => h.workers).some((w) => (w.dmPerS ?? 0) > 0);
      });
    } finally {
      clearInterval(traffic);
    }
    for (const id of ['sessions', 'frames', 'dms']) {
      expect(await page.locator(`svg[data-chart="${id}"] path.chart-line`).count(), `chart ${id}`).to.equal(1);
    }
    // One line per worker: h1.0, h2.0, h2.1.
    await page.waitForFunction(() => document.querySelectorAll('svg[data-chart="loop"] path.chart-line').length === 3);
    // The 6 clients and the page's own socket.
    expect(await page.locator('#totals').textContent()).to.match(/7 session\(s\).* \d+ dm\/s/);
    for (const w of ['h1.0', 'h2.0', 'h2.1']) expect(await page.locator(`tr[data-worker="${w}"] td`).nth(9).textContent(), `NATS of ${w}`).to.match(/^up/);
    await page.screenshot({ path: `${ARTIFACTS}/cluster-page-graphs.png`, fullPage: true });
  });

  it('finds where a user and a room live, with their presence', async () => {
    await page.selectOption('#lookup-kind', 'user');
    await page.fill('#lookup-id', 'u1');
    await page.click('#lookup button[type=submit]');
    await page.waitForSelector('.lookup-table[data-kind="user"]');
    const user = await page.locator('#lookup-result').textContent();
    expect(user).to.match(/master\s*h[12]\.\d \(epoch \d+\)/);
    expect(user).to.match(/online\s*yes/);
    expect(user).to.include('u1:');
    await page.selectOption('#lookup-kind', 'room');
    await page.fill('#lookup-id', 'lobby');
    await page.click('#lookup button[type=submit]');
    await page.waitForSelector('.lookup-table[data-kind="room"]');
    const room = await page.locator('#lookup-result').textContent();
    expect(room).to.match(/members\s*1/);
    expect(room).to.include('u0:');
    await page.fill('#lookup-id', 'bad id!');
    await page.click('#lookup button[type=submit]');
    await page.waitForSelector('#lookup-result .error:has-text("SANDBAR_ERR_INVALID_ID")');
    await page.screenshot({ path: `${ARTIFACTS}/cluster-page-search.png`, fullPage: true });
  });

  it('shows a host whose heartbeats stop as suspect and its workers fenced, and clears both when it runs again', async () => {
    process.kill(h1.proc.pid!, 'SIGSTOP');
    try {
      await page.waitForSelector('.host.suspect[data-host="h1"] .badge');
      // Its worker runs on without a lease from its stopped primary: it fences itself (cluster.selfFenceMs).
      await page.waitForSelector('tr.fenced[data-worker="h1.0"]');
      expect(await page.locator('#totals').textContent()).to.include('(1 suspect)');
      await page.screenshot({ path: `${ARTIFACTS}/cluster-page-suspect.png`, fullPage: true });
    } finally {
      process.kill(h1.proc.pid!, 'SIGCONT');
    }
    await page.waitForSelector('.host[data-host="h1"]:not(.suspect)');
    await page.waitForSelector('tr[data-worker="h1.0"]:not(.fenced)', { timeout: 20000 });
  });
});
