import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { octetString, seq, utf8String } from './der.ts';
import { IdentityExtensionError } from './errors.ts';
import type { Identity } from './identity.ts';
import { sampleHost, sampleUser } from './test-fixtures.ts';
import {
  decodeIdentityExtension,
  encodeIdentityExtension,
  hostIdentityOid,
  identityKindOfOid,
  maxIdentityJsonBytes,
  posternOidArc,
  subjectFor,
  userIdentityOid,
} from './x509-extensions.ts';

const notAfter = new Date('2026-06-01T12:00:00Z');
const roundTrip = (identity: Identity) => {
  const ext = encodeIdentityExtension(identity);
  return decodeIdentityExtension(ext.oid, ext.value, { notAfter });
};
const userValue = (json: unknown) => utf8String(typeof json === 'string' ? json : JSON.stringify(json));
const validUserJson = () => {
  const { kind: _k, expires: _e, ...fields } = sampleUser();
  return { v: 1, ...fields };
};

describe('identity extension OIDs', () => {
  it('sit under the one private arc, one per kind', () => {
    assert.equal(userIdentityOid, `${posternOidArc}.1.1`);
    assert.equal(hostIdentityOid, `${posternOidArc}.1.2`);
    assert.equal(identityKindOfOid(userIdentityOid), 'user');
    assert.equal(identityKindOfOid(hostIdentityOid), 'host');
    assert.equal(identityKindOfOid('2.5.29.17'), undefined);
    // Every arc fits 32 bits (strict X.509 parsers such as Go's refuse bigger ones).
    for (const arc of posternOidArc.split('.')) assert.ok(Number(arc) < 2 ** 31);
  });
});

describe('encode and decode', () => {
  it('round-trips a user identity; expires comes from notAfter', () => {
    const user = sampleUser();
    assert.deepEqual(roundTrip(user), { ...user, expires: notAfter });
  });

  it('round-trips a user identity with every route set', () => {
    const user = sampleUser({
      routeToDatabase: { service: 'pg-main', user: 'alice', database: 'app' },
      routeToKubeCluster: 'kube-eu',
      routeToApp: { name: 'grafana', sessionId: 'c0ffee', publicAddr: 'grafana.root.example.com' },
      bot: true,
      mfaVerified: false,
    });
    assert.deepEqual(roundTrip(user), { ...user, expires: notAfter });
  });

  it('round-trips a host identity', () => {
    const host = sampleHost();
    assert.deepEqual(roundTrip(host), { ...host, expires: notAfter });
  });

  it('encodes one non-critical DER UTF8String holding versioned JSON without kind or expires', () => {
    const ext = encodeIdentityExtension(sampleUser());
    assert.equal(ext.oid, userIdentityOid);
    assert.equal(ext.critical, false);
    assert.equal(ext.value[0], 0x0c);
    const json = JSON.parse(ext.value.subarray(ext.value[1]! & 0x80 ? 2 + (ext.value[1]! & 0x7f) : 2).toString());
    assert.equal(json.v, 1);
    assert.equal(json.username, 'alice@example.com');
    assert.equal('kind' in json || 'expires' in json, false);
  });

  it('drops a __proto__ trait on both sides instead of touching a prototype', () => {
    const traits = JSON.parse('{"__proto__":["x"],"team":["web"]}');
    const decoded = roundTrip(sampleUser({ traits })) as ReturnType<typeof sampleUser>;
    assert.deepEqual(Object.keys(decoded.traits), ['team']);
    assert.equal(Object.getPrototypeOf(decoded.traits), Object.prototype);
    const forged = decodeIdentityExtension(userIdentityOid, userValue(`{${JSON.stringify(validUserJson()).slice(1, -1).replace('"traits":{', '"traits":{"__proto__":["y"],')}}`), { notAfter });
    assert.equal(Object.getPrototypeOf((forged as ReturnType<typeof sampleUser>).traits), Object.prototype);
    assert.deepEqual(Object.keys((forged as ReturnType<typeof sampleUser>).traits).sort(), ['kube/groups', 'team']);
  });

  it('puts the name in CN and the roles in O', () => {
    assert.deepEqual(subjectFor(sampleUser()), { commonName: 'alice@example.com', organizations: ['dev', 'auditor'] });
    assert.deepEqual(subjectFor(sampleHost()), { commonName: sampleHost().hostId, organizations: ['node', 'db'] });
  });
});

describe('encode refuses identities no certificate should carry', () => {
  const cases: Array<[string, Identity, RegExp]> = [
    ['empty username', sampleUser({ username: '' }), /username: must not be empty/],
    ['control character in a login', sampleUser({ logins: ['ok', 'bad\nlogin'] }), /logins\.1: must not contain control characters/],
    ['unknown system role', sampleHost({ systemRoles: ['node', 'root' as never] }), /systemRoles\.1/],
    ['host without system roles', sampleHost({ systemRoles: [] }), /at least one system role/],
    ['too many roles', sampleUser({ roles: Array.from({ length: 300 }, (_, i) => `r${i}`) }), /roles: at most 256/],
  ];
  for (const [name, identity, message] of cases) {
    it(name, () => assert.throws(() => encodeIdentityExtension(identity), (e: unknown) => e instanceof IdentityExtensionError && message.test(e.message)));
  }

  it('an identity larger than the size bound', () => {
    const traits = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`t${i}`, Array.from({ length: 20 }, () => 'x'.repeat(100))]));
    assert.throws(() => encodeIdentityExtension(sampleUser({ traits })), new RegExp(`larger than ${maxIdentityJsonBytes} bytes`));
  });
});

describe('decode refuses malformed values', () => {
  const refuses = (value: Uint8Array, message: RegExp, oid = userIdentityOid) =>
    assert.throws(
      () => decodeIdentityExtension(oid, value, { notAfter }),
      (e: unknown) => e instanceof IdentityExtensionError && e.code === 'PST_CERT_BAD_IDENTITY' && message.test(e.message),
    );

  it('JSON that does not parse', () => refuses(userValue('{"v":1,'), /Cannot read the user identity.*JSON/s));
  it('a value that is not a UTF8String', () => refuses(octetString(Buffer.from(JSON.stringify(validUserJson()))), /expected tag 0x0c/));
  it('bytes after the UTF8String', () => refuses(Buffer.concat([userValue(validUserJson()), Buffer.of(0)]), /trailing/));
  it('a truncated DER header', () => refuses(userValue(validUserJson()).subarray(0, 1), /truncated/));
  it('invalid UTF-8', () => refuses(Buffer.from([0x0c, 0x02, 0xc3, 0x28]), /not valid|encoded data/i));
  it('a JSON array instead of an object', () => refuses(userValue([1, 2]), /expected object/));
  it('an unknown field', () => refuses(userValue({ ...validUserJson(), admin: true }), /Unrecognized key.*admin/s));
  it('a newer version', () => refuses(userValue({ ...validUserJson(), v: 2 }), /unknown identity version/));
  it('a missing field', () => {
    const { bot: _bot, ...json } = validUserJson();
    refuses(userValue(json), /certificate: bot:/);
  });
  it('a field of the wrong type', () => refuses(userValue({ ...validUserJson(), roles: 'admin' }), /roles: /));
  it('a host JSON under the user OID', () => {
    const { kind: _k, expires: _e, ...host } = sampleHost();
    refuses(userValue({ v: 1, ...host }), /Unrecognized key/);
  });
  it('an OID that is not an identity extension', () => refuses(userValue(validUserJson()), /not a Postern identity extension/, '2.5.29.17'));
  it('a value above the size bound', () => refuses(userValue(`"${'x'.repeat(maxIdentityJsonBytes + 10)}"`), /larger than/));
  it('a DER SEQUENCE instead of a string', () => refuses(seq(utf8String('{}')), /expected tag 0x0c/));
});
