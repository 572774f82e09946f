import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BadInputError } from '../../protocols/errors.ts';
import { SSH_TIME_FOREVER } from '../../protocols/ssh/certificate.ts';
import { posternSshExtensions, sshUserIdentityFromCertificate } from './ssh-identity.ts';

const good = (): Map<string, string> =>
  new Map([
    [posternSshExtensions.username, 'alice'],
    [posternSshExtensions.roles, '["access","dba"]'],
    [posternSshExtensions.traits, '{"logins":["root"],"__proto__":["x"]}'],
    [posternSshExtensions.cluster, 'main'],
    [posternSshExtensions.routeToCluster, 'leaf-1'],
    ['permit-pty', ''],
  ]);

const cert = (extensions: Map<string, string>, validBefore = 1_900_000_000n) => ({ principals: ['root', 'alice'], extensions, validBefore, keyId: 'alice', serial: 7n });

describe('sshUserIdentityFromCertificate', () => {
  test('reads the Postern extensions, principals and permit flags', () => {
    const identity = sshUserIdentityFromCertificate(cert(good()));
    assert.equal(identity.username, 'alice');
    assert.deepEqual(identity.roles, ['access', 'dba']);
    assert.deepEqual(identity.traits.logins, ['root']);
    assert.ok(Object.hasOwn(identity.traits, '__proto__'), 'a __proto__ trait stays a plain key');
    assert.equal(Object.getPrototypeOf(identity.traits), Object.prototype);
    assert.deepEqual(identity.logins, ['root', 'alice']);
    assert.equal(identity.cluster, 'main');
    assert.equal(identity.routeToCluster, 'leaf-1');
    assert.equal(identity.expires.toISOString(), new Date(1_900_000_000_000).toISOString());
    assert.deepEqual(identity.permit, { pty: true, portForwarding: false, agentForwarding: false, x11Forwarding: false, userRc: false });
    assert.equal(identity.serial, '7');
  });

  test('a certificate valid forever expires at the end of JavaScript time', () => {
    assert.equal(sshUserIdentityFromCertificate(cert(good(), SSH_TIME_FOREVER)).expires.getTime(), 8_640_000_000_000_000);
  });

  const broken: Array<[string, (m: Map<string, string>) => void, RegExp]> = [
    ['a missing user', (m) => m.delete(posternSshExtensions.username), /lacks the user@postern\.dev extension/],
    ['roles that are not JSON', (m) => m.set(posternSshExtensions.roles, 'access'), /not valid JSON/],
    ['roles that are not strings', (m) => m.set(posternSshExtensions.roles, '[1]'), /list of role names/],
    ['traits that are a list', (m) => m.set(posternSshExtensions.traits, '[]'), /object of string lists/],
    ['a trait that is not a list', (m) => m.set(posternSshExtensions.traits, '{"a":"b"}'), /"a" is not/],
  ];
  for (const [name, breakIt, message] of broken) {
    test(`refuses ${name}`, () => {
      const extensions = good();
      breakIt(extensions);
      assert.throws(() => sshUserIdentityFromCertificate(cert(extensions)), (error: unknown) => error instanceof BadInputError && message.test(error.message));
    });
  }
});
