import 'reflect-metadata';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { generateKeyPairSync, webcrypto, X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import * as peculiar from '@peculiar/x509';
import { BadInputError } from '../../../protocols/errors.ts';
import { newLeafKey, runTool, sampleHost, sampleUser, scratchDir } from './test-fixtures.ts';
import { hostIdentityOid, userIdentityOid } from './x509-extensions.ts';
import { clockSkewBackdateMs, createCaCertificate, issueCertificate, loadCa, verifyCertificateChain } from './x509.ts';

peculiar.cryptoProvider.set(webcrypto as unknown as Parameters<typeof peculiar.cryptoProvider.set>[0]);

const userCa = createCaCertificate({ clusterName: 'root', kind: 'user' });
const hostCa = createCaCertificate({ clusterName: 'root', kind: 'host' });
const otherUserCa = createCaCertificate({ clusterName: 'root', kind: 'user' }); // same name, another cluster's key
const inOneHour = () => new Date(Date.now() + 3_600_000);

let scratch: Awaited<ReturnType<typeof scratchDir>>;
before(async () => {
  scratch = await scratchDir();
});
after(() => scratch.cleanup());

async function opensslVerify(caPem: string, certPem: string, purpose?: string) {
  const ca = await scratch.file(`ca-${Math.random()}.pem`, caPem);
  const cert = await scratch.file(`cert-${Math.random()}.pem`, certPem);
  return runTool('openssl', ['verify', ...(purpose ? ['-purpose', purpose] : []), '-CAfile', ca, cert]);
}

describe('CA certificates', () => {
  it('are self-signed P-256 CAs limited to signing leaves, named O=Postern, OU=<kind>, CN=<cluster>', async () => {
    const { stdout } = await runTool('openssl', ['x509', '-noout', '-text'], userCa.certPem);
    const text = stdout.toString();
    assert.match(text, /Issuer: O = Postern, OU = user, CN = root/);
    assert.match(text, /Subject: O = Postern, OU = user, CN = root/);
    assert.match(text, /X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    assert.match(text, /X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign/);
    assert.match(text, /X509v3 Subject Key Identifier/);
    assert.match(text, /NIST CURVE: P-256/);
    assert.equal((await opensslVerify(userCa.certPem, userCa.certPem)).code, 0);
  });

  it('last the requested number of days, with notBefore backdated for clock skew', () => {
    const now = new Date('2026-03-01T00:00:00Z');
    const ca = new X509Certificate(createCaCertificate({ clusterName: 'c1', kind: 'db-client', validityDays: 30, now }).certPem);
    assert.equal(ca.validFromDate.getTime(), now.getTime() - clockSkewBackdateMs);
    assert.equal(ca.validToDate.getTime(), now.getTime() + 30 * 86_400_000);
  });

  it('refuse bad cluster names, kinds and lifetimes', () => {
    assert.throws(() => createCaCertificate({ clusterName: 'a/b', kind: 'user' }), BadInputError);
    assert.throws(() => createCaCertificate({ clusterName: '', kind: 'user' }), BadInputError);
    assert.throws(() => createCaCertificate({ clusterName: 'ok', kind: 'jwt' as never }), /X.509 CA of kind "jwt"/);
    assert.throws(() => createCaCertificate({ clusterName: 'ok', kind: 'user', validityDays: 0 }), BadInputError);
  });

  it('load once and refuse a key that is not theirs', () => {
    assert.equal(loadCa(userCa), loadCa({ certPem: userCa.certPem, keyPem: userCa.keyPem }));
    assert.throws(() => loadCa({ certPem: userCa.certPem, keyPem: hostCa.keyPem }), { code: 'PST_CA', message: /not the certificate's ECDSA P-256 key/ });
    assert.throws(() => loadCa({ certPem: 'nonsense', keyPem: userCa.keyPem }), { code: 'PST_CA' });
  });
});

describe('leaf certificates', () => {
  const leaf = newLeafKey();
  const userPem = issueCertificate({ ca: userCa, publicKey: leaf.publicPem, identity: sampleUser(), notAfter: inOneHour(), usage: 'client' });
  const hostPem = issueCertificate({
    ca: hostCa,
    publicKey: leaf.publicKey,
    identity: sampleHost(),
    notAfter: inOneHour(),
    usage: 'both',
    dnsNames: ['node1.example.com', '*.node1.example.com', 'localhost'],
    ipAddresses: ['127.0.0.1', '::1', 'fd00::1:2'],
  });

  it('openssl verify accepts them against their CA, for their purpose', async () => {
    for (const [ca, cert, purpose] of [
      [userCa.certPem, userPem, 'sslclient'],
      [hostCa.certPem, hostPem, 'sslserver'],
      [hostCa.certPem, hostPem, 'sslclient'],
    ] as const) {
      const result = await opensslVerify(ca, cert, purpose);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout.toString(), /: OK/);
    }
  });

  it('openssl verify refuses them against another CA and for the wrong purpose (the check can fail)', async () => {
    assert.notEqual((await opensslVerify(otherUserCa.certPem, userPem)).code, 0);
    assert.notEqual((await opensslVerify(userCa.certPem, userPem, 'sslserver')).code, 0);
  });

  it('openssl x509 -text shows subject, SANs, key usages and our extension', async () => {
    const host = (await runTool('openssl', ['x509', '-noout', '-text'], hostPem)).stdout.toString();
    assert.match(host, /Subject: O = node, O = db, CN = 6f1c2b9e-1d5a-4c1e-9a43-7e0f3d9b2a11/);
    assert.match(host, /DNS:node1\.example\.com, DNS:\*\.node1\.example\.com, DNS:localhost, IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1, IP Address:FD00:0:0:0:0:0:1:2/);
    assert.match(host, /X509v3 Extended Key Usage: \s*TLS Web Server Authentication, TLS Web Client Authentication/);
    assert.match(host, /X509v3 Basic Constraints: critical\s+CA:FALSE/);
    assert.match(host, /X509v3 Key Usage: critical\s+Digital Signature\n/);
    assert.match(host, /X509v3 Authority Key Identifier/);
    assert.ok(host.includes(`${hostIdentityOid}: \n`), 'host identity extension, non-critical');
    assert.match(host, /"systemRoles":\["node","db"\]/);
    const user = (await runTool('openssl', ['x509', '-noout', '-text'], userPem)).stdout.toString();
    assert.match(user, /Subject: O = dev, O = auditor, CN = alice@example\.com/);
    assert.match(user, /X509v3 Extended Key Usage: \s*TLS Web Client Authentication\n/);
    assert.ok(user.includes(`${userIdentityOid}: \n`));
    assert.doesNotMatch(user, /Subject Alternative Name/);
  });

  it('@peculiar/x509, an independent parser, reads the same fields and verifies the signature', async () => {
    const cert = new peculiar.X509Certificate(hostPem);
    const ca = new peculiar.X509Certificate(hostCa.certPem);
    assert.equal(await cert.verify({ publicKey: ca.publicKey, signatureOnly: true }), true);
    assert.equal(cert.issuer, 'O=Postern, OU=host, CN=root');
    const san = cert.getExtension(peculiar.SubjectAlternativeNameExtension);
    assert.deepEqual(san?.names.toJSON().map((n) => `${n.type}:${n.value}`), [
      'dns:node1.example.com',
      'dns:*.node1.example.com',
      'dns:localhost',
      'ip:127.0.0.1',
      'ip:::1',
      'ip:fd00::1:2',
    ]);
    const identity = cert.extensions.find((e) => e.type === hostIdentityOid);
    assert.equal(identity?.critical, false);
    const aki = cert.getExtension(peculiar.AuthorityKeyIdentifierExtension);
    const ski = ca.getExtension(peculiar.SubjectKeyIdentifierExtension);
    assert.equal(aki?.keyId, ski?.keyId);
  });

  it('get a random positive 16-byte serial and notBefore backdated by a minute', () => {
    const serials = new Set<string>();
    const now = new Date();
    for (let i = 0; i < 200; i++) {
      const cert = new X509Certificate(issueCertificate({ ca: userCa, publicKey: leaf.publicPem, identity: sampleUser(), notAfter: inOneHour(), usage: 'client', now }));
      assert.match(cert.serialNumber, /^[4-7][0-9A-F]{31}$/);
      serials.add(cert.serialNumber);
      assert.equal(cert.validFromDate.getTime(), Math.floor((now.getTime() - clockSkewBackdateMs) / 1000) * 1000);
    }
    assert.equal(serials.size, 200);
  });

  it('carry Ed25519 and RSA keys too (RSA with keyEncipherment)', async () => {
    for (const kind of ['ed25519', 'rsa2048'] as const) {
      const key = newLeafKey(kind);
      const pem = issueCertificate({ ca: hostCa, publicKey: key.publicPem, identity: sampleHost(), notAfter: inOneHour(), usage: 'server', dnsNames: ['h'] });
      assert.equal((await opensslVerify(hostCa.certPem, pem, 'sslserver')).code, 0);
      assert.ok(new X509Certificate(pem).checkPrivateKey(key.privateKey));
      const text = (await runTool('openssl', ['x509', '-noout', '-ext', 'keyUsage'], pem)).stdout.toString();
      assert.match(text, kind === 'rsa2048' ? /Digital Signature, Key Encipherment/ : /Digital Signature\n/);
    }
  });

  it('accept the public key as PEM, DER or KeyObject with the same result', () => {
    const der = leaf.publicKey.export({ type: 'spki', format: 'der' });
    for (const publicKey of [leaf.publicPem, der, new Uint8Array(der), leaf.publicKey, leaf.privateKey]) {
      const cert = new X509Certificate(issueCertificate({ ca: userCa, publicKey, identity: sampleUser(), notAfter: inOneHour(), usage: 'client' }));
      assert.ok(cert.publicKey.equals(leaf.publicKey));
    }
  });

  it('for a database user: a plain subject and no identity', async () => {
    const dbCa = createCaCertificate({ clusterName: 'root', kind: 'db-client' });
    const pem = issueCertificate({ ca: dbCa, publicKey: leaf.publicPem, subject: { commonName: 'app_reader' }, notAfter: inOneHour(), usage: 'client' });
    assert.equal(new X509Certificate(pem).subject, 'CN=app_reader');
    assert.equal((await opensslVerify(dbCa.certPem, pem, 'sslclient')).code, 0);
    assert.doesNotMatch((await runTool('openssl', ['x509', '-noout', '-text'], pem)).stdout.toString(), /7678376/);
  });
});

describe('issuance refuses', () => {
  const leaf = newLeafKey();
  const base = { ca: userCa, publicKey: leaf.publicPem, identity: sampleUser(), notAfter: inOneHour(), usage: 'client' as const };
  const refuses = (overrides: object, message: RegExp) => assert.throws(() => issueCertificate({ ...base, ...overrides }), message);

  it('a lifetime past the CA or not in the future', () => {
    refuses({ notAfter: new Date(Date.now() + 20 * 365 * 86_400_000) }, /the user CA .* expires at/);
    refuses({ notAfter: new Date(Date.now() - 1000) }, /not after now/);
    refuses({ notAfter: new Date(Number.NaN) }, /not a valid Date/);
  });
  it('an identity of the other kind than the CA', () => refuses({ identity: sampleHost() }, /host certificate with the user CA/));
  it('an identity of another cluster than the CA', () => refuses({ identity: sampleUser({ cluster: 'leaf-1' }) }, /for cluster leaf-1 with the CA of cluster root/));
  it('both or neither of identity and subject', () => {
    refuses({ subject: { commonName: 'x' } }, /exactly one of identity/);
    refuses({ identity: undefined }, /exactly one of identity/);
  });
  it('keys that are not keys, or too weak', () => {
    refuses({ publicKey: 'not a key' }, /does not parse/);
    refuses({ publicKey: Buffer.from('3000', 'hex') }, /does not parse/);
    refuses({ publicKey: newLeafKey().publicPem.replace('PUBLIC KEY-----\n', 'PUBLIC KEY-----\nAAAA') }, /does not parse/);
    refuses({ publicKey: generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey }, /rsa 1024-bit key/);
    refuses({ publicKey: generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey }, /ec secp256k1 key/);
  });
  it('names that no TLS client would match', () => {
    refuses({ dnsNames: ['bad name'] }, /as a DNS name/);
    refuses({ dnsNames: ['ümlaut.example'] }, /as a DNS name/);
    refuses({ dnsNames: ['a..b'] }, /as a DNS name/);
    refuses({ ipAddresses: ['300.1.1.1'] }, /as an IP address/);
    refuses({ ipAddresses: ['fe80::1%eth0'] }, /as an IP address/);
  });
  it('an unknown usage', () => refuses({ usage: 'everything' }, /usage "everything"/));
});

describe('mutual TLS with our CAs and certificates', () => {
  it('handshakes (ECDSA P-256 both ways) and each side reads the other identity', async () => {
    const serverKey = newLeafKey();
    const clientKey = newLeafKey();
    const server = tls.createServer({
      key: serverKey.privatePem,
      cert: issueCertificate({ ca: hostCa, publicKey: serverKey.publicPem, identity: sampleHost(), notAfter: inOneHour(), usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }),
      ca: [userCa.certPem],
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
    });
    const seenByServer = new Promise<unknown>((resolve) =>
      server.once('secureConnection', (socket) => {
        const raw = socket.getPeerCertificate().raw;
        resolve(verifyCertificateChain(raw, { trustedCaCerts: [userCa.certPem], expectedKind: 'user', usage: 'client' }));
        socket.end('hello');
      }),
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const client = tls.connect({
        host: '127.0.0.1',
        port: (server.address() as AddressInfo).port,
        servername: 'localhost',
        ca: [hostCa.certPem],
        key: clientKey.privatePem,
        cert: issueCertificate({ ca: userCa, publicKey: clientKey.publicPem, identity: sampleUser(), notAfter: inOneHour(), usage: 'client' }),
      });
      await once(client, 'secureConnect');
      assert.equal(client.authorized, true);
      const serverIdentity = verifyCertificateChain(client.getPeerCertificate().raw, { trustedCaCerts: [hostCa.certPem], expectedKind: 'host', usage: 'server' });
      assert.equal(serverIdentity.kind === 'host' && serverIdentity.nodeName, 'node1');
      assert.equal(client.getPeerCertificate().asn1Curve, 'prime256v1');
      const clientIdentity = (await seenByServer) as ReturnType<typeof sampleUser>;
      assert.equal(clientIdentity.username, 'alice@example.com');
      client.destroy();
    } finally {
      server.close();
    }
  });

  it('the server refuses a client certificate from another cluster user CA', async () => {
    const serverKey = newLeafKey();
    const clientKey = newLeafKey();
    const server = tls.createServer({
      key: serverKey.privatePem,
      cert: issueCertificate({ ca: hostCa, publicKey: serverKey.publicPem, identity: sampleHost(), notAfter: inOneHour(), usage: 'server', ipAddresses: ['127.0.0.1'] }),
      ca: [userCa.certPem],
      requestCert: true,
      rejectUnauthorized: true,
    });
    let accepted = false;
    server.on('secureConnection', () => (accepted = true));
    // Node's TLS server checks the client chain after the handshake and destroys the socket.
    const refusal = once(server, 'tlsClientError');
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const client = tls.connect({
        host: '127.0.0.1',
        port: (server.address() as AddressInfo).port,
        ca: [hostCa.certPem],
        key: clientKey.privatePem,
        cert: issueCertificate({ ca: otherUserCa, publicKey: clientKey.publicPem, identity: sampleUser(), notAfter: inOneHour(), usage: 'client' }),
      });
      client.on('error', () => {});
      const [, refusedSocket] = await refusal;
      assert.equal((refusedSocket as tls.TLSSocket).authorizationError, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
      await once(client, 'close');
      assert.equal(accepted, false);
      client.destroy();
    } finally {
      server.close();
    }
  });
});
