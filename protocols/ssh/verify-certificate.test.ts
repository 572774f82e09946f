import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { parseCertificate, signCertificate } from './certificate.ts';
import type { CertificateFields, SshCertificate } from './certificate.ts';
import {
  SshCertificateBadSignatureError,
  SshCertificateCriticalOptionError,
  SshCertificateError,
  SshCertificateExpiredError,
  SshCertificateNotYetValidError,
  SshCertificatePrincipalError,
  SshCertificateSourceAddressError,
  SshCertificateUnknownCaError,
  SshCertificateWrongTypeError,
  SshFormatError,
  SshSignatureError,
} from './errors.ts';
import { publicKeyToBlob } from './public-key.ts';
import { createSignature, parseSignature } from './signature.ts';
import { verifyCertificate, verifyCertificateUserSignature } from './verify-certificate.ts';
import type { VerifyCertificateOptions } from './verify-certificate.ts';
import { SshWriter } from './wire.ts';

const ca = generateKeyPairSync('ed25519');
const otherCa = generateKeyPairSync('ed25519');
const user = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const NOW = new Date('2027-03-01T12:00:00Z');
const nowSeconds = BigInt(NOW.getTime() / 1000);

function issue(overrides: Partial<CertificateFields> = {}, signer: KeyObject = ca.privateKey): SshCertificate {
  const fields: CertificateFields = {
    type: 'user',
    publicKey: user.publicKey,
    keyId: 'alice',
    principals: ['alice', 'deploy'],
    validAfter: nowSeconds - 60n,
    validBefore: nowSeconds + 3600n,
    extensions: { 'permit-pty': '' },
    ...overrides,
  };
  return parseCertificate(signCertificate(fields, signer));
}

function check(cert: SshCertificate, overrides: Partial<VerifyCertificateOptions> = {}) {
  return verifyCertificate(cert, { now: NOW, trustedCAs: [ca.publicKey], expectedType: 'user', principal: 'alice', ...overrides });
}

function assertRefused(action: () => unknown, errorClass: new (...args: never[]) => SshCertificateError, code: string, message: RegExp) {
  assert.throws(action, (error: unknown) => {
    assert.ok(error instanceof errorClass, `expected ${errorClass.name}, got ${String(error)}`);
    assert.ok(error instanceof SshCertificateError);
    assert.equal(error.code, code);
    assert.match(error.message, message);
    return true;
  });
}

test('accepts a good certificate and exposes force-command', () => {
  const plain = check(issue());
  assert.equal(plain.keyId, 'alice');
  assert.equal(plain.forceCommand, undefined);
  const forced = check(issue({ criticalOptions: { 'force-command': 'internal-sftp' } }));
  assert.equal(forced.forceCommand, 'internal-sftp');
  check(issue(), { principal: undefined });
});

test('accepts trusted CAs given as blobs or private keys, among others', () => {
  const cert = issue();
  check(cert, { trustedCAs: [otherCa.publicKey, publicKeyToBlob(ca.publicKey)] });
  check(cert, { trustedCAs: [ca.privateKey] });
});

test('refuses a certificate from a CA that is not trusted', () => {
  assertRefused(() => check(issue({}, otherCa.privateKey)), SshCertificateUnknownCaError, 'PST_SSH_CERT_UNKNOWN_CA', /"alice".*not trusted/);
  assertRefused(() => check(issue(), { trustedCAs: [] }), SshCertificateUnknownCaError, 'PST_SSH_CERT_UNKNOWN_CA', /not trusted/);
});

test('refuses a certificate whose signed bytes were altered', () => {
  const blob = Buffer.from(issue().blob);
  const at = blob.indexOf('alice');
  blob[at] = 'm'.charCodeAt(0);
  const altered = parseCertificate(blob);
  assert.equal(altered.keyId, 'mlice');
  assertRefused(() => check(altered, { principal: 'alice' }), SshCertificateBadSignatureError, 'PST_SSH_CERT_BAD_SIGNATURE', /does not verify/);
});

test('refuses a CA signature swapped in from another certificate', () => {
  const cert = issue();
  const other = issue({ keyId: 'bob' });
  assertRefused(() => check({ ...cert, signature: other.signature }), SshCertificateBadSignatureError, 'PST_SSH_CERT_BAD_SIGNATURE', /does not verify/);
});

test('refuses a CA signature made with ssh-rsa (SHA-1)', () => {
  const rsaCa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const cert = issue({}, rsaCa.privateKey);
  const sha1 = new SshWriter().string('ssh-rsa').string(sign('sha1', cert.signedData, rsaCa.privateKey)).toBuffer();
  assertRefused(() => check({ ...cert, signature: sha1 }, { trustedCAs: [rsaCa.publicKey] }), SshCertificateBadSignatureError, 'PST_SSH_CERT_BAD_SIGNATURE', /unusable CA signature.*SHA-1/);
});

test('refuses a host certificate used as a user certificate, and the other way round', () => {
  assertRefused(() => check(issue({ type: 'host' })), SshCertificateWrongTypeError, 'PST_SSH_CERT_WRONG_TYPE', /is a host certificate, but a user certificate is required/);
  assertRefused(() => check(issue(), { expectedType: 'host' }), SshCertificateWrongTypeError, 'PST_SSH_CERT_WRONG_TYPE', /is a user certificate/);
});

test('refuses certificates outside their validity, allowing the clock skew', () => {
  const future = issue({ validAfter: nowSeconds + 120n });
  assertRefused(() => check(future), SshCertificateNotYetValidError, 'PST_SSH_CERT_NOT_YET_VALID', /not valid until 2027-03-01T12:02:00.000Z/);
  check(issue({ validAfter: nowSeconds + 30n }));
  assertRefused(() => check(issue({ validAfter: nowSeconds + 30n }), { clockSkewSeconds: 0 }), SshCertificateNotYetValidError, 'PST_SSH_CERT_NOT_YET_VALID', /not valid until/);
  check(issue({ validAfter: nowSeconds }), { clockSkewSeconds: 0 });

  const expired = issue({ validAfter: nowSeconds - 7200n, validBefore: nowSeconds - 3600n });
  assertRefused(() => check(expired), SshCertificateExpiredError, 'PST_SSH_CERT_EXPIRED', /expired at 2027-03-01T11:00:00.000Z.*request a new certificate/);
  check(issue({ validAfter: nowSeconds - 7200n, validBefore: nowSeconds - 30n }));
  const endsNow = issue({ validAfter: nowSeconds - 7200n, validBefore: nowSeconds });
  assertRefused(() => check(endsNow, { clockSkewSeconds: 0 }), SshCertificateExpiredError, 'PST_SSH_CERT_EXPIRED', /expired/);
  check(endsNow, { clockSkewSeconds: 0, now: new Date(NOW.getTime() - 1) });
});

test('refuses a principal the certificate does not list, and a certificate listing none', () => {
  assertRefused(() => check(issue(), { principal: 'root' }), SshCertificatePrincipalError, 'PST_SSH_CERT_PRINCIPAL_NOT_ALLOWED', /does not allow "root"; it allows "alice", "deploy"/);
  check(issue(), { principal: 'deploy' });
  const noPrincipals = issue();
  assertRefused(() => check({ ...noPrincipals, principals: [] }), SshCertificatePrincipalError, 'PST_SSH_CERT_PRINCIPAL_NOT_ALLOWED', /lists no principals/);
});

test('enforces source-address for IPv4, IPv6 and IPv4-mapped peers', () => {
  const cert = issue({ criticalOptions: { 'source-address': '10.0.0.0/8,2001:db8::/32' } });
  check(cert, { sourceAddress: '10.9.8.7' });
  check(cert, { sourceAddress: '::ffff:10.9.8.7' });
  check(cert, { sourceAddress: '2001:db8::42' });
  assertRefused(() => check(cert, { sourceAddress: '192.0.2.1' }), SshCertificateSourceAddressError, 'PST_SSH_CERT_SOURCE_ADDRESS', /only be used from 10\.0\.0\.0\/8,2001:db8::\/32, not from 192\.0\.2\.1/);
  assertRefused(() => check(cert, { sourceAddress: '2001:db9::1' }), SshCertificateSourceAddressError, 'PST_SSH_CERT_SOURCE_ADDRESS', /not from/);
  assertRefused(() => check(cert), SshCertificateSourceAddressError, 'PST_SSH_CERT_SOURCE_ADDRESS', /no peer address was given/);
  const malformed = issue({ criticalOptions: { 'source-address': '10.0.0.1/8' } });
  assertRefused(() => check(malformed, { sourceAddress: '10.0.0.1' }), SshCertificateSourceAddressError, 'PST_SSH_CERT_SOURCE_ADDRESS', /unusable source-address/);
});

test('refuses unknown critical options but ignores unknown extensions', () => {
  assertRefused(() => check(issue({ criticalOptions: { 'verify-required': '' } })), SshCertificateCriticalOptionError, 'PST_SSH_CERT_UNKNOWN_CRITICAL_OPTION', /"verify-required", which Postern does not enforce/);
  assertRefused(() => check(issue({ criticalOptions: { 'force-command': '' } })), SshCertificateCriticalOptionError, 'PST_SSH_CERT_UNKNOWN_CRITICAL_OPTION', /without a value/);
  check(issue({ extensions: { 'no-such-extension@example.com': 'x', 'permit-pty': '' } }));
});

test('the checks run in order: trust before signature before type before time', () => {
  const everythingWrong = issue({ type: 'host', validBefore: nowSeconds - 3600n, validAfter: nowSeconds - 7200n }, otherCa.privateKey);
  assert.throws(() => check(everythingWrong), SshCertificateUnknownCaError);
  assert.throws(() => check(everythingWrong, { trustedCAs: [otherCa.publicKey] }), SshCertificateWrongTypeError);
});

// What ssh2 hands the authentication handler: ctx.signature is the whole signature blob
// when OpenSSH signs for a certificate (its prefix names the plain algorithm, not the
// certificate type ssh2 compares it with), and ctx.blob is the signed data.
test('verifies the user signature over the session data with the key inside the certificate', () => {
  const cert = check(issue());
  const signedData = Buffer.from('session id || userauth request');
  const signature = createSignature(user.privateKey, signedData);
  verifyCertificateUserSignature(cert, { signature, signedData, keyAlgorithm: 'ecdsa-sha2-nistp256-cert-v01@openssh.com' });
  verifyCertificateUserSignature(cert, { signature, signedData });
  verifyCertificateUserSignature(cert, { signature: parseSignature(signature).bytes, signedData, keyAlgorithm: 'ecdsa-sha2-nistp256-cert-v01@openssh.com' });
  assert.throws(() => verifyCertificateUserSignature(cert, { signature, signedData: Buffer.from('other') }), (error: unknown) => {
    assert.ok(error instanceof SshSignatureError);
    assert.equal(error.code, 'PST_SSH_BAD_SIGNATURE');
    assert.match(error.message, /does not hold the certified private key/);
    return true;
  });
  const wrongKey = createSignature(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, signedData);
  assert.throws(() => verifyCertificateUserSignature(cert, { signature: wrongKey, signedData }), SshSignatureError);
  assert.throws(() => verifyCertificateUserSignature(cert, { signature: parseSignature(signature).bytes, signedData }), SshFormatError);
  assert.throws(() => verifyCertificateUserSignature(cert, { signature, signedData, keyAlgorithm: 'ssh-ed25519-cert-v01@openssh.com' }), /asked to authenticate with ssh-ed25519-cert/);
});

test('for RSA certificates, the hash the client named must be the hash it signed with', () => {
  const rsaUser = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const cert = check(issue({ publicKey: rsaUser.publicKey }));
  const signedData = Buffer.from('data');
  const sha512 = createSignature(rsaUser.privateKey, signedData);
  verifyCertificateUserSignature(cert, { signature: sha512, signedData, keyAlgorithm: 'rsa-sha2-512-cert-v01@openssh.com' });
  verifyCertificateUserSignature(cert, { signature: sha512, signedData, keyAlgorithm: 'ssh-rsa-cert-v01@openssh.com' });
  assert.throws(() => verifyCertificateUserSignature(cert, { signature: sha512, signedData, keyAlgorithm: 'rsa-sha2-256-cert-v01@openssh.com' }), SshSignatureError);
  const bare = parseSignature(createSignature(rsaUser.privateKey, signedData, { rsaHash: 'sha256' })).bytes;
  verifyCertificateUserSignature(cert, { signature: bare, signedData, keyAlgorithm: 'rsa-sha2-256-cert-v01@openssh.com' });
  assert.throws(() => verifyCertificateUserSignature(cert, { signature: bare, signedData, keyAlgorithm: 'ssh-rsa-cert-v01@openssh.com' }), /SHA-1/);
});

test('refuses to judge validity against an invalid clock', () => {
  assert.throws(() => check(issue(), { now: new Date(Number.NaN) }), /must be a valid date/);
  assert.throws(() => check(issue(), { clockSkewSeconds: -1 }), /non-negative/);
});
