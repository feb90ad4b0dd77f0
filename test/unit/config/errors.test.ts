import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, type LoadOptions } from '../../../src/config/index.js';
import { SandbarError } from '../../../src/errors.js';

/** Runs loadConfig, expects a SandbarError with `code`, and returns its message. */
function failure(opts: Partial<LoadOptions>, code = 'SANDBAR_ERR_CONFIG_INVALID'): string {
  try {
    loadConfig({ argv: [], env: {}, ...opts });
  } catch (err) {
    expect(err).to.be.instanceOf(SandbarError);
    expect((err as SandbarError).code).to.equal(code);
    const message = (err as SandbarError).message;
    expect(message, 'one line').to.not.include('\n');
    return message;
  }
  expect.fail('loadConfig did not throw');
}

describe('config: errors', () => {
  let dir: string;
  before(() => { dir = mkdtempSync(path.join(os.tmpdir(), 'sandbar-config-')); });
  after(() => { rmSync(dir, { recursive: true, force: true }); });

  /** argv that loads `text` as the config file. */
  function file(text: string): { argv: string[]; path: string } {
    const p = path.join(dir, `c${Math.random().toString(36).slice(2)}.toml`);
    writeFileSync(p, text);
    return { argv: ['--config', p], path: p };
  }

  it('names key, source, value and expectation for a wrong env type', () => {
    expect(failure({ env: { SANDBAR_SESSION_IDLE_TIMEOUT_MS: 'abc' } })).to.equal(
      'config: session.idleTimeoutMs = "abc" (from SANDBAR_SESSION_IDLE_TIMEOUT_MS): expected an integer (ms) from 100 to 3600000',
    );
  });

  it('rejects an unknown file key and suggests the closest one', () => {
    const f = file('[session]\nidleTimeotMs = 5000\n');
    expect(failure({ argv: f.argv })).to.equal(
      `config: session.idleTimeotMs = 5000 (from ${f.path}): unknown key; did you mean session.idleTimeoutMs?`,
    );
  });

  it('suggests a key under a misspelled section', () => {
    expect(failure({ argv: file('[sesion]\nidleTimeoutMs = 5000\n').argv })).to.include('did you mean session.idleTimeoutMs?');
  });

  it('suggests nothing for a far-off unknown key', () => {
    const msg = failure({ argv: file('colour = "blue"\n').argv });
    expect(msg).to.include('colour = "blue"').and.include('unknown key').and.not.include('did you mean');
  });

  it('says a renamed key was renamed, wherever it comes from', () => {
    const f = file('[session]\nidleTimeout = 5000\n');
    expect(failure({ argv: f.argv })).to.equal(
      `config: session.idleTimeout = 5000 (from ${f.path}): key "session.idleTimeout" was renamed to "session.idleTimeoutMs"`,
    );
    expect(failure({ env: { SANDBAR_SESSION_IDLE_TIMEOUT: '5000' } })).to.include('key "session.idleTimeout" was renamed to "session.idleTimeoutMs"');
    expect(failure({ argv: ['--session.idleTimeout=5000'] })).to.include('key "session.idleTimeout" was renamed to "session.idleTimeoutMs"');
  });

  it('rejects a TOML string where an integer is expected', () => {
    const f = file('[http]\nport = "4000"\n');
    expect(failure({ argv: f.argv })).to.equal(`config: http.port = "4000" (from ${f.path}): expected an integer from 0 to 65535`);
  });

  it('rejects a TOML float where an integer is expected, even 1.0', () => {
    expect(failure({ argv: file('shards = 1.5\n').argv })).to.include('shards = 1.5').and.include('expected an integer from 1 to 65536');
    expect(failure({ argv: file('shards = 1.0\n').argv })).to.include('expected an integer');
  });

  it('rejects a value out of range', () => {
    expect(failure({ argv: ['--http.port=70000'] })).to.equal(
      'config: http.port = "70000" (from --http.port): expected an integer from 0 to 65535',
    );
  });

  it('rejects an enum value that is not allowed', () => {
    expect(failure({ env: { SANDBAR_LOG_LEVEL: 'loud' } })).to.equal(
      'config: log.level = "loud" (from SANDBAR_LOG_LEVEL): expected one of "fatal", "error", "warn", "info", "debug", "trace", "silent"',
    );
  });

  it('rejects a string that does not match the pattern', () => {
    const f = file('hostId = "web 1.example"\n');
    expect(failure({ argv: f.argv })).to.equal(
      `config: hostId = "web 1.example" (from ${f.path}): expected a string of 1-64 characters of A-Z a-z 0-9 _ -`,
    );
  });

  it('rejects a boolean env value other than true/false/1/0', () => {
    expect(failure({ env: { SANDBAR_NATS_EMBEDDED: 'yes' } })).to.equal(
      'config: nats.embedded = "yes" (from SANDBAR_NATS_EMBEDDED): expected true, false, 1 or 0',
    );
  });

  it('rejects a string[] with non-strings or no entries', () => {
    const f = file('[nats]\nservers = ["nats://a:4222", 5]\n');
    expect(failure({ argv: f.argv })).to.equal(
      `config: nats.servers = ["nats://a:4222", 5] (from ${f.path}): expected a non-empty array of non-empty strings`,
    );
    expect(failure({ argv: file('[nats]\nservers = []\n').argv })).to.include('nats.servers = []').and.include('expected a non-empty array');
    expect(failure({ env: { SANDBAR_NATS_SERVERS: 'nats://a:1,,nats://b:2' } })).to.include('expected a comma-separated list of non-empty strings');
  });

  it('rejects a nats.servers entry that is not nats://host:port', () => {
    expect(failure({ env: { SANDBAR_NATS_SERVERS: 'nats://a:4222,http://b:80' } })).to.equal(
      'config: nats.servers[1] = "http://b:80" (from SANDBAR_NATS_SERVERS): expected a nats://host:port URL',
    );
    expect(failure({ argv: ['--nats.servers', 'nats://nohost'] })).to.include('nats.servers[0] = "nats://nohost"');
  });

  it('requires heartbeatMs < suspectAfterMs < downAfterMs', () => {
    expect(failure({ argv: ['--cluster.downAfterMs=1000'] })).to.equal(
      'config: cluster.downAfterMs = 1000 (from --cluster.downAfterMs): expected more than cluster.suspectAfterMs = 1500 (from default)',
    );
    expect(failure({ env: { SANDBAR_CLUSTER_HEARTBEAT_MS: '1500' } })).to.equal(
      'config: cluster.suspectAfterMs = 1500 (from default): expected more than cluster.heartbeatMs = 1500 (from SANDBAR_CLUSTER_HEARTBEAT_MS)',
    );
  });

  it('refuses the internal listener on the public port (it needs its own, or admin.listener = "public")', () => {
    expect(failure({ argv: ['--http.port=4001'] })).to.equal(
      'config: admin.port = 4001 (from default): expected a port other than http.port = 4001 (from --http.port): the internal listener has its own; for one port, set admin.listener = "public"',
    );
    expect(() => loadConfig({ argv: ['--http.port=4001', '--admin.listener=public'], env: {} })).to.not.throw();
    expect(() => loadConfig({ argv: ['--http.port=0', '--admin.port=0'], env: {} })).to.not.throw();
  });

  it('requires selfFenceMs + heartbeatMs < downAfterMs (a cut-off master stops before the others promote)', () => {
    expect(failure({ argv: ['--cluster.selfFenceMs=2600'] })).to.equal(
      'config: cluster.selfFenceMs = 2600 (from --cluster.selfFenceMs): expected less than cluster.downAfterMs - cluster.heartbeatMs = 2500 (cluster.downAfterMs = 3000 from default, cluster.heartbeatMs = 500 from default)',
    );
    expect(() => loadConfig({ argv: ['--cluster.selfFenceMs=2499'], env: {} })).to.not.throw();
  });

  it('rejects an unknown SANDBAR_ env var, suggesting the closest, and ignores SANDBAR__ names', () => {
    expect(failure({ env: { SANDBAR_HTTP_PROT: '80' } })).to.equal(
      'config: SANDBAR_HTTP_PROT = "80" (from environment): unknown variable; did you mean SANDBAR_HTTP_PORT?',
    );
    expect(() => loadConfig({ argv: [], env: { SANDBAR__INTERNAL: 'x' } })).to.not.throw();
  });

  it('rejects an unknown flag and a flag without a value', () => {
    expect(failure({ argv: ['--htp.port=80'] })).to.equal(
      'config: --htp.port = "80" (from command line): unknown flag; did you mean --http.port?',
    );
    expect(failure({ argv: ['--http.port'] })).to.include('--http.port').and.include('expected a value');
  });

  it('never prints the value of a secret', () => {
    const msg = failure({ argv: file('[auth]\nsecret = 12345\n').argv });
    expect(msg).to.include('auth.secret').and.include('expected a non-empty string').and.not.include('12345');
    expect(failure({ env: { SANDBAR_AUTH_SECRT: 'hunter2' } })).to.not.include('hunter2');
  });

  it('reports bad TOML syntax with the path, line and column', () => {
    const f = file('shards = 4\n[session\nidleTimeoutMs = 1\n');
    const msg = failure({ argv: f.argv }, 'SANDBAR_ERR_CONFIG_FILE');
    expect(msg).to.match(new RegExp(`^config file ${f.path.replace(/[.\\]/g, '\\$&')} \\(from --config\\): invalid TOML at line 2, column \\d+: `));
  });

  it('reports a file that cannot be read', () => {
    const missing = path.join(dir, 'missing.toml');
    const msg = failure({ env: { SANDBAR_CONFIG: missing } }, 'SANDBAR_ERR_CONFIG_FILE');
    expect(msg).to.include(missing).and.include('(from SANDBAR_CONFIG)').and.include('ENOENT');
  });
});
