import { expect } from 'chai';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { ConnectionLimits } from '../../../src/http/limits.js';
import { createLogger } from '../../../src/observability/logger.js';
import { metrics } from '../../../src/observability/metrics.js';
import pino from 'pino';
import { Writable } from 'node:stream';

const logger = createLogger({ level: 'silent', hostId: 't', worker: 0 });
const socket = (ip: string) => Object.assign(new EventEmitter(), { remoteAddress: ip }) as unknown as Socket;

describe('http/limits: checks before the upgrade', () => {
  const base = { workers: 2, ipConnectRate: 0, ipConnectBurst: 1, ipMaxSessions: 0, acceptRate: 0, acceptBurst: 1 };

  it('per-IP sessions: a worker holds ceil(max / workers) per address, counted until the socket closes', () => {
    const l = new ConnectionLimits({ ...base, ipMaxSessions: 5 }, logger, () => 0);
    const held = [1, 2, 3].map(() => socket('10.0.0.1'));
    expect(held.map((s) => l.admit(s))).to.deep.equal([null, null, null]);
    const r = l.admit(socket('10.0.0.1'));
    expect(r).to.deep.include({ status: 429, code: 'SANDBAR_ERR_TOO_MANY_CONNECTIONS', retryAfterS: 5 });
    expect(l.admit(socket('10.0.0.2'))).to.equal(null);
    held[0]!.emit('close');
    expect(l.sessionsOf('10.0.0.1')).to.equal(2);
    expect(l.admit(socket('10.0.0.1'))).to.equal(null);
  });

  it('per-IP rate: the worker share of the burst, then 429 with the seconds until the next token', () => {
    let now = 0;
    const l = new ConnectionLimits({ ...base, ipConnectRate: 2, ipConnectBurst: 4 }, logger, () => now);
    const res = [1, 2, 3].map(() => l.admit(socket('10.0.0.3')));
    expect(res.slice(0, 2)).to.deep.equal([null, null]);
    // 1 token a second per worker (2 / 2 workers): the next is 1 s away.
    expect(res[2]).to.deep.include({ status: 429, retryAfterS: 1 });
    expect(l.admit(socket('10.0.0.4'))).to.equal(null);
    now = 1000;
    expect(l.admit(socket('10.0.0.3'))).to.equal(null);
  });

  it('accept rate: 503 with a Retry-After that grows with the refused load of the last second', () => {
    let now = 0;
    const l = new ConnectionLimits({ ...base, acceptRate: 10, acceptBurst: 10 }, logger, () => now);
    for (let i = 0; i < 10; i++) expect(l.admit(socket(`10.1.0.${i}`))).to.equal(null);
    const hints = Array.from({ length: 40 }, (_, i) => l.admit(socket(`10.2.0.${i}`))!.retryAfterS);
    expect(hints[0]).to.equal(1);
    expect(hints[39]).to.equal(4);
    expect(l.admit(socket('10.3.0.1'))).to.deep.include({ status: 503, code: 'SANDBAR_ERR_OVERLOADED' });
    now = 2000;
    expect(l.admit(socket('10.3.0.2'))).to.equal(null);
  });

  it('forgets the least recently seen address past MAX_TRACKED_IPS (bounded memory)', async () => {
    const { MAX_TRACKED_IPS } = await import('../../../src/http/limits.js');
    const l = new ConnectionLimits({ ...base, ipConnectRate: 1, ipConnectBurst: 2 }, logger, () => 0);
    const map = (l as unknown as { ipBuckets: Map<string, unknown> }).ipBuckets;
    for (let i = 0; i < MAX_TRACKED_IPS + 10; i++) l.admit(socket(`ip${i}`));
    expect(map.size).to.equal(MAX_TRACKED_IPS);
    expect(map.has('ip0')).to.equal(false);
  });

  it('counts each refusal by reason, and logs shedding at info but refusals by address at warn (a person may need to look)', () => {
    const lines: { level: number; msg: string }[] = [];
    const sink = new Writable({ write(c, _e, cb) { lines.push(JSON.parse(String(c))); cb(); } });
    const log = pino({ level: 'info' }, sink);
    let now = 0;
    const before = { accept: metrics.upgradesRefused.get('accept_rate'), ipSessions: metrics.upgradesRefused.get('ip_sessions') };
    const shed = new ConnectionLimits({ ...base, acceptRate: 1, acceptBurst: 1 }, log, () => now);
    expect(shed.admit(socket('10.2.0.1'))).to.equal(null);
    expect(shed.admit(socket('10.2.0.2'))).to.deep.include({ status: 503 });
    now = 100;
    expect(shed.admit(socket('10.2.0.3'))).to.deep.include({ status: 503 });
    const byIp = new ConnectionLimits({ ...base, ipMaxSessions: 1 }, log, () => now);
    expect(byIp.admit(socket('10.2.0.9'))).to.equal(null);
    expect(byIp.admit(socket('10.2.0.9'))).to.deep.include({ status: 429 });
    expect(metrics.upgradesRefused.get('accept_rate') - before.accept).to.equal(2);
    expect(metrics.upgradesRefused.get('ip_sessions') - before.ipSessions).to.equal(1);
    expect(lines.map((l) => l.level)).to.deep.equal([30, 40]);
  });
});
