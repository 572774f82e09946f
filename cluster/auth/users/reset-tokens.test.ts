import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { BadInputError, NotFoundError } from '../../../protocols/errors.ts';
import { SqliteBackend } from '../backend/sqlite-backend.ts';
import { FakeClock } from '../../common/clock.ts';
import { AccountLockedError, LoginFailedError, PasswordPolicyError, ResetTokenInvalidError, TotpInvalidError } from './errors.ts';
import { hashResetToken, resetTokenPrefix, sameHash } from './reset-tokens.ts';
import { totpCode, totpPeriod } from './totp.ts';
import { UserStore } from './user-store.ts';
import { rejectsWith } from '../../../test/fixtures/rejects-with.ts';

const fast = { N: 2 ** 10, r: 8, p: 1, keylen: 32 };
const oldPassword = 'correct horse battery staple';
const newPassword = 'a whole new passphrase here';
const minute = 60_000;

function setup(t: TestContext) {
  const clock = new FakeClock(new Date('2026-01-01T12:00:10Z'));
  const backend = SqliteBackend.open(':memory:', { clock });
  t.after(() => backend.close());
  return { clock, backend, users: new UserStore(backend, { clock, scrypt: fast }) };
}

const rejects = rejectsWith;

describe('invite (first admin sign-up)', () => {
  it('lets a new user set a password once with the invite token', async (t) => {
    const { users, clock } = setup(t);
    await users.create('admin', { roles: ['editor', 'access'] });
    await rejects(users.authenticate('admin', newPassword), LoginFailedError);
    const { token, expires } = await users.createResetToken('admin', { purpose: 'invite', ttlMs: 24 * 60 * minute });
    assert.match(token, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(expires.getTime(), clock.now().getTime() + 24 * 60 * minute);
    assert.deepEqual(await users.inspectResetToken(token), { user: 'admin', purpose: 'invite', resetTotp: false, expires, totpRequired: false });
    const user = await users.useResetToken(token, newPassword);
    assert.equal(user.hasPassword, true);
    assert.equal((await users.authenticate('admin', newPassword)).name, 'admin');
    await rejects(users.useResetToken(token, 'yet another passphrase'), ResetTokenInvalidError);
    assert.equal((await users.authenticate('admin', newPassword)).name, 'admin');
  });
});

describe('token text', () => {
  it('never starts with a dash, which a command line would read as an option (base64url draws one in 64)', async (t) => {
    const { users } = setup(t);
    await users.create('dash', { roles: ['access'] });
    for (let i = 0; i < 300; i++) {
      const { token } = await users.createResetToken('dash');
      assert.match(token, /^[A-Za-z0-9_][A-Za-z0-9_-]{42}$/);
    }
  });
});

describe('reset tokens', () => {
  async function withUser(t: TestContext) {
    const env = setup(t);
    await env.users.create('alice', { roles: ['access'] });
    await env.users.setPassword('alice', oldPassword);
    return env;
  }

  it('stores only the SHA-256 of the token, with the expiry as TTL', async (t) => {
    const { users, backend } = await withUser(t);
    const { token, expires } = await users.createResetToken('alice');
    const items = await backend.range('');
    assert.equal(items.some((item) => item.key.includes(token) || item.value.includes(token)), false);
    const item = await backend.get(resetTokenPrefix + hashResetToken(token));
    assert.equal(item?.expires?.getTime(), expires.getTime());
    assert.equal(JSON.stringify(await users.get('alice')).includes(hashResetToken(token)), false);
  });

  it('expires after its ttl', async (t) => {
    const { users, clock } = await withUser(t);
    const { token } = await users.createResetToken('alice', { ttlMs: 30 * minute });
    clock.advance(30 * minute);
    await rejects(users.useResetToken(token, newPassword), ResetTokenInvalidError);
    assert.equal((await users.authenticate('alice', oldPassword)).name, 'alice');
  });

  it('refuses junk, unknown tokens, and a token for a deleted user', async (t) => {
    const { users } = await withUser(t);
    const err = await rejects(users.useResetToken('junk', newPassword), ResetTokenInvalidError);
    assert.equal(err.code, 'PST_RESET_TOKEN_INVALID');
    assert.match(err.message, /ask an admin for a new one: pctl users reset/);
    await rejects(users.useResetToken('A'.repeat(43), newPassword), ResetTokenInvalidError);
    const { token } = await users.createResetToken('alice');
    await users.delete('alice');
    await rejects(users.useResetToken(token, newPassword), ResetTokenInvalidError);
  });

  it('is replaced by a newer token for the same user', async (t) => {
    const { users, backend } = await withUser(t);
    const first = await users.createResetToken('alice');
    const second = await users.createResetToken('alice');
    await rejects(users.useResetToken(first.token, newPassword), ResetTokenInvalidError);
    assert.equal(await backend.get(resetTokenPrefix + hashResetToken(first.token)), undefined);
    await users.useResetToken(second.token, newPassword);
    assert.equal(await backend.get(resetTokenPrefix + hashResetToken(second.token)), undefined);
  });

  it('is voided by a password change', async (t) => {
    const { users } = await withUser(t);
    const { token } = await users.createResetToken('alice');
    await users.setPassword('alice', 'changed by the user meanwhile');
    await rejects(users.useResetToken(token, newPassword), ResetTokenInvalidError);
  });

  it('is not used up by a password the policy refuses', async (t) => {
    const { users } = await withUser(t);
    const { token } = await users.createResetToken('alice');
    await rejects(users.useResetToken(token, 'short'), PasswordPolicyError);
    await users.useResetToken(token, newPassword);
    await rejects(users.authenticate('alice', oldPassword), LoginFailedError);
    assert.equal((await users.authenticate('alice', newPassword)).name, 'alice');
  });

  it('works once when two uses race', async (t) => {
    const { users } = await withUser(t);
    const { token } = await users.createResetToken('alice');
    const results = await Promise.allSettled([users.useResetToken(token, newPassword), users.useResetToken(token, 'the other racer passphrase')]);
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    const loser = results.find((r) => r.status === 'rejected');
    assert.ok(loser && loser.reason instanceof ResetTokenInvalidError);
  });

  it('lifts a lock', async (t) => {
    const { users } = await withUser(t);
    for (let i = 0; i < 5; i++) await users.authenticate('alice', 'wrong password').catch(() => {});
    await rejects(users.authenticate('alice', oldPassword), AccountLockedError);
    const { token } = await users.createResetToken('alice');
    await users.useResetToken(token, newPassword);
    assert.equal((await users.authenticate('alice', newPassword)).name, 'alice');
  });

  it('is how an admin lets a locked user with TOTP back in', async (t) => {
    const { users, clock } = await withUser(t);
    const { secret } = await users.enrollTotp('alice');
    await users.confirmTotp('alice', totpCode(secret, clock.now()));
    clock.advance(totpPeriod * 1000);
    for (let i = 0; i < 5; i++) await users.authenticate('alice', 'wrong password').catch(() => {});
    assert.ok((await users.get('alice')).lockedUntil);
    const { token } = await users.createResetToken('alice');
    assert.equal((await users.get('alice')).lockedUntil, undefined);
    await users.useResetToken(token, newPassword, totpCode(secret, clock.now()));
    clock.advance(totpPeriod * 1000);
    assert.equal((await users.authenticate('alice', newPassword, totpCode(secret, clock.now()))).name, 'alice');
  });

  it('asks a user with TOTP for a code, unless issued to reset the factor', async (t) => {
    const { users, clock } = await withUser(t);
    const { secret } = await users.enrollTotp('alice');
    await users.confirmTotp('alice', totpCode(secret, clock.now()));
    clock.advance(totpPeriod * 1000);
    const { token } = await users.createResetToken('alice');
    assert.equal((await users.inspectResetToken(token)).totpRequired, true);
    await rejects(users.useResetToken(token, newPassword), TotpInvalidError);
    await users.useResetToken(token, newPassword, totpCode(secret, clock.now()));
    await rejects(users.authenticate('alice', newPassword), LoginFailedError);
    clock.advance(totpPeriod * 1000);
    assert.equal((await users.authenticate('alice', newPassword, totpCode(secret, clock.now()))).totpEnabled, true);

    const lost = await users.createResetToken('alice', { resetTotp: true });
    assert.equal((await users.inspectResetToken(lost.token)).totpRequired, false);
    await users.useResetToken(lost.token, 'after losing my phone');
    assert.equal((await users.authenticate('alice', 'after losing my phone')).totpEnabled, false);
  });

  it('counts wrong codes at reset towards the lockout', async (t) => {
    const { users, clock } = await withUser(t);
    const { secret } = await users.enrollTotp('alice');
    await users.confirmTotp('alice', totpCode(secret, clock.now()));
    const { token } = await users.createResetToken('alice');
    for (let i = 0; i < 4; i++) await rejects(users.useResetToken(token, newPassword, '000000'), TotpInvalidError);
    await rejects(users.useResetToken(token, newPassword, '000000'), AccountLockedError);
  });

  it('refuses a ttl out of bounds and an unknown user', async (t) => {
    const { users } = await withUser(t);
    await rejects(users.createResetToken('alice', { ttlMs: 1000 }), BadInputError);
    await rejects(users.createResetToken('alice', { ttlMs: 8 * 24 * 60 * minute }), BadInputError);
    await rejects(users.createResetToken('nobody'), NotFoundError);
  });
});

describe('sameHash', () => {
  it('matches equal hashes only', () => {
    const a = hashResetToken('a');
    assert.equal(sameHash(a, a), true);
    assert.equal(sameHash(a, hashResetToken('b')), false);
    assert.equal(sameHash(undefined, a), false);
  });
});
