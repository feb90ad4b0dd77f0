import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, schema, envNameOf, type ConfigKey } from '../../../src/config/index.js';

describe('config: load order', () => {
  let dir: string;
  before(() => { dir = mkdtempSync(path.join(os.tmpdir(), 'sandbar-config-')); });
  after(() => { rmSync(dir, { recursive: true, force: true }); });

  /** Writes a TOML file in the temp dir and returns its path. */
  function toml(name: string, text: string): string {
    const file = path.join(dir, name);
    writeFileSync(file, text);
    return file;
  }

  it('uses the schema defaults when nothing is given', () => {
    const { config, sources, positionals } = loadConfig({ argv: [], env: {} });
    expect(config.session.idleTimeoutMs).to.equal(60000);
    expect(config.http).to.deep.equal({ host: '0.0.0.0', port: 4000, ipConnectRate: 50, ipConnectBurst: 100, ipMaxSessions: 1000, acceptRate: 1000, acceptBurst: 1000 });
    expect(config.nats.servers).to.deep.equal(['nats://127.0.0.1:4222']);
    expect(config.log.level).to.equal('info');
    expect(config.shards).to.equal(1024);
    expect(positionals).to.deep.equal([]);
    for (const key of Object.keys(schema)) if (!('optional' in schema[key as keyof typeof schema])) expect(sources[key], key).to.equal('default');
  });

  it('returns every schema key in the nested shape', () => {
    const { config } = loadConfig({ argv: [], env: {} });
    for (const key of Object.keys(schema)) {
      // Optional keys (credentials, file paths) are absent unless given.
      if ('optional' in schema[key as keyof typeof schema]) continue;
      const value = key.split('.').reduce<unknown>((node, seg) => (node as Record<string, unknown>)[seg], config);
      expect(value, key).to.not.equal(undefined);
    }
  });

  it('derives hostId from the hostname and workers from the CPU count', () => {
    const { config } = loadConfig({ argv: [], env: {} });
    expect(config.hostId).to.match(/^[A-Za-z0-9_-]{1,64}$/);
    expect(config.hostId).to.equal(os.hostname().replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 64));
    expect(config.cluster.workers).to.equal(os.availableParallelism());
  });

  it('deep-freezes the config', () => {
    const { config } = loadConfig({ argv: [], env: {} });
    expect(Object.isFrozen(config)).to.equal(true);
    expect(Object.isFrozen(config.session)).to.equal(true);
    expect(Object.isFrozen(config.nats.servers)).to.equal(true);
  });

  it('lets the file override defaults (file from --config, --config= or SANDBAR_CONFIG)', () => {
    const file = toml('override.toml', 'hostId = "h1"\nshards = 64\n[session]\nidleTimeoutMs = 5000\n[nats]\nservers = ["nats://a:4222", "nats://b:4223"]\n');
    for (const opts of [
      { argv: ['--config', file], env: {} },
      { argv: [`--config=${file}`], env: {} },
      { argv: [], env: { SANDBAR_CONFIG: file } },
    ]) {
      const { config, sources } = loadConfig(opts);
      expect(config.hostId).to.equal('h1');
      expect(config.shards).to.equal(64);
      expect(config.session.idleTimeoutMs).to.equal(5000);
      expect(config.nats.servers).to.deep.equal(['nats://a:4222', 'nats://b:4223']);
      expect(sources['session.idleTimeoutMs']).to.equal(file);
      expect(sources['session.maxChannels']).to.equal('default');
    }
  });

  it('prefers --config over SANDBAR_CONFIG', () => {
    const a = toml('a.toml', 'shards = 2\n');
    const b = toml('b.toml', 'shards = 3\n');
    expect(loadConfig({ argv: ['--config', a], env: { SANDBAR_CONFIG: b } }).config.shards).to.equal(2);
  });

  it('lets the environment override the file, coercing by type', () => {
    const file = toml('env.toml', '[session]\nidleTimeoutMs = 5000\n[nats]\nembedded = true\n');
    const { config, sources } = loadConfig({
      argv: ['--config', file],
      env: {
        SANDBAR_SESSION_IDLE_TIMEOUT_MS: '7000',
        SANDBAR_NATS_EMBEDDED: '0',
        SANDBAR_NATS_SERVERS: ' nats://x:1 , nats://y:2 ',
        SANDBAR_LOG_LEVEL: 'debug',
        SANDBAR__WORKER_ID: '3',
        PATH: '/usr/bin',
      },
    });
    expect(config.session.idleTimeoutMs).to.equal(7000);
    expect(config.nats.embedded).to.equal(false);
    expect(config.nats.servers).to.deep.equal(['nats://x:1', 'nats://y:2']);
    expect(config.log.level).to.equal('debug');
    expect(sources['session.idleTimeoutMs']).to.equal('SANDBAR_SESSION_IDLE_TIMEOUT_MS');
  });

  it('lets flags override the environment, in both --key=value and --key value forms', () => {
    const { config, sources } = loadConfig({
      argv: ['--http.port=0', '--cluster.workers', '2', '--session.idleTimeoutMs', '9000'],
      env: { SANDBAR_SESSION_IDLE_TIMEOUT_MS: '7000', SANDBAR_HTTP_PORT: '5000' },
    });
    expect(config.http.port).to.equal(0);
    expect(config.cluster.workers).to.equal(2);
    expect(config.session.idleTimeoutMs).to.equal(9000);
    expect(sources['session.idleTimeoutMs']).to.equal('--session.idleTimeoutMs');
  });

  it('returns non-flag arguments in order and leaves --help and -h to the command', () => {
    const { positionals, config } = loadConfig({ argv: ['token', '--http.port=1', 'alice', '--help', '-h', '--', '--not-a-flag'], env: {} });
    expect(positionals).to.deep.equal(['token', 'alice', '--help', '-h', '--not-a-flag']);
    expect(config.http.port).to.equal(1);
  });

  it('names env vars by upper snake case of each segment, one per key', () => {
    expect(envNameOf('session.idleTimeoutMs')).to.equal('SANDBAR_SESSION_IDLE_TIMEOUT_MS');
    expect(envNameOf('auth.tokenTtlS')).to.equal('SANDBAR_AUTH_TOKEN_TTL_S');
    expect(envNameOf('hostId')).to.equal('SANDBAR_HOST_ID');
    const names = (Object.keys(schema) as ConfigKey[]).map(envNameOf);
    expect(new Set(names).size).to.equal(names.length);
    expect(names).to.not.include('SANDBAR_CONFIG');
  });
});
