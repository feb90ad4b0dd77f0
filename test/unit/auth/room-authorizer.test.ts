import { expect } from 'chai';
import fc from 'fast-check';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RoomAuthorizer, claimAllows, PUBLISH_ALLOW, PUBLISH_ASK, PUBLISH_DENY } from '../../../src/auth/room-authorizer.js';
import type { Identity } from '../../../src/auth/verifier.js';
import { globMatches, loadConfig } from '../../../src/config/index.js';
import { SandbarError } from '../../../src/errors.js';

function load(toml: string, flags: string[] = []) {
  const dir = mkdtempSync(join(tmpdir(), 'sandbar-authz-'));
  const file = join(dir, 'c.toml');
  writeFileSync(file, toml);
  return loadConfig({ argv: ['--config', file, ...flags], env: {} });
}
const id = (user: string, claims: Record<string, unknown> = {}): Identity => ({ userId: user, exp: 2e9, iat: 1, claims: { sub: user, ...claims }, kid: '' });

const RULES = `
[authz]
rooms = [
  { match = "lobby", join = "public" },
  { match = "team-*", join = "claims" },
  { match = "news-*", join = "public", history = "claims", publish = "claims" },
  { match = "shadow", join = "public", presence = "deny" },
  { match = "closed-*", join = "deny" },
]
`;

describe('auth/room-authorizer', () => {
  const authz = load(RULES).config.authz;
  const subTokens = new Map<string, Identity>();
  const a = new RoomAuthorizer(authz, async (t) => {
    const i = subTokens.get(String(t));
    if (!i) throw new SandbarError('SANDBAR_ERR_AUTH_INVALID', 'bad subscription token');
    return i;
  }, null);

  it('first matching rule wins; no rule: authz.default (deny)', () => {
    expect(a.join(id('ann'), 'lobby', {}, true)).to.deep.equal({ publish: PUBLISH_ALLOW, presence: true });
    const r = a.join(id('ann'), 'random', {}, false);
    expect(r).to.be.instanceOf(SandbarError);
    expect((r as SandbarError).code).to.equal('SANDBAR_ERR_FORBIDDEN');
    expect((r as SandbarError).message).to.match(/ann may not join room:random: the room policy is deny/);
    expect(a.join(id('ann'), 'closed-1', {}, false)).to.be.instanceOf(SandbarError);
  });

  it('claims: the rooms claim (array for every action, or per action) lists the room', () => {
    expect(a.join(id('ann'), 'team-a', {}, false)).to.be.instanceOf(SandbarError);
    expect(a.join(id('ann', { rooms: ['team-*'] }), 'team-a', {}, true)).to.deep.equal({ publish: PUBLISH_ALLOW, presence: true });
    expect(a.join(id('ann', { rooms: { join: ['team-a'] } }), 'team-a', {}, false)).to.deep.equal({ publish: PUBLISH_DENY, presence: false });
    const h = a.join(id('ann', { rooms: { join: ['team-a'] } }), 'team-a', {}, true) as SandbarError;
    expect(h.message).to.match(/may not read the history of room:team-a.*join without last_seq/);
  });

  it('a public room with claims for history and publish: anyone joins, only the listed read history and publish', () => {
    expect(a.join(id('ann'), 'news-1', {}, false)).to.deep.equal({ publish: PUBLISH_DENY, presence: true });
    expect(a.join(id('ann'), 'news-1', {}, true)).to.be.instanceOf(SandbarError);
    expect(a.join(id('ann', { rooms: ['news-*'] }), 'news-1', {}, true)).to.deep.equal({ publish: PUBLISH_ALLOW, presence: true });
  });

  it('presence deny: joins hidden', () => {
    expect(a.join(id('ann'), 'shadow', {}, false)).to.deep.equal({ publish: PUBLISH_ALLOW, presence: false });
  });

  it('a subscription token for the room and user satisfies claims; for another room or user it is refused', async () => {
    subTokens.set('good', id('ann', { room: 'team-x' }));
    subTokens.set('other-room', id('ann', { room: 'team-y' }));
    subTokens.set('other-user', id('bob', { room: 'team-x' }));
    subTokens.set('join-only', id('ann', { room: 'team-x', actions: ['join'] }));
    expect(await a.join(id('ann'), 'team-x', { token: 'good' }, true)).to.deep.equal({ publish: PUBLISH_ALLOW, presence: true });
    expect(await a.join(id('ann'), 'team-x', { token: 'join-only' }, false)).to.deep.equal({ publish: PUBLISH_DENY, presence: false });
    expect(((await a.join(id('ann'), 'team-x', { token: 'other-room' }, false)) as SandbarError).message).to.match(/another room/);
    expect(((await a.join(id('ann'), 'team-x', { token: 'other-user' }, false)) as SandbarError).message).to.match(/names user bob/);
    expect(((await a.join(id('ann'), 'team-x', { token: 'forged' }, false)) as SandbarError).message).to.match(/subscription token is refused/);
    // It never opens a deny room.
    subTokens.set('closed', id('ann', { room: 'closed-1' }));
    expect(await a.join(id('ann'), 'closed-1', { token: 'closed' }, false)).to.be.instanceOf(SandbarError);
  });

  it('proxy publish is asked at each msg (PUBLISH_ASK)', () => {
    const cfg = load('[authz]\nproxyUrl = "http://127.0.0.1:9/x"\nrooms = [{ match = "p", join = "public", publish = "proxy" }]\n').config.authz;
    const p = new RoomAuthorizer(cfg, async () => { throw new Error('unused'); }, null);
    expect(p.join(id('ann'), 'p', {}, false)).to.deep.equal({ publish: PUBLISH_ASK, presence: true });
  });

  it('claimAllows ignores garbage claims', () => {
    for (const c of [undefined, null, 'team-*', 42, [42, null], { join: 'x' }, { join: [{}] }]) expect(claimAllows(c, 'team-a', 'join')).to.equal(false);
    expect(claimAllows(['x'.repeat(65) + '*'], 'x'.repeat(65), 'join')).to.equal(false);
  });

  it('globMatches agrees with the equivalent regular expression (property)', () => {
    const part = fc.stringMatching(/^[ab.]{0,4}$/);
    fc.assert(fc.property(fc.array(part, { minLength: 1, maxLength: 4 }), fc.stringMatching(/^[ab.]{0,10}$/), (parts, s) => {
      const glob = parts.join('*');
      const re = new RegExp(`^${parts.map((p) => p.replace(/\./g, '\\.')).join('.*')}$`);
      return globMatches(glob, s) === re.test(s);
    }), { numRuns: 2000 });
  });

  it('bad rules and keys stop start-up naming the key (exit 78)', () => {
    const bad: [string, RegExp][] = [
      ['[authz]\nrooms = [{ match = "a b", join = "public" }]', /authz\.rooms\[0\]\.match/],
      ['[authz]\nrooms = [{ match = "a", join = "maybe" }]', /authz\.rooms\[0\]\.join = "maybe".*expected one of "public", "claims", "proxy", "deny"/],
      ['[authz]\nrooms = [{ match = "a", join = "public", publsh = "deny" }]', /authz\.rooms\[0\]\.publsh.*unknown field/],
      ['[authz]\nrooms = [{ match = "a", join = "proxy" }]', /authz\.rooms\[0\].*authz\.proxyUrl/],
      ['[authz]\nrooms = "lobby"', /authz\.rooms.*array of tables/],
      ['[[auth.keys]]\nkid = "k"\nalg = "RS256"\npublicKey = "nope"', /auth\.keys\[0\]\.publicKey.*PEM public key/],
      ['[[auth.keys]]\nkid = "k"\nalg = "HS256"\nsecret = "short"', /auth\.keys\[0\]\.secret.*at least 16/],
      ['[[auth.keys]]\nkid = "k"\nalg = "none"\nsecret = "0123456789abcdefg"', /auth\.keys\[0\]\.alg = "none"/],
      ['[[auth.keys]]\nalg = "RS256"\nfile = "/nonexistent.pem"', /auth\.keys\[0\]\.file.*readable file/],
      ['[auth]\nalgorithms = ["HS256", "none"]', /auth\.algorithms\[1\] = "none"/],
      ['[auth]\njwksUrl = "ftp://x"', /auth\.jwksUrl.*http/],
    ];
    for (const [toml, re] of bad) {
      let caught: unknown;
      try { load(toml); } catch (err) { caught = err; }
      expect(caught, toml).to.be.instanceOf(SandbarError);
      expect((caught as SandbarError).code).to.equal('SANDBAR_ERR_CONFIG_INVALID');
      expect((caught as SandbarError).message, toml).to.match(re);
    }
    let envErr: unknown;
    try { loadConfig({ argv: [], env: { SANDBAR_AUTHZ_ROOMS: 'x' } }); } catch (err) { envErr = err; }
    expect((envErr as Error).message).to.match(/config file only/);
  });
});
