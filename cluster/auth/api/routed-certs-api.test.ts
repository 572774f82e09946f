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
const empty = { routeToCluster: '', dbService: '', dbUser: '', dbName: '', appName: '', appPublicAddr: '', kubeCluster: '' };

test('IssueRoutedCertificate: the same identity with one route; bad requests, unknown leaves and hosts are refused (leaf refusals audited)', async (t) => {
  const auth = await startTestAuth({ clusterName: 'alpha' });
  t.after(() => auth.stop());
  const deps = auth.server.deps;
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

  const routed = await bob.client.issueRoutedCertificate({ ...empty, tlsPublicKey: spki().pub, dbService: 'orders', dbUser: 'alice' });
  const identity = verifyCertificateChain(new X509Certificate(routed.tlsCertificatePem).raw, { trustedCaCerts: deps.authorities.trustedTlsCerts('user'), expectedKind: 'user', usage: 'client' }) as UserIdentity;
  assert.deepEqual([identity.username, identity.roles, identity.routeToCluster, identity.routeToDatabase, identity.expires.getTime()], ['bob', ['access'], 'alpha', { service: 'orders', user: 'alice' }, expires.getTime()]);
  assert.equal(routed.sshCertificate, '');

  await assert.rejects(bob.client.issueRoutedCertificate({ ...empty, tlsPublicKey: spki().pub, dbService: 'orders', kubeCluster: 'prod' }), { message: /at most one of db_service, app_name and kube_cluster/ });
  await assert.rejects(bob.client.issueRoutedCertificate({ ...empty, tlsPublicKey: 'not a key', dbService: 'orders' }), { message: /tls_public_key must be a PEM/ });
  await assert.rejects(bob.client.issueRoutedCertificate({ ...empty, tlsPublicKey: spki().pub, dbService: 'a/../b' }), { message: /database service "a\/..\/b" is not valid/ });
  await assert.rejects(bob.client.issueRoutedCertificate({ ...empty, tlsPublicKey: spki().pub, appName: 'nowhere' }), { message: /no app is named "nowhere"/ });
  await assert.rejects(bob.client.issueRoutedCertificate({ ...empty, tlsPublicKey: spki().pub, routeToCluster: 'leafy', dbService: 'orders' }), { message: /cannot route to cluster "leafy": no leaf cluster "leafy" trusts alpha/ });
  await assert.rejects(auth.connectAs(['node']).client.issueRoutedCertificate({ ...empty, tlsPublicKey: spki().pub, dbService: 'orders' }), { message: /routed certificates are for users/ });

  const denied = await deps.audit.search({ from: new Date(0), to: new Date(Date.now() + 60_000), types: ['access.denied'] });
  assert.ok(denied.some((e) => e.resource?.kind === 'cluster' && e.resource.name === 'leafy' && e.identity.user === 'bob'));
  const issued = await deps.audit.search({ from: new Date(0), to: new Date(Date.now() + 60_000), types: ['cert.issue'] });
  assert.ok(issued.some((e) => e.fields.certificate === 'user-routed' && e.resource?.name === 'orders'));
});
