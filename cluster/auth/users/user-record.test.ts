import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseResources } from '../../access/resources/parse-resources.ts';
import { ResourceRegistry } from '../../access/resources/registry.ts';
import { toUser, userKind, userNameSchema, type UserRecord } from './user-record.ts';

const registry = new ResourceRegistry([userKind]);

describe('userNameSchema', () => {
  it('takes plain names and e-mail addresses', () => {
    for (const name of ['alice', 'alice.smith', 'alice+ops@example.com', 'a', 'a_b-c']) {
      assert.equal(userNameSchema.safeParse(name).success, true, name);
    }
  });

  it('refuses names that could escape a key segment or confuse a shell', () => {
    for (const name of ['', 'a/b', '../x', '-alice', 'alice.', 'al ice', 'al\u0000ice', 'x'.repeat(255)]) {
      assert.equal(userNameSchema.safeParse(name).success, false, JSON.stringify(name));
    }
  });
});

describe('kind: user', () => {
  it('parses a user resource with roles and traits', () => {
    const [user] = parseResources(
      'kind: user\nversion: v1\nmetadata: {name: alice@example.com}\nspec: {roles: [access], traits: {logins: [alice, ubuntu]}}\n',
      { source: 'alice.yaml', registry },
    );
    assert.deepEqual(user?.spec, { roles: ['access'], traits: { logins: ['alice', 'ubuntu'] } });
  });

  it('refuses secrets or unknown fields in the spec', () => {
    assert.throws(
      () => parseResources('kind: user\nversion: v1\nmetadata: {name: alice}\nspec: {roles: [], password: x}\n', { source: 'alice.yaml', registry }),
      /alice\.yaml: .*spec\.password/,
    );
  });
});

describe('toUser', () => {
  const record: UserRecord = {
    name: 'alice',
    spec: { roles: ['access'], traits: { logins: ['alice'] } },
    createdAt: '2026-01-01T00:00:00.000Z',
    password: { algorithm: 'scrypt', N: 1024, r: 8, p: 1, keylen: 32, salt: 'c2FsdA==', hash: 'aGFzaA==' },
    totp: { secret: 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP', enrolledAt: '2026-01-01T00:00:00.000Z' },
    lockout: { failures: 5, lockedUntil: '2026-01-01T00:15:00.000Z' },
    resetTokenHash: 'a'.repeat(64),
  };

  it('shows flags, not secrets, and the lock only while it lasts', () => {
    const locked = toUser(record, 7, new Date('2026-01-01T00:10:00Z'));
    assert.deepEqual(locked, {
      name: 'alice',
      roles: ['access'],
      traits: { logins: ['alice'] },
      createdAt: new Date('2026-01-01T00:00:00Z'),
      hasPassword: true,
      totpEnabled: true,
      lockedUntil: new Date('2026-01-01T00:15:00Z'),
      revision: 7,
    });
    assert.equal(toUser(record, 7, new Date('2026-01-01T00:15:00Z')).lockedUntil, undefined);
  });

  it('returns copies, so a caller cannot change the record', () => {
    const user = toUser(record, 1, new Date());
    user.roles.push('admin');
    user.traits.logins!.push('root');
    assert.deepEqual(record.spec, { roles: ['access'], traits: { logins: ['alice'] } });
  });
});
