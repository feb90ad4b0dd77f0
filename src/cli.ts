/**
 * The `sandbar` command: start | check-config | token <userId> | status, and --version.
 * Every failure is one line on stderr and a sysexits-style exit code
 * (78 EX_CONFIG for configuration, 69 EX_UNAVAILABLE for NATS, 64 EX_USAGE).
 */
import { loadConfig } from './config/index.js';
import type { SandbarConfig } from './config/types.js';
import { Errors, SandbarError } from './errors.js';
import { createLogger } from './observability/logger.js';
import { tokenCommand, TOKEN_HELP } from './auth/token-cli.js';
import { EXIT, Primary } from './cluster/primary.js';
import { VERSION } from './version.js';
import { formatStatus, type StatusReply } from './status-table.js';
import { isJournalStream, SYSLOG } from './observability/journald.js';

const HELP: Record<string, string> = {
  '': `usage: sandbar <command> [--config file.toml] [--<key>=<value> ...]

commands:
  start           run a host: the primary and its workers (default)
  check-config    validate the configuration and print it; exit 78 if invalid
  token <userId>  mint a session token (JWT) for userId; token --check <token> says why one is refused
  status          ask the cluster (over NATS) for its status: hosts, workers, sessions, shards (--json: as JSON)

options:
  --version       print the version and exit

Configuration: defaults < file (--config or SANDBAR_CONFIG) < SANDBAR_* env < --key=value flags.
See docs/configuration.md. Run "sandbar <command> --help" for one command.`,
  start: `usage: sandbar start [--config file.toml] [--<key>=<value> ...]
Runs the host in the foreground: NATS check (embedded nats-server if allowed), W workers, graceful stop on SIGTERM/SIGINT.`,
  'check-config': `usage: sandbar check-config [--config file.toml] [--<key>=<value> ...]
Validates the configuration without starting anything; prints the resolved values as JSON. Exit 0 if valid, 78 if not.`,
  status: `usage: sandbar status [--json] [--config file.toml] [--nats.servers=nats://host:4222]
Asks sandbar.<cluster>.admin.status over NATS and prints the hosts (as the answering host sees them) and that host's workers as tables.
--json prints the reply as it is (the same as: nats req sandbar.<cluster>.admin.status '').`,
  token: TOKEN_HELP,
};

const COMMANDS = new Set(['start', 'check-config', 'token', 'status']);
/** Flags of one command that are not configuration keys. */
const COMMAND_FLAGS: Record<string, readonly string[]> = { status: ['--json'] };

function fail(code: number, line: string): never {
  // Under systemd this line lands in the journal: at priority err, not info.
  process.stderr.write(`${isJournalStream(2) ? `<${SYSLOG.err}>` : ''}sandbar: ${line}\n`);
  process.exit(code);
}

function load(argv: string[]): { config: SandbarConfig; positionals: string[] } {
  try {
    return loadConfig({ argv, env: process.env });
  } catch (err) {
    if (err instanceof SandbarError) fail(EXIT.config, `${err.code}: ${err.message}`);
    throw err;
  }
}

/** Pulls `--ttl`, `--claims`, `--key`, `--kid`, `--alg` and `--check` (each `--x=v` or `--x v`) out of the token command's arguments. */
function splitTokenOptions(args: string[]): { rest: string[]; opts: Record<string, string> } {
  const names = new Set(['ttl', 'claims', 'key', 'kid', 'alg', 'check']);
  const rest: string[] = [];
  const opts: Record<string, string> = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const m = /^--([a-z]+)(?:=(.*))?$/s.exec(a);
    if (!m || !names.has(m[1]!)) { rest.push(a); continue; }
    let v = m[2];
    if (v === undefined) {
      v = args[i + 1];
      if (v === undefined) fail(64, `--${m[1]} needs a value`);
      i++;
    }
    opts[m[1]!] = v;
  }
  return { rest, opts };
}

export async function runCli(args: string[]): Promise<void> {
  let command = 'start';
  if (args[0] !== undefined && !args[0].startsWith('-')) {
    command = args[0];
    args = args.slice(1);
  }
  if (args.includes('--version') || command === 'version') {
    process.stdout.write(`sandbar ${VERSION}\n`);
    return;
  }
  if (args.includes('--help') || args.includes('-h') || command === 'help') {
    process.stdout.write((HELP[COMMANDS.has(command) ? command : ''] ?? HELP['']!) + '\n');
    return;
  }
  if (!COMMANDS.has(command)) fail(64, `unknown command "${command}" (SANDBAR_ERR_USAGE); run sandbar --help`);

  // The token command's own options, and the status command's --json, are not configuration keys.
  const own = command === 'token' ? splitTokenOptions(args) : { rest: args.filter((a) => !(COMMAND_FLAGS[command] ?? []).includes(a)), opts: {} };
  const flags = new Set(args.filter((a) => (COMMAND_FLAGS[command] ?? []).includes(a)));
  const { config, positionals } = load(own.rest);
  switch (command) {
    case 'check-config':
      if (positionals.length) fail(64, `check-config takes no arguments, got "${positionals.join(' ')}"`);
      process.stdout.write(JSON.stringify({
        ...config,
        auth: { ...config.auth, secret: '<redacted>', keys: config.auth.keys.map((k) => (k.secret !== undefined ? { ...k, secret: '<redacted>' } : k)) },
        authz: { ...config.authz, ...(config.authz.proxyToken !== undefined ? { proxyToken: '<redacted>' } : {}) },
        admin: { ...config.admin, token: config.admin.token === '' ? '' : '<redacted>' },
        nats: { ...config.nats, ...(config.nats.pass !== undefined ? { pass: '<redacted>' } : {}) },
        api: { ...config.api, ...(config.api.keys ? { keys: config.api.keys.map((k) => k.slice(0, k.lastIndexOf(':') + 1) + '<redacted>') } : {}) },
        webhooks: { ...config.webhooks, ...(config.webhooks.secret !== undefined ? { secret: '<redacted>' } : {}) },
      }, null, 2) + '\n');
      process.stderr.write('sandbar: configuration is valid\n');
      return;
    case 'token': {
      const r = await tokenCommand(config, positionals, own.opts);
      if (r.code !== 0) fail(r.code, r.line);
      process.stdout.write(r.line + '\n');
      return;
    }
    case 'status': {
      const { connect } = await import('@nats-io/transport-node');
      const { Subjects } = await import('./bus/subjects.js');
      let nc;
      try {
        const { natsAuthOptions } = await import('./bus/connection.js');
        nc = await connect({ ...natsAuthOptions(config.nats), servers: [...config.nats.servers], timeout: config.nats.connectTimeoutMs, reconnect: false });
      } catch (err) {
        fail(EXIT.unavailable, `SANDBAR_ERR_NATS_UNAVAILABLE: no NATS server answers at ${config.nats.servers.join(', ')}: ${(err as Error).message}`);
      }
      try {
        const r = await nc.request(new Subjects(config.cluster.name).admin('status'), undefined, { timeout: 3000 });
        process.stdout.write(flags.has('--json') ? JSON.stringify(r.json(), null, 2) + '\n' : formatStatus(r.json<StatusReply>()));
      } catch (err) {
        fail(EXIT.unavailable, `no Sandbar host of cluster "${config.cluster.name}" answered: ${(err as Error).message}`);
      } finally {
        await nc.close();
      }
      return;
    }
    case 'start': {
      if (positionals.length) fail(64, `start takes no arguments, got "${positionals.join(' ')}"`);
      const logger = createLogger({ level: config.log.level, hostId: config.hostId, worker: 'primary', syslogPrefix: config.log.syslogPrefix });
      const primary = new Primary(config, logger);
      try {
        await primary.start();
      } catch (err) {
        if (Errors.NATS_UNAVAILABLE.is(err) || Errors.NATS_AUTH.is(err) || Errors.JETSTREAM_UNAVAILABLE.is(err)) {
          logger.fatal({ code: err.code }, err.message);
          fail(EXIT.unavailable, `${err.code}: ${err.message}`);
        }
        if (Errors.CONFIG_INVALID.is(err)) fail(EXIT.config, `${err.code}: ${err.message}`);
        throw err;
      }
      return;
    }
  }
}
