import assert from 'node:assert/strict';
import { sign, X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { bitString, childrenOf, encodingOf, readWhole, seq, TAG } from './der.ts';
import { CertificateError } from './errors.ts';
import { newLeafKey, sampleHost, sampleUser } from './test-fixtures.ts';
import { createCaCertificate, derToPem, issueCertificate, issueCertificateDer, loadCa, verifyCertificateChain } from './x509.ts';

const t0 = new Date('2026-04-01T10:00:00Z');
const hour = 3_600_000;
const userCa = createCaCertificate({ clusterName: 'root', kind: 'user', now: new Date(t0.getTime() - 86_400_000) });
const hostCa = createCaCertificate({ clusterName: 'root', kind: 'host', now: new Date(t0.getTime() - 86_400_000) });
const leaf = newLeafKey();
const userCert = (overrides: object = {}) =>
  issueCertificate({ ca: userCa, publicKey: leaf.publicPem, identity: sampleUser(), notAfter: new Date(t0.getTime() + hour), now: t0, usage: 'client', ...overrides });

function refuses(cert: string | Uint8Array, options: Partial<Parameters<typeof verifyCertificateChain>[1]>, code: string, message: RegExp): void {
  assert.throws(
    () => verifyCertificateChain(cert, { trustedCaCerts: [userCa.certPem], now: t0, ...options }),
    (error: unknown) => {
      assert.ok(error instanceof CertificateError, `expected a CertificateError, got ${String(error)}`);
      assert.equal(error.code, code);
      assert.match(error.message, message);
      return true;
    },
  );
}

describe('verifyCertificateChain accepts', () => {
  it('a user certificate, as PEM or as the DER a TLS peer gives', () => {
    const pem = userCert();
    const expected = { ...sampleUser(), expires: new Date(t0.getTime() + hour) };
    assert.deepEqual(verifyCertificateChain(pem, { trustedCaCerts: [userCa.certPem], now: t0, expectedKind: 'user', usage: 'client' }), expected);
    const der = new X509Certificate(pem).raw;
    assert.deepEqual(verifyCertificateChain(der, { trustedCaCerts: [hostCa.certPem, userCa.certPem], now: t0 }), expected);
  });

  it('a host certificate when either kind is acceptable', () => {
    const pem = issueCertificate({ ca: hostCa, publicKey: leaf.publicPem, identity: sampleHost(), notAfter: new Date(t0.getTime() + hour), now: t0, usage: 'both' });
    const identity = verifyCertificateChain(pem, { trustedCaCerts: [userCa.certPem, hostCa.certPem], now: t0, usage: 'server' });
    assert.equal(identity.kind, 'host');
  });

  it('the whole validity window, backdated start included, and nothing outside it', () => {
    const pem = userCert();
    const opts = { trustedCaCerts: [userCa.certPem] };
    verifyCertificateChain(pem, { ...opts, now: new Date(t0.getTime() - 60_000) });
    verifyCertificateChain(pem, { ...opts, now: new Date(t0.getTime() + hour) });
    assert.throws(() => verifyCertificateChain(pem, { ...opts, now: new Date(t0.getTime() - 61_000) }), { code: 'PST_CERT_NOT_YET_VALID' });
    assert.throws(() => verifyCertificateChain(pem, { ...opts, now: new Date(t0.getTime() + hour + 1000) }), { code: 'PST_CERT_EXPIRED' });
  });

  it('during a rotation: two trusted CAs with the same name, either one signed it', () => {
    const next = createCaCertificate({ clusterName: 'root', kind: 'user', now: new Date(t0.getTime() - 1000) });
    const fromNext = issueCertificate({ ca: next, publicKey: leaf.publicPem, identity: sampleUser(), notAfter: new Date(t0.getTime() + hour), now: t0, usage: 'client' });
    for (const cert of [userCert(), fromNext]) {
      assert.equal(verifyCertificateChain(cert, { trustedCaCerts: [userCa.certPem, next.certPem], now: t0 }).kind, 'user');
    }
  });
});

describe('verifyCertificateChain refuses', () => {
  it('a certificate from another cluster CA, even one with the same name', () => {
    const other = createCaCertificate({ clusterName: 'root', kind: 'user', now: new Date(t0.getTime() - 1000) });
    const foreign = issueCertificate({ ca: other, publicKey: leaf.publicPem, identity: sampleUser(), notAfter: new Date(t0.getTime() + hour), now: t0, usage: 'client' });
    refuses(foreign, {}, 'PST_CERT_UNKNOWN_CA', /issued by "O=Postern, OU=user, CN=root", which is not a CA trusted here.*another cluster/);
    refuses(userCert(), { trustedCaCerts: [] }, 'PST_CERT_UNKNOWN_CA', /not a CA trusted here/);
  });

  it('an expired certificate, saying when it expired and what to do', () => {
    refuses(userCert(), { now: new Date(t0.getTime() + 2 * hour) }, 'PST_CERT_EXPIRED', /expired at 2026-04-01T11:00:00.000Z.*log in again/);
  });

  it('a certificate not yet valid', () => {
    refuses(userCert({ now: new Date(t0.getTime() + hour), notAfter: new Date(t0.getTime() + 2 * hour) }), {}, 'PST_CERT_NOT_YET_VALID', /not valid before.*check this machine's clock/);
  });

  it('a certificate whose CA has expired', () => {
    const shortCa = createCaCertificate({ clusterName: 'root', kind: 'user', validityDays: 1, now: t0 });
    const cert = issueCertificate({ ca: shortCa, publicKey: leaf.publicPem, identity: sampleUser(), notAfter: new Date(t0.getTime() + hour), now: t0, usage: 'client' });
    assert.throws(
      () => verifyCertificateChain(cert, { trustedCaCerts: [shortCa.certPem], now: new Date(t0.getTime() + 30 * 60_000 + 2 * 86_400_000) }),
      { code: 'PST_CERT_EXPIRED' },
    );
    // Within the leaf's life but after the CA's: caught by the CA check alone.
    const longLeaf = issueCertificate({ ca: shortCa, publicKey: leaf.publicPem, identity: sampleUser(), notAfter: new Date(t0.getTime() + 86_400_000), now: t0, usage: 'client' });
    assert.doesNotThrow(() => verifyCertificateChain(longLeaf, { trustedCaCerts: [shortCa.certPem], now: new Date(t0.getTime() + 86_400_000 - 1000) }));
  });

  it('a tampered signature', () => {
    const der = Buffer.from(new X509Certificate(userCert()).raw);
    der[der.length - 5]! ^= 0x01; // inside the ECDSA signature's s value
    refuses(derToPem(der), {}, 'PST_CERT_BAD_SIGNATURE', /signature does not verify; it was altered or forged/);
  });

  it('a tampered body (a role added after signing)', () => {
    const pem = userCert();
    const der = Buffer.from(new X509Certificate(pem).raw);
    const text = der.toString('latin1');
    const forged = Buffer.from(text.replace('"roles":["dev","auditor"]', '"roles":["dev","admin00"]'), 'latin1'); // same length
    assert.notDeepEqual(forged, der);
    refuses(forged, {}, 'PST_CERT_BAD_SIGNATURE', /does not verify/);
  });

  it('a certificate re-signed by its holder (signature by the wrong key)', () => {
    const der = new X509Certificate(userCert()).raw;
    const outer = readWhole(der, TAG.sequence, 'cert');
    const [tbs, algorithm] = childrenOf(der, outer);
    const resigned = seq(encodingOf(der, tbs!), encodingOf(der, algorithm!), bitString(sign('sha256', encodingOf(der, tbs!), leaf.privateKey)));
    refuses(resigned, {}, 'PST_CERT_BAD_SIGNATURE', /does not verify/);
  });

  it('a host certificate where a user is expected, and the reverse', () => {
    const host = issueCertificate({ ca: hostCa, publicKey: leaf.publicPem, identity: sampleHost(), notAfter: new Date(t0.getTime() + hour), now: t0, usage: 'both' });
    refuses(host, { trustedCaCerts: [userCa.certPem, hostCa.certPem], expectedKind: 'user' }, 'PST_CERT_WRONG_KIND', /is a host certificate where a user certificate is required/);
    refuses(userCert(), { expectedKind: 'host' }, 'PST_CERT_WRONG_KIND', /is a user certificate where a host certificate is required/);
  });

  it('a user identity signed by the host CA (kinds must match their CA)', () => {
    const hostCaWithoutKind = { ...loadCa(hostCa), kind: undefined }; // bypasses the issuing-side check
    const crossed = issueCertificate({ ca: hostCaWithoutKind, publicKey: leaf.publicPem, identity: sampleUser(), notAfter: new Date(t0.getTime() + hour), now: t0, usage: 'client' });
    refuses(crossed, { trustedCaCerts: [hostCa.certPem] }, 'PST_CERT_WRONG_KIND', /carries a user identity but was signed by the host CA/);
  });

  it('an identity of another cluster than the signing CA', () => {
    const unchecked = { ...loadCa(userCa), cluster: undefined }; // bypasses the issuing-side check
    const claimsLeaf = issueCertificate({ ca: unchecked, publicKey: leaf.publicPem, identity: sampleUser({ cluster: 'leaf-1' }), notAfter: new Date(t0.getTime() + hour), now: t0, usage: 'client' });
    refuses(claimsLeaf, {}, 'PST_CERT_WRONG_CLUSTER', /claims cluster leaf-1 but was signed by the CA of cluster root/);
  });

  it('a validly signed certificate without an identity extension', () => {
    const plain = issueCertificate({ ca: userCa, publicKey: leaf.publicPem, subject: { commonName: 'alice' }, notAfter: new Date(t0.getTime() + hour), now: t0, usage: 'client' });
    refuses(plain, {}, 'PST_CERT_NO_IDENTITY', /carries no Postern identity/);
  });

  it('a certificate for the wrong usage', () => {
    const serverOnly = userCert({ usage: 'server' });
    refuses(serverOnly, { usage: 'client' }, 'PST_CERT_WRONG_USAGE', /not issued for client authentication/);
  });

  it('a CA certificate presented as a leaf', () => {
    refuses(userCa.certPem, {}, 'PST_CERT_WRONG_USAGE', /is a CA certificate/);
  });

  it('bytes that are not a certificate', () => {
    refuses(Buffer.from('hello'), {}, 'PST_CERT_MALFORMED', /does not parse as X.509/);
    refuses('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', {}, 'PST_CERT_MALFORMED', /does not parse/);
    const der = new X509Certificate(userCert()).raw;
    refuses(der.subarray(0, der.length - 10), {}, 'PST_CERT_MALFORMED', /does not parse/);
  });

  it('a malformed identity extension, even when validly signed', () => {
    // Sign a certificate whose identity JSON is broken, with the real CA, through the DER builder.
    const ca = loadCa(userCa);
    const der = issueCertificateDer({ ca, publicKey: leaf.publicPem, identity: sampleUser({ username: 'mallory' }), notAfter: new Date(t0.getTime() + hour), now: t0, usage: 'client' });
    const outer = readWhole(der, TAG.sequence, 'cert');
    const [tbs] = childrenOf(der, outer);
    const tbsBytes = Buffer.from(encodingOf(der, tbs!));
    const at = tbsBytes.indexOf('"v":1');
    tbsBytes.write('"v":9', at, 'latin1');
    const resigned = seq(tbsBytes, seq(Buffer.from('06082a8648ce3d040302', 'hex')), bitString(sign('sha256', tbsBytes, ca.key)));
    refuses(resigned, {}, 'PST_CERT_BAD_IDENTITY', /unknown identity version/);
  });
});
