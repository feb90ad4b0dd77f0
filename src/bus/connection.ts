/**
 * One NATS connection per process (the primary and each worker): reconnects
 * forever, and every status change is logged once so an operator sees a
 * partition or a NATS restart in the host's log.
 */
import { readFileSync } from 'node:fs';
import { AuthorizationError, connect, credsAuthenticator, UserAuthenticationExpiredError, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';
import type { SandbarConfig } from '../config/types.js';
import { Errors, SandbarError } from '../errors.js';
import type { Logger } from '../observability/logger.js';

export type { NatsConnection };

/** NATS reconnects of this process (a metric). */
export let natsReconnects = 0;

/**
 * The credentials and TLS settings of the nats.* keys as nats.js options
 * (docs/security.md): user/pass or a creds file, and TLS when a CA or a
 * client certificate is configured.
 */
export function natsAuthOptions(n: SandbarConfig['nats']): Partial<NodeConnectionOptions> {
  const o: Partial<NodeConnectionOptions> = {};
  if (n.user !== undefined) {
    o.user = n.user;
    o.pass = n.pass;
  }
  if (n.credsFile !== undefined) {
    const file = n.credsFile;
    // Read on every (re)connect, so a rotated creds file is picked up without a restart.
    o.authenticator = credsAuthenticator(() => readFileSync(file));
  }
  if (n.tlsCaFile !== undefined || n.tlsCertFile !== undefined) {
    o.tls = { caFile: n.tlsCaFile, certFile: n.tlsCertFile, keyFile: n.tlsKeyFile };
  }
  return o;
}

/**
 * A NATS connect error that retrying cannot fix (refused credentials, a bad
 * creds file, a TLS failure) as SANDBAR_ERR_NATS_AUTH; null for anything else
 * (no server there: maybe start the embedded one).
 */
export function natsAuthFailure(err: unknown, servers: readonly string[]): SandbarError | null {
  const e = err as Error & { code?: string };
  const text = `${e?.message ?? ''} ${String((e as { cause?: unknown })?.cause ?? '')}`;
  const auth = err instanceof AuthorizationError || err instanceof UserAuthenticationExpiredError || /authoriz|authenticat|creds|nkey|jwt/i.test(text);
  const tls = /tls|ssl|certificate|self.signed|ERR_TLS|EPROTO/i.test(`${text} ${e?.code ?? ''}`);
  if (!auth && !tls) return null;
  const what = auth ? 'refused the credentials (nats.user/nats.pass or nats.credsFile)' : 'failed the TLS handshake (nats.tlsCaFile, nats.tlsCertFile, nats.tlsKeyFile)';
  return Errors.NATS_AUTH(`NATS at ${servers.join(', ')} ${what}: ${e?.message ?? String(err)}; see docs/security.md`, { cause: err });
}

export async function connectBus(opts: { servers: readonly string[]; auth?: Partial<NodeConnectionOptions>; name: string; timeoutMs: number; logger: Logger; onStatus?: (s: 'disconnect' | 'reconnect') => void }): Promise<NatsConnection> {
  const nc = await connect({
    ...opts.auth,
    servers: [...opts.servers],
    name: opts.name,
    timeout: opts.timeoutMs,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    pingInterval: 10000,
    // Keep the configured order: a host lists its own NATS node first.
    noRandomize: true,
  });
  void (async () => {
    for await (const s of nc.status()) {
      switch (s.type) {
        case 'disconnect': opts.logger.warn({ nats: s.server }, 'NATS disconnected; reconnecting'); opts.onStatus?.('disconnect'); break;
        case 'reconnect': natsReconnects++; opts.logger.info({ nats: s.server }, 'NATS reconnected'); opts.onStatus?.('reconnect'); break;
        case 'error': opts.logger.error({ err: s.error }, 'NATS error'); break;
        // Messages were dropped: lost, not merely late.
        case 'slowConsumer': opts.logger.error({ sub: s.sub.getSubject() }, 'NATS slow consumer: messages dropped on a subscription'); break;
        default: break;
      }
    }
  })().catch(() => {});
  return nc;
}
