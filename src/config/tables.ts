/**
 * The configuration keys whose value is an array of tables, and the checks of
 * the auth keys that look at files and at each other.
 *
 * `[[auth.keys]]` (verification keys with a kid) and `[[authz.rooms]]` (room
 * authorization rules) are lists of records: they come from the config file
 * only (an environment variable or a flag cannot spell a list of tables), and
 * each entry is checked here, so a bad one stops start-up with exit 78 naming
 * `authz.rooms[2].join` and what was expected.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SandbarError } from '../errors.js';

/** The policies a room action may have (docs/auth.md). */
export const POLICIES = ['public', 'claims', 'proxy', 'deny'] as const;
export type Policy = (typeof POLICIES)[number];
/** The actions a room rule gives a policy to. */
export const ROOM_ACTIONS = ['join', 'history', 'publish', 'presence'] as const;
export type RoomAction = (typeof ROOM_ACTIONS)[number];

/** JWS algorithms Sandbar verifies (jose's names); "none" is not one. */
export const ALGORITHMS = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;

/** One `[[auth.keys]]` entry, resolved: the key's text is read from its file at load. */
export interface KeyConfig {
  /** Tokens whose header names this kid use this key; none: the key for tokens without kid (one per algorithm). */
  readonly kid?: string;
  readonly alg: string;
  /** HS*: the HMAC key (UTF-8 bytes). */
  readonly secret?: string;
  /** Other algorithms: the public key, PEM (SPKI, "BEGIN PUBLIC KEY"). */
  readonly publicKey?: string;
}

/** One `[[authz.rooms]]` rule: rooms whose id matches `match` get these policies. */
export interface RoomRule {
  /** A room id, or a glob: `*` stands for any run of characters (`team-*`, `*`). */
  readonly match: string;
  readonly join: Policy;
  readonly history: Policy;
  readonly publish: Policy;
  readonly presence: Policy;
}

export interface TableKeySpec { readonly doc: string }

/** The table-array keys, documented in config/sandbar.toml and docs/configuration.md like the others. */
export const tableKeys = {
  'auth.keys': { doc: 'Verification keys, each {kid?, alg, secret or publicKey or file}: HS* keys by secret, the others by a PEM public key inline or in a file. A token naming a kid uses that key; a key without kid verifies tokens without kid of its alg. File only.' },
  'authz.rooms': { doc: 'Room authorization rules, first match wins: {match, join, history?, publish?, presence?}, each policy one of public, claims, proxy, deny; history, publish and presence default to join\'s. A room no rule matches gets authz.default. File only.' },
} as const satisfies Record<string, TableKeySpec>;
export type TableKey = keyof typeof tableKeys;

export function isTableKey(path: string): path is TableKey {
  return Object.hasOwn(tableKeys, path);
}

type Invalid = (what: string, value: unknown, problem: string, secret?: boolean) => SandbarError;

const KID = /^[\x21-\x7e]{1,128}$/;
const GLOB = /^[A-Za-z0-9_.@*-]{1,64}$/;

/** Checks a `[[auth.keys]]` array; files are read now, so a missing one stops start-up. */
export function checkKeys(raw: unknown, invalid: Invalid): KeyConfig[] {
  const list = tableArray('auth.keys', raw, invalid);
  const out: KeyConfig[] = [];
  const kids = new Set<string>();
  const defaults = new Set<string>();
  list.forEach((e, i) => {
    const at = `auth.keys[${i}]`;
    onlyFields(at, e, ['kid', 'alg', 'secret', 'publicKey', 'file'], invalid);
    const alg = e.alg;
    if (typeof alg !== 'string' || !(ALGORITHMS as readonly string[]).includes(alg)) throw invalid(`${at}.alg`, alg, `expected one of ${ALGORITHMS.join(', ')}`);
    const kid = e.kid;
    if (kid !== undefined) {
      if (typeof kid !== 'string' || !KID.test(kid)) throw invalid(`${at}.kid`, kid, 'expected 1-128 printable ASCII characters');
      if (kids.has(kid)) throw invalid(`${at}.kid`, kid, 'expected a kid no other auth.keys entry has');
      kids.add(kid);
    } else {
      if (defaults.has(alg)) throw invalid(`${at}.kid`, undefined, `expected a kid: another auth.keys entry without kid is for ${alg} already`);
      defaults.add(alg);
    }
    const given = (['secret', 'publicKey', 'file'] as const).filter((f) => e[f] !== undefined);
    if (given.length !== 1) throw invalid(at, undefined, 'expected exactly one of secret, publicKey, file');
    const hmac = alg.startsWith('HS');
    let text: string;
    if (e.file !== undefined) {
      if (typeof e.file !== 'string' || e.file === '') throw invalid(`${at}.file`, e.file, 'expected a file path');
      try {
        text = readFileSync(e.file, 'utf8');
      } catch (err) {
        throw invalid(`${at}.file`, e.file, `expected a readable file (${(err as Error).message.split('\n')[0]})`);
      }
      if (hmac) text = text.replace(/\r?\n$/, '');
    } else {
      const v = e.secret ?? e.publicKey;
      const field = e.secret !== undefined ? 'secret' : 'publicKey';
      if (typeof v !== 'string' || v === '') throw invalid(`${at}.${field}`, v, 'expected a non-empty string', field === 'secret');
      if ((field === 'secret') !== hmac) throw invalid(`${at}.${field}`, field === 'secret' ? undefined : v, hmac ? `expected secret for ${alg}` : `expected publicKey or file (a PEM public key) for ${alg}`, field === 'secret');
      text = v;
    }
    if (hmac) {
      if (text.length < 16) throw invalid(`${at}.secret`, undefined, `expected at least 16 characters for an HMAC key (got ${text.length})`);
      out.push(kid === undefined ? { alg, secret: text } : { kid, alg, secret: text });
    } else {
      const problem = pemProblem(text, alg);
      if (problem) throw invalid(`${at}.${e.file !== undefined ? 'file' : 'publicKey'}`, e.file ?? '(PEM text)', problem);
      out.push(kid === undefined ? { alg, publicKey: text } : { kid, alg, publicKey: text });
    }
  });
  return out;
}

/** Why a PEM text is not a public key for alg, or undefined when it is one. */
export function pemProblem(text: string, alg: string): string | undefined {
  let key: KeyObject;
  try {
    key = createPublicKey(text);
  } catch (err) {
    return `expected a PEM public key ("BEGIN PUBLIC KEY"): ${(err as Error).message.split('\n')[0]}`;
  }
  if (/PRIVATE KEY/.test(text)) return 'expected a public key; this is a private key (keep it with the application that signs)';
  const type = key.asymmetricKeyType;
  const want = alg.startsWith('RS') || alg.startsWith('PS') ? ['rsa', 'rsa-pss'] : alg.startsWith('ES') ? ['ec'] : ['ed25519'];
  if (!want.includes(type ?? '')) return `expected a ${want.join(' or ')} key for ${alg}, got ${type}`;
  if (type === 'ec') {
    const crv = key.asymmetricKeyDetails?.namedCurve;
    const need = { ES256: 'prime256v1', ES384: 'secp384r1', ES512: 'secp521r1' }[alg];
    if (crv !== need) return `expected curve ${need} for ${alg}, got ${crv}`;
  }
  return undefined;
}

/** Checks a `[[authz.rooms]]` array. */
export function checkRoomRules(raw: unknown, invalid: Invalid): RoomRule[] {
  return tableArray('authz.rooms', raw, invalid).map((e, i) => {
    const at = `authz.rooms[${i}]`;
    onlyFields(at, e, ['match', ...ROOM_ACTIONS], invalid);
    if (typeof e.match !== 'string' || !GLOB.test(e.match)) throw invalid(`${at}.match`, e.match, 'expected a room id or glob: 1-64 characters of A-Z a-z 0-9 _ - . @ and *');
    const policy = (action: RoomAction, fallback?: Policy): Policy => {
      const v = e[action] ?? fallback;
      if (typeof v !== 'string' || !(POLICIES as readonly string[]).includes(v)) throw invalid(`${at}.${action}`, v, `expected one of ${POLICIES.map((p) => `"${p}"`).join(', ')}`);
      return v as Policy;
    };
    const join = policy('join');
    return { match: e.match, join, history: policy('history', join), publish: policy('publish', join), presence: policy('presence', join) };
  });
}

/** Whether a room id matches a rule's glob (`*`: any run of characters, possibly empty). */
export function globMatches(glob: string, id: string): boolean {
  const star = glob.indexOf('*');
  if (star < 0) return glob === id;
  const parts = glob.split('*');
  const first = parts[0]!;
  const last = parts[parts.length - 1]!;
  if (id.length < first.length + last.length || !id.startsWith(first) || !id.endsWith(last)) return false;
  let at = first.length;
  const end = id.length - last.length;
  for (let i = 1; i < parts.length - 1; i++) {
    const p = parts[i]!;
    const j = id.indexOf(p, at);
    if (j < 0 || j + p.length > end) return false;
    at = j + p.length;
  }
  return true;
}

/**
 * Checks across auth keys: a JWKS file that reads as a key set, URLs that are
 * http(s), and a proxy URL wherever a policy needs one.
 */
export function checkAuth(get: (key: string) => unknown, rules: readonly RoomRule[], invalid: (what: string, value: unknown, problem: string) => SandbarError): void {
  const file = get('auth.jwksFile') as string | undefined;
  if (file !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw invalid('auth.jwksFile', file, `expected a readable JSON Web Key Set file (${(err as Error).message.split('\n')[0]})`);
    }
    const keys = (parsed as { keys?: unknown } | null)?.keys;
    if (!Array.isArray(keys)) throw invalid('auth.jwksFile', file, 'expected a JSON object with a "keys" array');
    keys.forEach((k, i) => {
      if (typeof k !== 'object' || k === null || typeof (k as { kid?: unknown }).kid !== 'string' || typeof (k as { kty?: unknown }).kty !== 'string') {
        throw invalid('auth.jwksFile', file, `expected every key to have a string kid and kty (keys[${i}] has not)`);
      }
      if ((k as { d?: unknown }).d !== undefined) throw invalid('auth.jwksFile', file, `expected public keys only (keys[${i}] holds a private key)`);
    });
  }
  for (const key of ['auth.jwksUrl', 'authz.proxyUrl']) {
    const url = get(key) as string | undefined;
    if (url !== undefined && !isHttpUrl(url)) throw invalid(key, url, 'expected an http:// or https:// URL');
  }
  const algs = get('auth.algorithms') as readonly string[];
  const i = algs.findIndex((a) => !(ALGORITHMS as readonly string[]).includes(a));
  if (i >= 0) throw invalid(`auth.algorithms[${i}]`, algs[i], `expected one of ${ALGORITHMS.join(', ')} ("none" is never accepted)`);
  const usesProxy = get('authz.default') === 'proxy' || rules.some((r) => ROOM_ACTIONS.some((a) => r[a] === 'proxy'));
  if (usesProxy && get('authz.proxyUrl') === undefined) {
    const r = rules.findIndex((rule) => ROOM_ACTIONS.some((a) => rule[a] === 'proxy'));
    throw invalid(r >= 0 ? `authz.rooms[${r}]` : 'authz.default', r >= 0 ? rules[r]!.match : 'proxy', 'expected authz.proxyUrl to be set: a "proxy" policy asks the application at that URL');
  }
}

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
  } catch {
    return false;
  }
}

function tableArray(key: string, raw: unknown, invalid: Invalid): Record<string, unknown>[] {
  if (!Array.isArray(raw) || !raw.every((e) => typeof e === 'object' && e !== null && !Array.isArray(e))) {
    throw invalid(key, raw, `expected an array of tables ([[${key}]] entries)`);
  }
  return raw as Record<string, unknown>[];
}

function onlyFields(at: string, e: Record<string, unknown>, known: readonly string[], invalid: Invalid): void {
  for (const f of Object.keys(e)) if (!known.includes(f)) throw invalid(`${at}.${f}`, e[f], `unknown field; expected one of ${known.join(', ')}`, /secret/i.test(f));
}
