/**
 * The web pages in a real browser: Debian's chromium driven by playwright-core.
 * Two hosts on one NATS; pages sign in through the dev token endpoint, chat in
 * a room and by dm, see each other's presence; one page uses LongPoll. Then
 * host h1 is killed with SIGKILL: the page served by h1 shows its reconnect
 * banner and comes back once h1 is restarted on the same port, and the
 * cluster page (served by h2) shows the failover with its duration.
 * Screenshots go to test-artifacts/.
 */
import { expect } from 'chai';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { freePort, useLab, withNats, type HostHandle } from '../support/index.js';

const CHROMIUM = process.env.SANDBAR_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = 'test-artifacts';
const ADMIN = 'test-admin-token';
const FLAGS = {
  'cluster.heartbeatMs': 200, 'cluster.suspectAfterMs': 600, 'cluster.downAfterMs': 1200, 'cluster.selfFenceMs': 700, shards: 64,
  'auth.devTokenEndpoint': true, 'admin.token': ADMIN, 'request.timeoutMs': 8000,
};

const SHIPPED = join(import.meta.dirname, '../../config/sandbar.toml');
const { 'auth.devTokenEndpoint': _on, ...withoutDevTokens } = FLAGS;

const http = (h: HostHandle) => h.url.replace(/^ws/, 'http');

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: `${ARTIFACTS}/browser-${name}.png`, fullPage: true });
}

async function signIn(ctx: BrowserContext, base: string, user: string, query = ''): Promise<Page> {
  const page = await ctx.newPage();
  await page.goto(`${base}/${query}`);
  await page.fill('#name', user);
  await page.click('#signin button[type=submit]');
  await page.waitForSelector('#status.online');
  await page.waitForSelector(`#presence li[data-user="${user}"]`);
  return page;
}

async function say(page: Page, text: string): Promise<void> {
  await page.fill('#msg-input', text);
  await page.press('#msg-input', 'Enter');
}

async function dm(page: Page, to: string, text: string): Promise<void> {
  await page.fill('#dm-to', to);
  await page.fill('#dm-input', text);
  await page.press('#dm-input', 'Enter');
}

describe('web pages in chromium: chat, presence, LongPoll, a host killed', function () {
  this.timeout(90000);
  let browser: Browser;
  after(async () => { await browser?.close().catch(() => {}); });
  // Every host started here (h1 twice) is stopped after the suite, a killed one too (its temp dir).
  const lab = useLab();
  const nats = withNats();
  let h1: HostHandle;
  let h2: HostHandle;
  let h1Port: number;
  const contexts: BrowserContext[] = [];

  before(async () => {
    // Fail loudly: a browser test that silently skips would hide a broken page.
    if (!existsSync(CHROMIUM)) throw new Error(`chromium not found at ${CHROMIUM}: install it (apt-get install -y chromium; .ci/run does) or set SANDBAR_CHROMIUM`);
    mkdirSync(ARTIFACTS, { recursive: true });
    h1Port = await freePort();
    [h1, h2, browser] = await Promise.all([
      lab.startHost({ nats: nats.url, workers: 1, flags: { ...FLAGS, hostId: 'h1', 'http.port': h1Port } }),
      // h2 runs from the shipped config/sandbar.toml, as `npm start` does (only
      // addresses, ports, secret and timings come from flags): bob signing in
      // there shows that the shipped file turns the dev token endpoint on.
      lab.startHost({ nats: nats.url, workers: 1, flags: { config: SHIPPED, ...withoutDevTokens, hostId: 'h2' } }),
      chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] }),
    ]);
  });

  async function context(): Promise<BrowserContext> {
    const c = await browser.newContext({ viewport: { width: 1200, height: 700 } });
    c.setDefaultTimeout(15000);
    contexts.push(c);
    return c;
  }

  it('two pages chat in a room and by dm; presence updates on both; a dm sent while away arrives on return', async () => {
    const [ca, cb] = [await context(), await context()];
    const alice = await signIn(ca, http(h1), 'alice');
    const bob = await signIn(cb, http(h2), 'bob');
    // Presence: each page lists both.
    await alice.waitForSelector('#presence li[data-user="bob"]');
    await bob.waitForSelector('#presence li[data-user="alice"]');

    await say(alice, 'hello from alice');
    await bob.waitForSelector('#messages li.msg:has-text("hello from alice")');
    await say(bob, 'hi alice');
    await alice.waitForSelector('#messages li.msg:has-text("hi alice")');

    await dm(bob, 'alice', 'a secret for alice');
    await alice.waitForSelector('#dm-list li.dm.in[data-from="bob"]:has-text("a secret for alice")');
    // Stored by the server, then delivered (the receipt from alice's page).
    await bob.waitForSelector('#dm-list li.dm.out[data-state="delivered"]');
    await shot(alice, 'alice-chat');
    await shot(bob, 'bob-chat');

    // Bob goes away: alice sees him leave; her dm waits in his inbox.
    await bob.close();
    await alice.waitForSelector('#presence li[data-user="bob"]', { state: 'detached' });
    await dm(alice, 'bob', 'while you were away');
    await alice.waitForSelector('#dm-list li.dm.out[data-state="stored"]');
    const back = await cb.newPage();
    await back.goto(`${http(h2)}/?user=bob&autologin=1`);
    await back.waitForSelector('#dm-list li.dm.in[data-from="alice"]:has-text("while you were away")');
    await alice.waitForSelector('#presence li[data-user="bob"]');
    await alice.waitForSelector('#dm-list li.dm.out[data-state="delivered"]:has-text("while you were away")');
    await shot(back, 'bob-back');
  });

  it('a page on LongPoll (?transport=longpoll) chats with a page on WebSocket', async () => {
    const cc = await context();
    const carol = await signIn(cc, http(h1), 'carol', '?transport=longpoll');
    expect(await carol.textContent('#status')).to.include('LongPoll');
    const [page] = contexts[0]!.pages();
    await page!.waitForSelector('#presence li[data-user="carol"]');
    await say(carol, 'polling along');
    await page!.waitForSelector('#messages li.msg:has-text("polling along")');
    await say(page!, 'welcome carol');
    await carol.waitForSelector('#messages li.msg:has-text("welcome carol")');
    await shot(carol, 'carol-longpoll');
  });

  it('a page whose WebSocket is swallowed (opens, never answers) falls back to LongPoll by itself and chats', async () => {
    const ce = await context();
    // As a proxy that accepts the upgrade and passes nothing: the phoenix
    // client's health check ping goes unanswered, and longPollFallbackMs
    // (2.5 s on the demo page) moves it to LongPoll.
    await ce.routeWebSocket(/\/socket\/websocket/, () => {});
    const erin = await signIn(ce, http(h2), 'erin');
    expect(await erin.textContent('#status')).to.include('LongPoll');
    const carol = contexts[2]!.pages()[0]!;
    await say(erin, 'fell back fine');
    await carol.waitForSelector('#messages li.msg:has-text("fell back fine")');
    await erin.close();
  });

  it('kill -9 of h1: its page shows the reconnect banner and recovers when h1 is back; the cluster page shows the failover', async () => {
    const admin = await (await context()).newPage();
    // The cluster page lives on the internal listener (admin.port), not the public port.
    await admin.goto(`http://127.0.0.1:${h2.adminPort}/cluster#token=${ADMIN}`);
    await admin.waitForSelector('.host[data-host="h1"]');
    await admin.waitForSelector('.host[data-host="h2"]');
    expect(await admin.locator('.shard').count()).to.equal(64);
    expect(await admin.locator('.shard[data-master="h1"]').count()).to.be.greaterThan(0);
    await shot(admin, 'cluster-before');

    const alice = contexts[0]!.pages()[0]!;
    const bob = contexts[1]!.pages().at(-1)!;
    h1.killHost();
    await alice.waitForSelector('#banner:not(.hidden)');
    await alice.waitForSelector('#presence.stale', { state: 'attached' });
    await bob.waitForSelector('#presence li[data-user="alice"]', { state: 'detached' });
    await admin.waitForSelector('.event.failover:has-text("h1.0")');
    await admin.waitForSelector('.host[data-host="h1"]', { state: 'detached' });
    expect(await admin.locator('.shard[data-master="h1"]').count()).to.equal(0);
    const row = await admin.locator('.event.failover').first().textContent();
    expect(row).to.match(/h1\.0.*h2\.0.*\d+ ms/);
    await shot(alice, 'alice-reconnecting');
    await shot(admin, 'cluster-failover');

    // h1 comes back on the same port: the page reconnects and rejoins by itself.
    h1 = await lab.startHost({ nats: nats.url, workers: 1, flags: { ...FLAGS, hostId: 'h1', 'http.port': h1Port } });
    await alice.waitForSelector('#banner.hidden', { state: 'attached', timeout: 30000 });
    await alice.waitForSelector('#status.online');
    await bob.waitForSelector('#presence li[data-user="alice"]');
    await say(alice, 'back again');
    await bob.waitForSelector('#messages li.msg:has-text("back again")');
    await admin.waitForSelector('.host[data-host="h1"]');
    await shot(alice, 'alice-recovered');
    await shot(admin, 'cluster-after');
  });
});
