import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { BadInputError, NotFoundError, AuthenticationError, AccessDeniedError } from '../../../protocols/errors.ts';
import { SqliteBackend } from '../backend/sqlite-backend.ts';
import { FakeClock } from '../../common/clock.ts';
import { TokenAmbiguousError, TokenExpiredError, TokenInvalidError, TokenRoleError, TokenUsedError } from './errors.ts';
import { hashTokenSecret, tokenPrefix, TokenStore } from './token-store.ts';
import { rejectsWith } from '../../../test/fixtures/rejects-with.ts';

const minute = 60_000;

function setup(t: TestContext) {
  const clock = new FakeClock(new Date('2026-01-01T12:00:00Z'));
  const backend = SqliteBackend.open(':memory:', { clock });
  t.after(() => backend.close());
  return { clock, backend, tokens: new TokenStore(backend, { clock }) };
}

const rejects = rejectsWith;

describe('TokenStore.add / list / remove', () => {
  it('returns the secret once and stores only its hash', async (t) => {
    const { tokens, backend } = setup(t);
    const { secret, token } = await tokens.add({ roles: ['node', 'db'], ttlMs: 30 * minute, labels: { env: 'prod' }, name: 'rack 4' });
    assert.match(secret, /^[0-9a-f]{64}$/);
    assert.equal(token.id, hashTokenSecret(secret).slice(0, 12));
    assert.deepEqual(
      { roles: token.roles, labels: token.labels, name: token.name, singleUse: token.singleUse, uses: token.uses, status: token.status },
      { roles: ['node', 'db'], labels: { env: 'prod' }, name: 'rack 4', singleUse: false, uses: 0, status: 'active' },
    );
    assert.equal(token.expires.toISOString(), '2026-01-01T12:30:00.000Z');
    const items = await backend.range('');
    assert.deepEqual(items.map((i) => i.key), [tokenPrefix + hashTokenSecret(secret)]);
    assert.equal(items[0]!.value.includes(secret), false);
  });

  it('lists tokens without their secrets, oldest first', async (t) => {
    const { tokens, clock } = setup(t);
    const a = await tokens.add({ roles: ['node'], ttlMs: 10 * minute });
    clock.advance(1000);
    const b = await tokens.add({ roles: ['trusted_cluster'], ttlMs: 60 * minute, labels: { env: 'prod' } });
    const listed = await tokens.list();
    assert.deepEqual(listed.map((x) => x.id), [a.token.id, b.token.id]);
    const text = JSON.stringify(listed);
    assert.equal(text.includes(a.secret) || text.includes(b.secret), false);
    assert.equal(text.includes(hashTokenSecret(a.secret)), false);
  });

  it('removes by id, by a longer prefix, or by secret', async (t) => {
    const { tokens } = setup(t);
    const a = await tokens.add({ roles: ['node'] });
    const b = await tokens.add({ roles: ['node'] });
    const c = await tokens.add({ roles: ['node'] });
    await tokens.remove(a.token.id);
    await tokens.remove(hashTokenSecret(b.secret).slice(0, 20));
    await tokens.remove(c.secret);
    assert.deepEqual(await tokens.list(), []);
    await rejects(tokens.consume(a.secret, { role: 'node' }), TokenInvalidError);
    const missing = await rejects(tokens.remove(a.token.id), NotFoundError);
    assert.match(missing.message, /pctl tokens ls/);
    await rejects(tokens.remove('zz'), BadInputError);
  });

  it('refuses an id prefix that matches several tokens', async (t) => {
    const { tokens, backend } = setup(t);
    const { secret } = await tokens.add({ roles: ['node'] });
    const value = (await backend.get(tokenPrefix + hashTokenSecret(secret)))!.value;
    // Two records whose hashes share 'abcdef' (finding real secrets for that would take millions of tries).
    await backend.create({ key: tokenPrefix + 'abcdef' + '0'.repeat(58), value });
    await backend.create({ key: tokenPrefix + 'abcdef' + '1'.repeat(58), value });
    const err = await rejects(tokens.remove('abcdef'), TokenAmbiguousError);
    assert.match(err.message, /2 join tokens have ids starting with abcdef; give more characters/);
    await tokens.remove('abcdef1');
    assert.equal((await tokens.list()).length, 2);
  });

  it('refuses bad options with the field named', async (t) => {
    const { tokens } = setup(t);
    await rejects(tokens.add({ roles: [] }), BadInputError);
    await rejects(tokens.add({ roles: ['admin' as never] }), BadInputError);
    await rejects(tokens.add({ roles: ['auth' as never] }), BadInputError);
    await rejects(tokens.add({ roles: ['node', 'node'] }), BadInputError);
    const ttl = await rejects(tokens.add({ roles: ['node'], ttlMs: 1000 }), BadInputError);
    assert.match(ttl.message, /join token: ttlMs: must be at least one minute/);
    await rejects(tokens.add({ roles: ['node'], labels: { env: '' } }), BadInputError);
  });
});

describe('TokenStore.consume', () => {
  it('admits a listed role, counts the use, and can be used again unless single-use', async (t) => {
    const { tokens, clock } = setup(t);
    const { secret } = await tokens.add({ roles: ['node', 'app'], labels: { env: 'dev' } });
    clock.advance(minute);
    const used = await tokens.consume(secret, { role: 'node', consumer: 'host-1' });
    assert.deepEqual([used.labels, used.uses, used.lastUsedBy, used.lastUsedAt?.toISOString()], [{ env: 'dev' }, 1, 'host-1', '2026-01-01T12:01:00.000Z']);
    assert.equal((await tokens.consume(`  ${secret.toUpperCase()}\n`, { role: 'app' })).uses, 2);
    assert.equal((await tokens.list())[0]!.uses, 2);
  });

  it('says a token is unknown without echoing it', async (t) => {
    const { tokens } = setup(t);
    const secret = 'ab'.repeat(32);
    const err = await rejects(tokens.consume(secret, { role: 'kube' }), TokenInvalidError);
    assert.equal(err.code, 'PST_TOKEN_INVALID');
    assert.ok(err instanceof AuthenticationError);
    assert.equal(err.message.includes(secret), false);
    assert.match(err.message, /pctl tokens add --type=kube/);
    await rejects(tokens.consume('not-a-token', { role: 'node' }), TokenInvalidError);
  });

  it('says when a token expired, and forgets it a day later', async (t) => {
    const { tokens, clock } = setup(t);
    const { secret, token } = await tokens.add({ roles: ['node'], ttlMs: 3 * minute });
    clock.advance(3 * minute);
    const err = await rejects(tokens.consume(secret, { role: 'node' }), TokenExpiredError);
    assert.equal(err.code, 'PST_TOKEN_EXPIRED');
    assert.equal(
      err.message,
      `join token ${token.id} expired at 2026-01-01 12:03 UTC; ask an admin for a new one: pctl tokens add --type=node`,
    );
    assert.equal((await tokens.list())[0]!.status, 'expired');
    clock.advance(24 * 60 * minute);
    await rejects(tokens.consume(secret, { role: 'node' }), TokenInvalidError);
    assert.deepEqual(await tokens.list(), []);
  });

  it('refuses a second use of a single-use token, saying when and by whom', async (t) => {
    const { tokens, clock } = setup(t);
    const { secret, token } = await tokens.add({ roles: ['node'], singleUse: true });
    clock.advance(3 * minute);
    await tokens.consume(secret, { role: 'node', consumer: 'node-1' });
    const err = await rejects(tokens.consume(secret, { role: 'node' }), TokenUsedError);
    assert.equal(err.code, 'PST_TOKEN_USED');
    assert.equal(
      err.message,
      `join token ${token.id} is single-use and was already used at 2026-01-01 12:03 UTC by node-1; ask an admin for a new one: pctl tokens add --type=node`,
    );
    assert.equal((await tokens.list())[0]!.status, 'used');
  });

  it('refuses a role the token does not allow, and does not count it', async (t) => {
    const { tokens } = setup(t);
    const { secret, token } = await tokens.add({ roles: ['node', 'db'], singleUse: true });
    const err = await rejects(tokens.consume(secret, { role: 'kube' }), TokenRoleError);
    assert.ok(err instanceof AccessDeniedError);
    assert.equal(err.code, 'PST_TOKEN_ROLE');
    assert.equal(err.message, `join token ${token.id} allows node, db, not kube; ask an admin for a token of that type: pctl tokens add --type=kube`);
    assert.equal((await tokens.consume(secret, { role: 'db' })).uses, 1);
  });

  it('lets exactly one of two concurrent joins use a single-use token', async (t) => {
    const { tokens } = setup(t);
    const { secret } = await tokens.add({ roles: ['node'], singleUse: true });
    const results = await Promise.allSettled([
      tokens.consume(secret, { role: 'node', consumer: 'a' }),
      tokens.consume(secret, { role: 'node', consumer: 'b' }),
    ]);
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    const loser = results.find((r) => r.status === 'rejected');
    assert.ok(loser && loser.reason instanceof TokenUsedError, String(loser && loser.reason));
    assert.equal((await tokens.list())[0]!.uses, 1);
  });

  it('counts every one of many concurrent uses of a multi-use token', async (t) => {
    const { tokens } = setup(t);
    const { secret } = await tokens.add({ roles: ['node'] });
    await Promise.all(Array.from({ length: 8 }, () => tokens.consume(secret, { role: 'node' })));
    assert.equal((await tokens.list())[0]!.uses, 8);
  });
});
