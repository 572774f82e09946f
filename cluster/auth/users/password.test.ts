import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { describe, it, mock } from 'node:test';
import { PasswordPolicyError } from './errors.ts';
import {
  checkPasswordPolicy,
  defaultScryptParams,
  hashPassword,
  minPasswordLength,
  needsRehash,
  passwordHashSchema,
  verifyPassword,
} from './password.ts';

const fast = { N: 2 ** 10, r: 8, p: 1, keylen: 32 };
const good = 'correct horse battery staple';

describe('hashPassword / verifyPassword', () => {
  it('accepts the right password and refuses a wrong one', async () => {
    const stored = await hashPassword(good, fast);
    assert.equal(await verifyPassword(good, stored), true);
    assert.equal(await verifyPassword('correct horse battery stapler', stored), false);
    assert.equal(await verifyPassword('', stored), false);
  });

  it('salts every hash, so one password hashes differently twice', async () => {
    const a = await hashPassword(good, fast);
    const b = await hashPassword(good, fast);
    assert.notEqual(a.salt, b.salt);
    assert.notEqual(a.hash, b.hash);
    assert.equal(Buffer.from(a.salt, 'base64').length, 16);
  });

  it('stores the parameters with the hash and verifies with them, not the defaults', async () => {
    const stored = await hashPassword(good, { N: 2 ** 11, r: 4, p: 2, keylen: 48 });
    assert.deepEqual(
      { N: stored.N, r: stored.r, p: stored.p, keylen: stored.keylen, algorithm: stored.algorithm },
      { N: 2 ** 11, r: 4, p: 2, keylen: 48, algorithm: 'scrypt' },
    );
    assert.equal(Buffer.from(stored.hash, 'base64').length, 48);
    assert.equal(passwordHashSchema.safeParse(stored).success, true);
    assert.equal(await verifyPassword(good, stored), true);
    assert.equal(await verifyPassword(good, { ...stored, N: 2 ** 12 }), false);
  });

  it('works with the default (production) parameters', async () => {
    const stored = await hashPassword(good);
    assert.equal(stored.N, defaultScryptParams.N);
    assert.equal(await verifyPassword(good, stored), true);
  });

  it('compares with crypto.timingSafeEqual, for right and wrong passwords alike', async (t) => {
    const stored = await hashPassword(good, fast);
    const spy = mock.method(crypto, 'timingSafeEqual');
    t.after(() => spy.mock.restore());
    await verifyPassword(good, stored);
    await verifyPassword('something else entirely', stored);
    assert.equal(spy.mock.callCount(), 2);
    assert.deepEqual(spy.mock.calls.map((call) => call.result), [true, false]);
  });

  it('normalizes Unicode, so a password typed on another keyboard still matches', async () => {
    const composed = 'pässwörd-is-long-enough';
    const decomposed = composed.normalize('NFD');
    assert.notEqual(composed, decomposed);
    const stored = await hashPassword(composed, fast);
    assert.equal(await verifyPassword(decomposed, stored), true);
  });

  it('says when a hash was made with weaker parameters than the current ones', async () => {
    const weak = await hashPassword(good, fast);
    assert.equal(needsRehash(weak), true);
    assert.equal(needsRehash(weak, fast), false);
  });
});

describe('checkPasswordPolicy', () => {
  it('refuses a short password and names the minimum', () => {
    assert.throws(
      () => checkPasswordPolicy('short-pw'),
      (err: unknown) => err instanceof PasswordPolicyError && err.code === 'PST_PASSWORD_POLICY' &&
        err.message.includes(`at least ${minPasswordLength}`) && err.message.includes('(8 characters)'),
    );
  });

  it('counts characters, not UTF-16 units', () => {
    assert.throws(() => checkPasswordPolicy('😀😀😀😀😀😀😀😀😀😀😀'), /11 characters/);
    checkPasswordPolicy('😀😀😀😀😀😀😀😀😀😀😀🙂');
  });

  it('refuses one repeated character, a password holding the user name, and a huge one', () => {
    assert.throws(() => checkPasswordPolicy('aaaaaaaaaaaaaaaa'), /single character/);
    assert.throws(() => checkPasswordPolicy('my-Alice-password', { username: 'alice' }), /user name/);
    assert.throws(() => checkPasswordPolicy('x'.repeat(1024) + 'y'), /too long/);
  });

  it('accepts a long passphrase', () => {
    checkPasswordPolicy(good, { username: 'alice' });
  });
});
