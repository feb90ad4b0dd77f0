import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { parse } from 'smol-toml';
import { loadConfig, schema, tableKeys, type ConfigKey } from '../../../src/config/index.js';

const SHIPPED = 'config/sandbar.toml';
/**
 * Keys the shipped file deliberately sets away from the default, each marked
 * DEVELOPMENT in a comment: the demo page of `npm start` needs dev tokens.
 */
const DEV_OVERRIDES: Partial<Record<ConfigKey, unknown>> = { 'auth.devTokenEndpoint': true };
/**
 * Table keys (arrays of tables) the shipped file sets, marked DEVELOPMENT too:
 * the demo page's rooms are open to any signed-in user (the default is deny).
 */
const DEV_TABLES: Record<string, unknown> = { 'authz.rooms': [{ match: 'lobby', join: 'public' }, { match: 'demo-*', join: 'public' }] };

/** Every leaf of a parsed TOML document as dotted key → value. */
function leaves(table: Record<string, unknown>, prefix = ''): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const [name, value] of Object.entries(table)) {
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      for (const [k, v] of leaves(value as Record<string, unknown>, `${prefix}${name}.`)) out.set(k, v);
    } else {
      out.set(prefix + name, value);
    }
  }
  return out;
}

describe('config: shipped config/sandbar.toml and docs', () => {
  const text = readFileSync(SHIPPED, 'utf8');
  const keys = Object.keys(schema) as ConfigKey[];
  // Keys whose default is derived at load time are present only as a comment.
  const derived = keys.filter((k) => schema[k].default === null);

  it('loads without error', () => {
    expect(() => loadConfig({ argv: ['--config', SHIPPED], env: {} })).to.not.throw();
  });

  it('has exactly the schema keys, each with its default value', () => {
    const found = leaves(parse(text));
    for (const [key, value] of Object.entries(DEV_TABLES)) {
      expect(found.get(key), key).to.deep.equal(value);
      expect(text, key).to.match(new RegExp(`# DEVELOPMENT[^\n]*\n(#[^\n]*\n)*${key.split('.').pop()} = `));
      found.delete(key);
    }
    expect([...found.keys()].sort()).to.deep.equal(keys.filter((k) => !derived.includes(k)).sort());
    for (const [key, value] of found) {
      const want = key in DEV_OVERRIDES ? DEV_OVERRIDES[key as ConfigKey] : schema[key as ConfigKey].default;
      expect(value, key).to.deep.equal(want);
    }
    for (const key of Object.keys(DEV_OVERRIDES)) expect(text, key).to.match(new RegExp(`# DEVELOPMENT[^\n]*\n(#[^\n]*\n)*${key.split('.').pop()} = `));
  });

  it('shows each derived key commented out, and a comment before every key', () => {
    // A key inside a table is commented out under its table, by its last segment.
    for (const key of derived) expect(text, key).to.match(new RegExp(`^# ${key.split('.').pop()} = `, 'm'));
    const lines = text.split('\n');
    lines.forEach((line, i) => {
      if (/^[A-Za-z]\w* = /.test(line)) expect(lines[i - 1], `comment above "${line}"`).to.match(/^# /);
    });
  });

  it('loads to the same config as no file at all (but for the DEVELOPMENT overrides)', () => {
    const plain = loadConfig({ argv: Object.entries(DEV_OVERRIDES).map(([k, v]) => `--${k}=${String(v)}`), env: {} }).config;
    const shipped = loadConfig({ argv: ['--config', SHIPPED], env: {} }).config;
    expect(shipped.authz.rooms).to.deep.equal((DEV_TABLES['authz.rooms'] as object[]).map((r) => ({ ...r, history: 'public', publish: 'public', presence: 'public' })));
    expect({ ...shipped, authz: { ...shipped.authz, rooms: [] } }).to.deep.equal(plain);
  });

  it('documents every table key ([[...]]) in the shipped file and docs/configuration.md', () => {
    const doc = readFileSync('docs/configuration.md', 'utf8');
    for (const key of Object.keys(tableKeys)) {
      expect(doc, key).to.include(`| \`${key}\` |`);
      expect(text, key).to.include(`[[${key}]]`);
    }
  });

  it('docs/configuration.md has a table row for every key', () => {
    const doc = readFileSync('docs/configuration.md', 'utf8');
    for (const key of keys) expect(doc, key).to.include(`| \`${key}\` |`);
    expect(doc).to.include('78').and.include('sandbar check-config');
  });
});
