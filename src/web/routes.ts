/**
 * The browser side of a worker: the demo chat page (`/`, with the dev token
 * endpoint only when `auth.devTokenEndpoint = true`) on the public listener,
 * the cluster page (`/cluster`, behind `admin.token`) on the operators' one,
 * and on both the stylesheet and the phoenix client script, served from the
 * `web/` folder and the `phoenix` package as they are (no bundler). The few
 * files are read once at start and served from memory: no path from a
 * request ever reaches the file system.
 */
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import type { FastifyInstance } from 'fastify';
import { mintToken } from '../auth/token.js';
import { Errors, SandbarError } from '../errors.js';
import { sendError } from '../http/send-error.js';
import { isValidId } from '../protocol/ids.js';
import { adminTokenMatches } from './cluster-channel.js';

export interface WebOptions {
  readonly secret: string;
  readonly devTokenEndpoint: boolean;
  readonly adminToken: string;
  readonly tokenTtlS: number;
}

/** Lifetime of the socket token the cluster page gets for its admin session. */
const CLUSTER_TOKEN_TTL_S = 3600;

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  mjs: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};

/** The `web/` folder: found upwards from this module (src/web under tsx, dist/src/web when built). */
export function webRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'web', 'index.html'))) return join(dir, 'web');
    dir = dirname(dir);
  }
  throw new Error('web/index.html not found above ' + dirname(fileURLToPath(import.meta.url)));
}

function phoenixScript(): string {
  // The package exports its CommonJS build from priv/static; the ES module sits beside it.
  return join(dirname(createRequire(import.meta.url).resolve('phoenix')), 'phoenix.mjs');
}

/** Which pages a listener serves: the demo (public), the cluster page (operators), or both. */
export interface WebParts {
  readonly demo: boolean;
  readonly cluster: boolean;
}

export function registerWeb(app: FastifyInstance, opts: WebOptions, parts: WebParts): void {
  const root = webRoot();
  const files = new Map<string, { type: string; body: Buffer }>();
  const add = (url: string, path: string) => files.set(url, { type: TYPES[path.slice(path.lastIndexOf('.') + 1)]!, body: readFileSync(path) });
  add('/style.css', join(root, 'style.css'));
  add('/dom.js', join(root, 'dom.js'));
  add('/assets/phoenix.mjs', phoenixScript());
  if (parts.demo) {
    add('/', join(root, 'index.html'));
    add('/app.js', join(root, 'app.js'));
  }
  if (parts.cluster) {
    add('/cluster.js', join(root, 'cluster.js'));
    add('/charts.js', join(root, 'charts.js'));
  }

  for (const [url, f] of files) {
    app.get(url, (_req, reply) => { reply.header('content-type', f.type).header('cache-control', 'no-cache').send(f.body); });
  }
  if (parts.demo) registerDevToken(app, opts);
  if (parts.cluster) registerClusterPage(app, opts, readFileSync(join(root, 'cluster.html')));
}

function registerClusterPage(app: FastifyInstance, opts: WebOptions, clusterPage: Buffer): void {
  app.get('/cluster', (_req, reply) => {
    if (opts.adminToken === '') {
      return reply.code(404).header('content-type', 'text/plain; charset=utf-8')
        .send('The cluster page is off: set admin.token (SANDBAR_ADMIN_TOKEN) in the configuration to enable it.\n');
    }
    return reply.header('content-type', TYPES.html!).header('cache-control', 'no-cache').send(clusterPage);
  });

  // The cluster page trades the admin token for a socket token (user "admin");
  // its channel checks the admin token again on join.
  app.post('/cluster/token', (req, reply) => {
    if (opts.adminToken === '') return sendError(reply, Errors.NOT_FOUND('the cluster page is off: set admin.token'));
    const auth = req.headers.authorization;
    const given = typeof auth === 'string' && auth.startsWith('Bearer ') ? auth.slice(7) : undefined;
    if (!adminTokenMatches(opts.adminToken, given)) return sendError(reply, Errors.FORBIDDEN('Authorization: Bearer <admin.token> does not match'));
    return { token: mintToken(opts.secret, 'admin', CLUSTER_TOKEN_TTL_S) };
  });
}

function registerDevToken(app: FastifyInstance, opts: WebOptions): void {
  if (opts.devTokenEndpoint) {
    // Development only (auth.devTokenEndpoint): anyone may sign in as anyone.
    app.post('/dev/token', (req, reply) => {
      const user = (req.body as { user?: unknown } | null)?.user;
      if (!isValidId(user)) return sendError(reply, Errors.INVALID_ID('user must be 1-64 characters of A-Z a-z 0-9 _ - . @'));
      try {
        return { user, token: mintToken(opts.secret, user, opts.tokenTtlS) };
      } catch (e) {
        // Minting fails only for this host's configuration (auth.secret, auth.tokenTtlS): a 500.
        return sendError(reply, e instanceof SandbarError ? e : Errors.INTERNAL('could not mint a token'));
      }
    });
  }
}
