import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { connectAuth } from '../../api/auth-client.ts';
import { formatAuthorizedKey } from '../../../protocols/ssh/public-key.ts';
import { verifyCertificateChain } from '../pki/verify-certificate.ts';
import type { UserIdentity } from '../pki/identity.ts';
import { startTestAuth } from '../../../test/fixtures/auth.ts';

const spki = (): { pub: string; key: string } => {
  const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { pub: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(), key: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
};

test('database certificates: db agents get db-client certs, admins server certs, users a database route; others are refused and audited', async (t) => {
  const auth = await startTestAuth({ clusterName: 'alpha' });
  t.after(() => auth.stop());
  const deps = auth.server.deps;

  const client = await auth.connectAs(['db'], 'db-agent').client.signDatabaseCertificate({ purpose: 'client', name: 'alice', tlsPublicKey: spki().pub, ttlSeconds: 0n, altNames: [], database: 'orders' });
  const clientCert = new X509Certificate(client.tlsCertificatePem);
  assert.equal(clientCert.subject, 'CN=alice');
  assert.ok(clientCert.verify(new X509Certificate(client.signerCaPems[0]!).publicKey), 'signed by the db-client CA');
  assert.deepEqual(client.signerCaPems, client.dbClientCaPems);

  const server = await auth.connectAs(['admin']).client.signDatabaseCertificate({ purpose: 'server', name: 'db.example', tlsPublicKey: spki().pub, ttlSeconds: 86_400n, altNames: ['127.0.0.1', 'localhost'], database: '' });
  const serverCert = new X509Certificate(server.tlsCertificatePem);
  assert.match(serverCert.subjectAltName ?? '', /DNS:db\.example.*DNS:localhost.*IP Address:127\.0\.0\.1/);
  assert.ok(serverCert.verify(new X509Certificate(deps.authorities.trustedTlsCerts('host')[0]!).publicKey), 'signed by the host CA');

  await assert.rejects(auth.connectAs(['proxy']).client.signDatabaseCertificate({ purpose: 'client', name: 'alice', tlsPublicKey: spki().pub, ttlSeconds: 0n, altNames: [], database: '' }), { message: /may not sign database client certificates; only db, node hosts may/ });
  await assert.rejects(auth.connectAs(['db']).client.signDatabaseCertificate({ purpose: 'server', name: 'x', tlsPublicKey: spki().pub, ttlSeconds: 0n, altNames: [], database: '' }), { message: /may not sign database server certificates/ });
  await assert.rejects(auth.connectAs(['db']).client.signDatabaseCertificate({ purpose: 'client', name: 'a/CN=root', tlsPublicKey: spki().pub, ttlSeconds: 0n, altNames: [], database: '' }), { message: /database user "a\/CN=root" is not valid/ });

  // A user re-issues their certificate with a database route; the identity and expiry stay.
  const tls = spki();
  const expires = new Date(Math.floor(Date.now() / 1000) * 1000 + 600_000);
  const pair = deps.issuer.issueUser({
    identity: { kind: 'user', username: 'bob', roles: ['access'], traits: { logins: ['bob'] }, logins: ['bob'], cluster: 'alpha', routeToCluster: 'alpha', mfaVerified: false, bot: false, expires },
    sshPublicKey: formatAuthorizedKey(generateKeyPairSync('ed25519').publicKey),
    tlsPublicKey: tls.pub,
    permit: { pty: true, portForwarding: false, agentForwarding: false },
  });
  const bob = connectAuth(auth.server.address, { key_pem: tls.key, cert_pem: pair.tlsCertPem, ca_pems: deps.authorities.trustedTlsCerts('host') });
  t.after(() => bob.close());
  const routed = await bob.client.reissueUserCertificate({ tlsPublicKey: spki().pub, dbService: 'orders', dbUser: 'alice', dbName: 'app' });
  const identity = verifyCertificateChain(new X509Certificate(routed.tlsCertificatePem).raw, { trustedCaCerts: deps.authorities.trustedTlsCerts('user'), expectedKind: 'user', usage: 'client' }) as UserIdentity;
  assert.deepEqual(identity.routeToDatabase, { service: 'orders', user: 'alice', database: 'app' });
  assert.equal(identity.username, 'bob');
  assert.equal(identity.expires.getTime(), expires.getTime());
  await assert.rejects(bob.client.reissueUserCertificate({ tlsPublicKey: spki().pub, dbService: '', dbUser: '', dbName: '' }), { message: /name the database/ });
  await assert.rejects(auth.connectAs(['node']).client.reissueUserCertificate({ tlsPublicKey: spki().pub, dbService: 'orders', dbUser: '', dbName: '' }), { message: /only users may ask/ });

  // A db-only host reads roles (it decides access to its databases).
  assert.ok(JSON.parse((await auth.connectAs(['db']).client.getResources({ kind: 'role', name: '' })).resourcesJson).length > 0);

  const events = await deps.audit.search({ from: new Date(0), to: new Date(Date.now() + 60_000), limit: 100 });
  assert.ok(events.some((e) => e.type === 'cert.issue' && e.fields.certificate === 'db-client' && e.resource?.name === 'orders'));
  assert.ok(events.some((e) => e.type === 'access.denied' && e.resource?.name === 'sign database client certificates'));
});
