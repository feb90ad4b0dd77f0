/**
 * The config type is derived from the schema (src/config/types.ts): the
 * loaded configuration must have every schema key where the type puts it,
 * with a value of the type it says, and nothing the schema does not declare
 * (but the two table-valued keys). The type-level half (`npm run
 * typecheck:tests` compiles this file): the lines marked @ts-expect-error
 * must fail to compile, so an `any` or a hand-written loose type would be
 * caught there.
 */
import { expect } from 'chai';
import { loadConfig, schema, type ConfigKey, type SandbarConfig } from '../../../src/config/index.js';

/** The value at a dotted key of the nested config, and whether the path exists. */
function at(config: SandbarConfig, key: string): { found: boolean; value: unknown } {
  let node: unknown = config;
  const path = key.split('.');
  for (const seg of path.slice(0, -1)) node = (node as Record<string, unknown>)[seg];
  const last = path[path.length - 1]!;
  return { found: typeof node === 'object' && node !== null && last in node, value: (node as Record<string, unknown>)[last] };
}

function typeOf(v: unknown): string {
  if (Array.isArray(v)) return v.every((x) => typeof x === 'string') ? 'string[]' : 'array';
  return typeof v;
}

const EXPECTED: Record<string, string> = { string: 'string', integer: 'number', number: 'number', boolean: 'boolean', 'string[]': 'string[]', enum: 'string' };

describe('config: the config type is the schema', () => {
  it('every schema key is in the loaded config where its dotted name puts it, of its schema type (optional keys may be absent)', () => {
    const { config } = loadConfig({ argv: [], env: {} });
    for (const key of Object.keys(schema) as ConfigKey[]) {
      const spec = schema[key] as { type: string; optional?: boolean; values?: readonly string[] };
      const { found, value } = at(config, key);
      if (spec.optional && value === undefined) continue;
      expect(found, key).to.equal(true);
      expect(typeOf(value), key).to.equal(EXPECTED[spec.type]);
      if (spec.type === 'enum') expect(spec.values, key).to.include(value);
    }
  });

  it('the loaded config holds nothing the schema does not declare, but auth.keys and authz.rooms', () => {
    const { config } = loadConfig({ argv: [], env: {} });
    const declared = new Set<string>([...Object.keys(schema), 'auth.keys', 'authz.rooms']);
    const seen: string[] = [];
    const walk = (node: Record<string, unknown>, prefix: string) => {
      for (const [k, v] of Object.entries(node)) {
        const key = prefix + k;
        if (typeof v === 'object' && v !== null && !Array.isArray(v) && !declared.has(key)) walk(v as Record<string, unknown>, `${key}.`);
        else seen.push(key);
      }
    };
    walk(config as unknown as Record<string, unknown>, '');
    expect(seen.filter((k) => !declared.has(k))).to.deep.equal([]);
  });

  it('the type follows the schema (checked by the compiler: npm run typecheck:tests)', () => {
    const { config: c } = loadConfig({ argv: [], env: {} });
    const workers: number = c.cluster.workers;
    const cert: string | undefined = c.http.tlsCertFile;
    const mode: 'snapshots' | 'log' | 'none' = c.persistence.mode;
    const keys: number = c.auth.keys.length;
    // @ts-expect-error not a key of the schema
    const unknownKey: unknown = c.cluster.noSuchKey;
    // @ts-expect-error an optional key may be undefined
    const keyFile: string = c.http.tlsKeyFile;
    // @ts-expect-error a number is not a string
    const idle: string = c.session.idleTimeoutMs;
    expect([workers > 0, cert, mode, keys, unknownKey, keyFile, typeof idle]).to.deep.equal([true, undefined, 'snapshots', 0, undefined, undefined, 'number']);
  });
});
