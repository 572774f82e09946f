import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { BadInputError } from '../errors.ts';
import { formatCertificate, signCertificate } from './certificate.ts';
import type { CertificateFields } from './certificate.ts';
import { formatOpenSshPrivateKey } from './private-key.ts';
import { publicKeyToBlob } from './public-key.ts';
import { certifiedHostKey } from './host-key.ts';

const ca = generateKeyPairSync('ed25519');
const host = generateKeyPairSync('ed25519');
const line = (overrides: Partial<CertificateFields> = {}): string =>
  formatCertificate(
    signCertificate({ type: 'host', publicKey: host.publicKey, keyId: 'node', principals: ['node'], validAfter: 0n, validBefore: 4_000_000_000n, ...overrides }, ca.privateKey),
    'node',
  );

describe('certifiedHostKey', () => {
  test('presents the certificate under its type and signs with the host key', () => {
    const { key, certificate } = certifiedHostKey(formatOpenSshPrivateKey(host.privateKey), line());
    assert.equal(key.type, 'ssh-ed25519-cert-v01@openssh.com');
    assert.ok(key.getPublicSSH().equals(certificate.blob));
    assert.ok(certificate.publicKey.blob.equals(publicKeyToBlob(host.publicKey)));
    const signature = key.sign(Buffer.from('data'));
    assert.ok(Buffer.isBuffer(signature));
    assert.equal(key.verify(Buffer.from('data'), signature as Buffer), true);
  });

  test('refuses a certificate for another key', () => {
    const other = generateKeyPairSync('ed25519');
    assert.throws(() => certifiedHostKey(formatOpenSshPrivateKey(other.privateKey), line()), (e: unknown) => e instanceof BadInputError && /different key/.test(e.message));
  });

  test('refuses a user certificate', () => {
    assert.throws(() => certifiedHostKey(formatOpenSshPrivateKey(host.privateKey), line({ type: 'user' })), (e: unknown) => e instanceof BadInputError && /user certificate/.test(e.message));
  });

  test('refuses an RSA host certificate (ssh2 serves one signature algorithm per key)', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    assert.throws(
      () => certifiedHostKey(formatOpenSshPrivateKey(rsa.privateKey), line({ publicKey: rsa.publicKey })),
      (e: unknown) => e instanceof BadInputError && /cannot be served/.test(e.message),
    );
  });
});
