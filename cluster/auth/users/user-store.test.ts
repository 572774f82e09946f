import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { AlreadyExistsError, BadInputError, CompareFailedError, NotFoundError } from '../../../protocols/errors.ts';
import { SqliteBackend } from '../backend/sqlite-backend.ts';
import { FakeClock } from '../../common/clock.ts';
import { AccountLockedError, LoginFailedError, PasswordPolicyError, TotpInvalidError, TotpStateError } from './errors.ts';
import { totpCode, totpPeriod } from './totp.ts';
import { UserStore } from './user-store.ts';
import { rejectsWith } from '../../../test/fixtures/rejects-with.ts';

const fast = { N: 2 ** 10, r: 8, p: 1, keylen: 32 };
const password = 'correct horse battery staple';
const minute = 60_000;

function setup(t: TestContext, options: { scrypt?: typeof fast } = {}) {
  const clock = new FakeClock(new Date('2026-01-01T12:00:10Z'));
  const backend = SqliteBackend.open(':memory:', { clock });
  t.after(() => backend.close());
  const users = new UserStore(backend, { clock, scrypt: options.scrypt ?? fast });
  return { clock, backend, users };
}

async function withPassword(users: UserStore, name = 'alice') {
  await users.create(name, { roles: ['access'], traits: { logins: [name] } });
  await users.setPassword(name, password);
}

const rejects = rejectsWith;

describe('UserStore records', () => {
  it('creates, gets, lists, updates and deletes users', async (t) => {
    const { users } = setup(t);
    const alice = await users.create('alice@example.com', { roles: ['access'], traits: { logins: ['alice'] } });
    assert.deepEqual(
      { name: alice.name, roles: alice.roles, traits: alice.traits, hasPassword: alice.hasPassword, totpEnabled: alice.totpEnabled },
      { name: 'alice@example.com', roles: ['access'], traits: { logins: ['alice'] }, hasPassword: false, totpEnabled: false },
    );
    await users.create('bob');
    assert.deepEqual((await users.list()).map((u) => u.name), ['alice@example.com', 'bob']);
    const updated = await users.update('bob', { roles: ['editor'] });
    assert.deepEqual(updated.roles, ['editor']);
    assert.deepEqual((await users.get('bob')).traits, {});
    await users.delete('bob');
    await rejects(users.get('bob'), NotFoundError);
    await rejects(users.delete('bob'), NotFoundError);
  });

  it('refuses a duplicate, a bad name and a bad spec with messages that say what to do', async (t) => {
    const { users } = setup(t);
    await users.create('alice');
    const dup = await rejects(users.create('alice'), AlreadyExistsError);
    assert.match(dup.message, /user alice already exists; .*pctl users rm alice/);
    const bad = await rejects(users.create('../etc'), BadInputError);
    assert.match(bad.message, /user name/);
    await rejects(users.create('carol', { roles: 'admin' } as never), BadInputError);
    const missing = await rejects(users.get('nobody'), NotFoundError);
    assert.match(missing.message, /user nobody not found; list users with pctl users ls/);
  });

  it('updates with an expected revision only if nobody changed the user since', async (t) => {
    const { users } = setup(t);
    const alice = await users.create('alice');
    await users.update('alice', { roles: ['a'] }, { expectedRevision: alice.revision });
    await rejects(users.update('alice', { roles: ['b'] }, { expectedRevision: alice.revision }), CompareFailedError);
    assert.deepEqual((await users.get('alice')).roles, ['a']);
  });

  it('keeps the password hash when roles change', async (t) => {
    const { users } = setup(t);
    await withPassword(users);
    await users.update('alice', { roles: ['editor'] });
    assert.equal((await users.authenticate('alice', password)).name, 'alice');
  });

  it('never returns a hash or a secret', async (t) => {
    const { users } = setup(t);
    await withPassword(users);
    const { secret } = await users.enrollTotp('alice');
    const shown = JSON.stringify([await users.get('alice'), await users.list(), await users.authenticate('alice', password)]);
    for (const word of ['hash', 'salt', 'secret', secret, password]) assert.equal(shown.includes(word), false, word);
  });

  it('refuses a password that breaks the policy and keeps the old one', async (t) => {
    const { users } = setup(t);
    await withPassword(users);
    await rejects(users.setPassword('alice', 'too-short'), PasswordPolicyError);
    await rejects(users.setPassword('alice', 'alice-has-a-long-password'), PasswordPolicyError);
    assert.equal((await users.authenticate('alice', password)).name, 'alice');
  });
});

describe('UserStore.authenticate', () => {
  it('returns the user for the right password', async (t) => {
    const { users } = setup(t);
    await withPassword(users);
    const user = await users.authenticate('alice', password);
    assert.deepEqual([user.name, user.roles, user.traits], ['alice', ['access'], { logins: ['alice'] }]);
  });

  it('gives one message for an unknown user, a wrong password and no password', async (t) => {
    const { users } = setup(t);
    const unknown = await rejects(users.authenticate('bob', password), LoginFailedError);
    await users.create('bob');
    const noPassword = await rejects(users.authenticate('bob', password), LoginFailedError);
    await users.setPassword('bob', password);
    const wrong = await rejects(users.authenticate('bob', 'not the right password'), LoginFailedError);
    assert.equal(unknown.message, wrong.message);
    assert.equal(noPassword.message, wrong.message);
    assert.equal(wrong.code, 'PST_LOGIN_FAILED');
    assert.deepEqual([unknown.auditReason, noPassword.auditReason, wrong.auditReason], ['unknown_user', 'no_password', 'bad_password']);
    assert.doesNotMatch(wrong.message, /password is wrong|no such user|not found/);
  });

  it('quotes a junk user name safely', async (t) => {
    const { users } = setup(t);
    const err = await rejects(users.authenticate('x\n'.repeat(100), password), LoginFailedError);
    assert.doesNotMatch(err.message, /\n/);
    assert.ok(err.message.length < 300);
  });

  it('locks the account after 5 failures for 15 minutes, then lets the right password in', async (t) => {
    const { users, clock } = setup(t);
    await withPassword(users);
    for (let i = 0; i < 4; i++) await rejects(users.authenticate('alice', 'wrong password ' + i), LoginFailedError);
    const locked = await rejects(users.authenticate('alice', 'wrong password 5'), AccountLockedError);
    assert.equal(locked.code, 'PST_ACCOUNT_LOCKED');
    assert.equal(
      locked.message,
      'account alice is locked until 2026-01-01 12:15 UTC after 5 failed logins; wait or ask an admin: pctl users reset alice',
    );
    assert.equal((await users.get('alice')).lockedUntil?.toISOString(), '2026-01-01T12:15:10.000Z');
    // While locked, even the right password is refused.
    clock.advance(14 * minute);
    await rejects(users.authenticate('alice', password), AccountLockedError);
    clock.advance(1 * minute);
    assert.equal((await users.authenticate('alice', password)).name, 'alice');
    assert.equal((await users.get('alice')).lockedUntil, undefined);
  });

  it('starts counting again after a success', async (t) => {
    const { users } = setup(t);
    await withPassword(users);
    for (let i = 0; i < 4; i++) await rejects(users.authenticate('alice', 'wrong password'), LoginFailedError);
    await users.authenticate('alice', password);
    for (let i = 0; i < 4; i++) await rejects(users.authenticate('alice', 'wrong password'), LoginFailedError);
    assert.equal((await users.authenticate('alice', password)).lockedUntil, undefined);
  });

  it('starts counting again after the lock runs out, and forgets old failures', async (t) => {
    const { users, clock } = setup(t);
    await withPassword(users);
    for (let i = 0; i < 4; i++) await rejects(users.authenticate('alice', 'wrong password'), LoginFailedError);
    await rejects(users.authenticate('alice', 'wrong password'), AccountLockedError);
    clock.advance(15 * minute);
    for (let i = 0; i < 4; i++) await rejects(users.authenticate('alice', 'wrong password'), LoginFailedError);
    clock.advance(31 * minute);
    for (let i = 0; i < 4; i++) await rejects(users.authenticate('alice', 'wrong password'), LoginFailedError);
    assert.equal((await users.get('alice')).lockedUntil, undefined);
  });

  it('counts concurrent failures atomically', async (t) => {
    const { users } = setup(t);
    await withPassword(users);
    const results = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => users.authenticate('alice', `wrong ${i} password`)));
    assert.ok(results.every((r) => r.status === 'rejected'));
    assert.ok((await users.get('alice')).lockedUntil, 'five concurrent failures must lock the account');
    await rejects(users.authenticate('alice', password), AccountLockedError);
  });

  it('lets an admin unlock', async (t) => {
    const { users } = setup(t);
    await withPassword(users);
    for (let i = 0; i < 5; i++) await users.authenticate('alice', 'wrong password').catch(() => {});
    await users.unlock('alice');
    assert.equal((await users.authenticate('alice', password)).name, 'alice');
  });

  it('re-hashes with stronger parameters at the next login', async (t) => {
    const { users, backend, clock } = setup(t);
    await withPassword(users);
    const stronger = new UserStore(backend, { clock, scrypt: { ...fast, N: 2 ** 11 } });
    await stronger.authenticate('alice', password);
    const stored = JSON.parse((await backend.get('/users/alice'))!.value);
    assert.equal(stored.password.N, 2 ** 11);
    assert.equal((await stronger.authenticate('alice', password)).name, 'alice');
  });
});

describe('UserStore TOTP', () => {
  async function enrolled(t: TestContext) {
    const env = setup(t);
    await withPassword(env.users);
    const { secret, uri } = await env.users.enrollTotp('alice');
    assert.match(uri, /^otpauth:\/\/totp\/Postern:alice\?/);
    await env.users.confirmTotp('alice', totpCode(secret, env.clock.now()));
    env.clock.advance(totpPeriod * 1000);
    return { ...env, secret };
  }

  it('confirms an enrolment only with a right code, and only while it is pending', async (t) => {
    const { users, clock } = setup(t);
    await withPassword(users);
    await rejects(users.confirmTotp('alice', '000000'), TotpStateError);
    const { secret } = await users.enrollTotp('alice');
    const right = totpCode(secret, clock.now());
    const wrong = String((Number(right) + 1) % 1_000_000).padStart(6, '0');
    await rejects(users.confirmTotp('alice', wrong), TotpInvalidError);
    assert.equal((await users.get('alice')).totpEnabled, false);
    clock.advance(11 * minute);
    await rejects(users.confirmTotp('alice', totpCode(secret, clock.now())), TotpStateError);
  });

  it('asks for the code once enrolled, and takes a right one', async (t) => {
    const { users, clock, secret } = await enrolled(t);
    assert.equal((await users.get('alice')).totpEnabled, true);
    const missing = await rejects(users.authenticate('alice', password), LoginFailedError);
    assert.equal(missing.auditReason, 'totp_missing');
    const badCode = await rejects(users.authenticate('alice', password, '12345x'), LoginFailedError);
    assert.equal(badCode.auditReason, 'bad_totp');
    assert.equal((await users.authenticate('alice', password, totpCode(secret, clock.now()))).name, 'alice');
  });

  it('refuses a code used once already, even with the right password', async (t) => {
    const { users, clock, secret } = await enrolled(t);
    const code = totpCode(secret, clock.now());
    await users.authenticate('alice', password, code);
    const replay = await rejects(users.authenticate('alice', password, code), LoginFailedError);
    assert.equal(replay.auditReason, 'totp_replayed');
    clock.advance(totpPeriod * 1000);
    assert.equal((await users.authenticate('alice', password, totpCode(secret, clock.now()))).name, 'alice');
  });

  it('lets only one of two concurrent logins with the same code in', async (t) => {
    const { users, clock, secret } = await enrolled(t);
    const code = totpCode(secret, clock.now());
    const results = await Promise.allSettled([users.authenticate('alice', password, code), users.authenticate('alice', password, code)]);
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    const loser = results.find((r) => r.status === 'rejected');
    assert.ok(loser && loser.reason instanceof LoginFailedError);
  });

  it('counts wrong codes towards the lockout', async (t) => {
    const { users } = await enrolled(t);
    for (let i = 0; i < 4; i++) await rejects(users.authenticate('alice', password, '000000'), LoginFailedError);
    await rejects(users.authenticate('alice', password, '000000'), AccountLockedError);
  });

  it('lets an admin remove the factor', async (t) => {
    const { users } = await enrolled(t);
    await users.removeTotp('alice');
    assert.equal((await users.authenticate('alice', password)).totpEnabled, false);
  });
});
