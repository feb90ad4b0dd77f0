/**
 * The NATS micro v1 service against a real nats-server: every discovery reply
 * is validated with the JSON Schemas the `nats` CLI uses (copied into
 * test/fixtures/nats-micro-v1, see SOURCE.md there), and the requests are the
 * ones the CLI sends (empty payload to `$SRV.<VERB>[.<name>[.<id>]]`).
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import type { ValidateFunction } from 'ajv';
import ajvFormats from 'ajv-formats';
import { connect, Empty, NoRespondersError, RequestError } from '@nats-io/transport-node';
import type { Msg, NatsConnection } from '@nats-io/transport-node';
import { startNatsServer, type NatsServerHandle } from '../../support/nats.js';
import { SandbarError } from '../../../src/errors.js';
import {
  startMicroService,
  serviceErrorStatus,
  SERVICE_ERROR_HEADER,
  SERVICE_ERROR_CODE_HEADER,
  type EndpointSpec,
  type MicroService,
  type MicroStatsResponse,
  type MicroInfoResponse,
  type MicroPingResponse,
} from '../../../src/admin/index.js';

const SCHEMA_DIR = new URL('../../fixtures/nats-micro-v1/', import.meta.url);

function loadSchemas(): { ping: ValidateFunction; info: ValidateFunction; stats: ValidateFunction } {
  const ajv = new Ajv({ allErrors: true, strict: true });
  // ajv-formats is CommonJS; under nodenext its default import is the module object.
  ajvFormats.default(ajv);
  const load = (f: string) => ajv.compile(JSON.parse(readFileSync(new URL(f, SCHEMA_DIR), 'utf8')) as object);
  return { ping: load('ping_response.json'), info: load('info_response.json'), stats: load('stats_response.json') };
}

function expectValid(validate: ValidateFunction, value: unknown): void {
  const ok = validate(value);
  expect(ok, `schema errors: ${JSON.stringify(validate.errors)} for ${JSON.stringify(value)}`).to.equal(true);
}

/**
 * Like the CLI: one request, then every reply until nothing more arrives for a
 * short while. No instance at all is an empty list (the server answers "no
 * responders", which nats.js raises as an error).
 */
async function collect(nc: NatsConnection, subject: string): Promise<Msg[]> {
  const out: Msg[] = [];
  try {
    const it = await nc.requestMany(subject, Empty, { strategy: 'stall', stall: 250, maxWait: 3000 });
    for await (const m of it) out.push(m);
  } catch (err) {
    const noResponders = err instanceof NoRespondersError || (err instanceof RequestError && err.isNoResponders());
    if (!noResponders || out.length > 0) throw err;
  }
  return out;
}

const ECHO_SUBJECT = 'sandbar.test.echo';
const FAIL_SUBJECT = 'sandbar.test.fail';

describe('admin/micro: NATS micro v1 service', function () {
  let server: NatsServerHandle;
  let nc1: NatsConnection;
  let nc2: NatsConnection;
  let client: NatsConnection;
  let svc1: MicroService;
  let svc2: MicroService;
  let schemas: ReturnType<typeof loadSchemas>;

  function endpoints(tag: string): EndpointSpec[] {
    return [
      {
        name: 'echo',
        subject: ECHO_SUBJECT,
        metadata: { kind: 'test' },
        handler: (req) => ({ echo: req.json<unknown>(), by: tag }),
      },
      {
        name: 'fail',
        subject: FAIL_SUBJECT,
        // Async on purpose: a rejected promise must take the same error path as a throw.
        handler: async (req) => {
          await Promise.resolve();
          const what = req.string();
          if (what === 'missing') throw new SandbarError('SANDBAR_ERR_NOT_FOUND', 'no such room: r1');
          if (what === 'bad') throw new SandbarError('SANDBAR_ERR_BAD_PAYLOAD', 'expected a room id');
          if (what === 'bytes') return new TextEncoder().encode('raw');
          throw new Error('secret internal detail');
        },
      },
    ];
  }

  before(async function () {
    schemas = loadSchemas();
    server = await startNatsServer({ jetstream: false });
    [nc1, nc2, client] = await Promise.all([connect({ servers: server.url }), connect({ servers: server.url }), connect({ servers: server.url })]);
    const base = { name: 'sandbar', version: '0.1.0', description: 'Sandbar admin', metadata: { host: 'test' } };
    svc1 = startMicroService(nc1, { ...base, endpoints: endpoints('one'), onError: () => {} });
    svc2 = startMicroService(nc2, { ...base, endpoints: endpoints('two'), onError: () => {} });
    // The subscriptions are sent asynchronously; flush so the server has them before the client asks.
    await Promise.all([nc1.flush(), nc2.flush()]);
  });

  after(async function () {
    await svc1?.stop();
    await svc2?.stop();
    await Promise.all([nc1?.close(), nc2?.close(), client?.close()]);
    await server?.stop();
  });

  it('gives each instance a unique 22-character id', function () {
    expect(svc1.id).to.match(/^[0-9A-Za-z]{22}$/);
    expect(svc2.id).to.match(/^[0-9A-Za-z]{22}$/);
    expect(svc1.id).to.not.equal(svc2.id);
  });

  it('answers $SRV.PING from every instance with a valid ping_response', async function () {
    const replies = await collect(client, '$SRV.PING');
    expect(replies).to.have.length(2);
    for (const m of replies) expectValid(schemas.ping, m.json());
    const ids = replies.map((m) => m.json<MicroPingResponse>().id).sort();
    expect(ids).to.deep.equal([svc1.id, svc2.id].sort());
    expect(replies[0].json<MicroPingResponse>().type).to.equal('io.nats.micro.v1.ping_response');
  });

  it('answers $SRV.PING.<name> and $SRV.PING.<name>.<id>', async function () {
    expect(await collect(client, '$SRV.PING.sandbar')).to.have.length(2);
    const one = await collect(client, `$SRV.PING.sandbar.${svc2.id}`);
    expect(one).to.have.length(1);
    expectValid(schemas.ping, one[0].json());
    expect(one[0].json<MicroPingResponse>().id).to.equal(svc2.id);
    expect(await collect(client, '$SRV.PING.other')).to.have.length(0);
  });

  it('answers $SRV.INFO.sandbar from every instance with a valid info_response', async function () {
    const replies = await collect(client, '$SRV.INFO.sandbar');
    expect(replies).to.have.length(2);
    for (const m of replies) {
      const info = m.json<MicroInfoResponse>();
      expectValid(schemas.info, info);
      expect(info.type).to.equal('io.nats.micro.v1.info_response');
      expect(info.description).to.equal('Sandbar admin');
      expect(info.metadata).to.deep.equal({ host: 'test' });
      expect(info.endpoints).to.deep.equal([
        { name: 'echo', subject: ECHO_SUBJECT, queue_group: 'q', metadata: { kind: 'test' } },
        { name: 'fail', subject: FAIL_SUBJECT, queue_group: 'q', metadata: {} },
      ]);
    }
    const one = await collect(client, `$SRV.INFO.sandbar.${svc1.id}`);
    expect(one).to.have.length(1);
    expectValid(schemas.info, one[0].json());
    expect((await collect(client, '$SRV.INFO')).length).to.equal(2);
  });

  it('answers $SRV.STATS.sandbar and $SRV.STATS.sandbar.<id> with valid stats_responses', async function () {
    const replies = await collect(client, '$SRV.STATS.sandbar');
    expect(replies).to.have.length(2);
    for (const m of replies) {
      const stats = m.json<MicroStatsResponse>();
      expectValid(schemas.stats, stats);
      expect(stats.type).to.equal('io.nats.micro.v1.stats_response');
      // RFC 3339 with nine fraction digits, as Go writes time.RFC3339Nano.
      expect(stats.started).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
      expect(Math.abs(Date.parse(stats.started) - Date.now())).to.be.lessThan(60_000);
      for (const e of stats.endpoints) {
        expect(e.last_error).to.be.a('string');
        expect(e.queue_group).to.equal('q');
      }
    }
    const one = await collect(client, `$SRV.STATS.sandbar.${svc1.id}`);
    expect(one).to.have.length(1);
    expectValid(schemas.stats, one[0].json());
    expect(one[0].json<MicroStatsResponse>().id).to.equal(svc1.id);
    expect((await collect(client, '$SRV.STATS')).length).to.equal(2);
  });

  async function allStats(): Promise<MicroStatsResponse[]> {
    const replies = await collect(client, '$SRV.STATS.sandbar');
    return replies.map((m) => {
      const s = m.json<MicroStatsResponse>();
      expectValid(schemas.stats, s);
      return s;
    });
  }

  function endpointTotals(stats: MicroStatsResponse[], name: string) {
    const eps = stats.flatMap((s) => s.endpoints.filter((e) => e.name === name));
    return {
      requests: eps.reduce((n, e) => n + e.num_requests, 0),
      errors: eps.reduce((n, e) => n + e.num_errors, 0),
      time: eps.reduce((n, e) => n + e.processing_time, 0),
      eps,
    };
  }

  it('serves an endpoint once per request across the queue group, and counts it', async function () {
    const before = endpointTotals(await allStats(), 'echo');
    const N = 20;
    const by = new Set<string>();
    for (let i = 0; i < N; i++) {
      const r = await client.request(ECHO_SUBJECT, JSON.stringify({ i }), { timeout: 2000 });
      const body = r.json<{ echo: { i: number }; by: string }>();
      expect(body.echo).to.deep.equal({ i });
      by.add(body.by);
    }
    const after = endpointTotals(await allStats(), 'echo');
    // Queue group: each request reached exactly one instance (plain subscriptions would count 2N).
    expect(after.requests - before.requests).to.equal(N);
    expect(after.errors - before.errors).to.equal(0);
    expect(after.time).to.be.greaterThan(before.time);
    for (const e of after.eps) {
      expect(Number.isInteger(e.processing_time)).to.equal(true);
      expect(Number.isInteger(e.average_processing_time)).to.equal(true);
      if (e.num_requests > 0) {
        expect(e.processing_time).to.be.greaterThan(0);
        expect(e.average_processing_time).to.equal(Math.floor(e.processing_time / e.num_requests));
      }
      expect(e.last_error).to.equal('');
    }
    expect(by.size).to.be.greaterThan(0);
  });

  it('turns a thrown SandbarError into an error reply and counts it', async function () {
    const r = await client.request(FAIL_SUBJECT, 'bad', { timeout: 2000 });
    expect(r.headers?.get(SERVICE_ERROR_HEADER)).to.equal('expected a room id');
    expect(r.headers?.get(SERVICE_ERROR_CODE_HEADER)).to.equal('400');
    expect(r.json()).to.deep.equal({ error: { code: 'SANDBAR_ERR_BAD_PAYLOAD', message: 'expected a room id' } });

    const stats = endpointTotals(await allStats(), 'fail');
    expect(stats.errors).to.equal(1);
    expect(stats.requests).to.equal(1);
    const failed = stats.eps.find((e) => e.num_errors === 1)!;
    expect(failed.last_error).to.equal('SANDBAR_ERR_BAD_PAYLOAD: expected a room id');
    expect(failed.processing_time).to.be.greaterThan(0);
  });

  it('answers 404 for NOT_FOUND codes and 500 without internals for other errors', async function () {
    const nf = await client.request(FAIL_SUBJECT, 'missing', { timeout: 2000 });
    expect(nf.headers?.get(SERVICE_ERROR_CODE_HEADER)).to.equal('404');
    expect(nf.json()).to.deep.equal({ error: { code: 'SANDBAR_ERR_NOT_FOUND', message: 'no such room: r1' } });

    const internal = await client.request(FAIL_SUBJECT, 'boom', { timeout: 2000 });
    expect(internal.headers?.get(SERVICE_ERROR_CODE_HEADER)).to.equal('500');
    expect(internal.headers?.get(SERVICE_ERROR_HEADER)).to.equal('internal error');
    expect(internal.json()).to.deep.equal({ error: { code: 'SANDBAR_ERR_INTERNAL', message: 'internal error' } });

    const raw = await client.request(FAIL_SUBJECT, 'bytes', { timeout: 2000 });
    expect(raw.headers?.get(SERVICE_ERROR_HEADER) ?? '').to.equal('');
    expect(raw.string()).to.equal('raw');

    const stats = endpointTotals(await allStats(), 'fail');
    expect(stats.errors).to.equal(3);
    expect(stats.requests).to.equal(4);
  });

  it('maps error codes to service error statuses', function () {
    expect(serviceErrorStatus(new SandbarError('SANDBAR_ERR_BAD_PAYLOAD', 'x'))).to.equal(400);
    expect(serviceErrorStatus(new SandbarError('SANDBAR_ERR_UNMATCHED_TOPIC', 'x'))).to.equal(400);
    expect(serviceErrorStatus(new SandbarError('SANDBAR_ERR_CONFIG_INVALID', 'x'))).to.equal(400);
    expect(serviceErrorStatus(new SandbarError('SANDBAR_ERR_NOT_FOUND', 'x'))).to.equal(404);
    // The registry's httpStatus wins where there is one.
    expect(serviceErrorStatus(new SandbarError('SANDBAR_ERR_AUTH_INVALID', 'x'))).to.equal(403);
    expect(serviceErrorStatus(new SandbarError('SANDBAR_ERR_SHUTTING_DOWN', 'x'))).to.equal(503);
    expect(serviceErrorStatus(new SandbarError('SANDBAR_ERR_INTERNAL', 'x'))).to.equal(500);
    expect(serviceErrorStatus(new SandbarError('SANDBAR_ERR_UNAVAILABLE', 'x'))).to.equal(503);
    expect(serviceErrorStatus(new Error('x'))).to.equal(500);
    // An explicit status on the error overrides the mapping.
    expect(serviceErrorStatus(Object.assign(new SandbarError('SANDBAR_ERR_INTERNAL', 'x'), { status: 409 }))).to.equal(409);
    expect(serviceErrorStatus(Object.assign(new SandbarError('SANDBAR_ERR_BAD_PAYLOAD', 'x'), { status: 200 }))).to.equal(400);
  });

  it('rejects names and versions the protocol does not allow', function () {
    const ep: EndpointSpec = { name: 'e', subject: 's', handler: () => 1 };
    const bad = (opts: Parameters<typeof startMicroService>[1]) => {
      try {
        startMicroService(client, opts);
      } catch (err) {
        return err instanceof SandbarError ? err.code : String(err);
      }
      return 'no error';
    };
    expect(bad({ name: 'sand bar', version: '1.0.0', endpoints: [ep] })).to.equal('SANDBAR_ERR_CONFIG_INVALID');
    expect(bad({ name: 'sandbar', version: '1.0', endpoints: [ep] })).to.equal('SANDBAR_ERR_CONFIG_INVALID');
    expect(bad({ name: 'sandbar', version: '1.0.0', endpoints: [{ ...ep, name: 'a.b' }] })).to.equal('SANDBAR_ERR_CONFIG_INVALID');
    expect(bad({ name: 'sandbar', version: '1.0.0', endpoints: [ep, ep] })).to.equal('SANDBAR_ERR_CONFIG_INVALID');
  });

  it('info() and stats() are the same documents the service sends', function () {
    expectValid(schemas.info, svc1.info());
    expectValid(schemas.stats, svc1.stats());
    expect(svc1.stats().id).to.equal(svc1.id);
  });

  it('stop() removes the instance from PING answers, is idempotent, and the other instance keeps serving', async function () {
    await svc2.stop();
    await svc2.stop();
    const replies = await collect(client, '$SRV.PING');
    expect(replies.map((m) => m.json<MicroPingResponse>().id)).to.deep.equal([svc1.id]);
    expect(await collect(client, `$SRV.STATS.sandbar.${svc2.id}`)).to.have.length(0);
    for (let i = 0; i < 5; i++) {
      const r = await client.request(ECHO_SUBJECT, JSON.stringify(i), { timeout: 2000 });
      expect(r.json<{ by: string }>().by).to.equal('one');
    }
  });

  it('stop() resolves after the connection is closed', async function () {
    const nc = await connect({ servers: server.url });
    const svc = startMicroService(nc, { name: 'sandbar-tmp', version: '1.0.0', endpoints: [] });
    await nc.flush();
    expect(await collect(client, '$SRV.PING.sandbar-tmp')).to.have.length(1);
    await nc.close();
    await svc.stop();
  });
});
