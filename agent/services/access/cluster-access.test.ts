import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import type { AuthClient } from '../../../cluster/api/auth-client.ts';
import { encodeRoutedIdentity } from '../../../cluster/api/routed-identity.ts';
import { createCaCertificate, issueCertificate } from '../../../cluster/auth/pki/x509.ts';
import { publicKeyToBlob } from '../../../protocols/ssh/public-key.ts';
import { silentLogger } from '../../../cluster/common/logger.ts';
import { ClusterAccess } from './cluster-access.ts';

const leafCa = createCaCertificate({ clusterName: 'leaf', kind: 'user' });
const rootCa = createCaCertificate({ clusterName: 'root', kind: 'user' });
const thirdCa = createCaCertificate({ clusterName: 'third', kind: 'user' });
const rootSshKey = `ssh-ed25519 ${publicKeyToBlob(generateKeyPairSync('ed25519').publicKey).toString('base64')}`;
const role = (name: string) => ({ kind: 'role', version: 'v1', metadata: { name }, spec: { allow: { db_labels: { env: 'leaf' }, db_users: ['alice'] } } });

/** The calls ClusterAccess and TrustedRoots make, answered from memory; audit events are kept. */
function fakeAuth(roleMap: Array<{ remote: string; local: string[] }>, audited: string[][]): AuthClient {
  return {
    exportAuthorities: async (request: { includeRemote?: boolean }) => ({
      authorities: [
        { kind: 'user', cluster: 'leaf', tlsCertPem: leafCa.certPem, sshPublicKey: '' },
        ...(request.includeRemote ? [{ kind: 'user', cluster: 'root', tlsCertPem: rootCa.certPem, sshPublicKey: rootSshKey }] : []),
      ],
    }),
    getResources: async (request: { kind: string }) => ({
      resourcesJson: JSON.stringify(request.kind === 'role' ? [role('svc')] : [{ kind: 'trusted_cluster', metadata: { name: 'root' }, spec: { enabled: true, role_map: roleMap } }]),
    }),
    emitAudit: async (request: { eventsJson: string[] }) => {
      audited.push(request.eventsJson);
      return {};
    },
  } as unknown as AuthClient;
}

function certificate(ca: { certPem: string; keyPem: string }, cluster: string, username: string, roles: string[]): string {
  const pem = issueCertificate({
    ca: { certPem: ca.certPem, keyPem: ca.keyPem },
    publicKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey,
    identity: { kind: 'user', username, roles, traits: {}, logins: [], cluster, routeToCluster: 'leaf', mfaVerified: false, bot: false, expires: new Date(Date.now() + 600_000) },
    notAfter: new Date(Date.now() + 600_000),
    usage: 'client',
  });
  return Buffer.from(pem).toString('base64');
}

test('identify: local users keep their roles; root users get the role map\'s; forged, unmapped and foreign identities are refused', async () => {
  const audited: string[][] = [];
  const access = new ClusterAccess({ auth: () => fakeAuth([{ remote: 'svc-user', local: ['svc'] }], audited), cluster: () => 'leaf', logger: silentLogger(), auditDelayMs: 1 });

  const local = await access.identify(certificate(leafCa, 'leaf', 'lena', ['svc']), { 'postern-client-addr': '10.0.0.1:5' });
  assert.ok('caller' in local);
  assert.deepEqual([local.caller.username, local.caller.roles, local.caller.remote, local.caller.addr], ['lena', ['svc'], false, '10.0.0.1:5']);

  const mapped = await access.identify(certificate(rootCa, 'root', 'rita', ['svc-user']));
  assert.ok('caller' in mapped);
  assert.deepEqual([mapped.caller.cluster, mapped.caller.roles, mapped.caller.remote], ['root', ['svc'], true]);
  const checked = await access.checker(mapped.caller);
  assert.ok('checker' in checked && checked.checker.checkDatabase({ name: 'pg', labels: { env: 'leaf' }, dbUser: 'alice', dbName: undefined }).allowed);

  const unmapped = await access.identify(certificate(rootCa, 'root', 'uma', ['other']));
  assert.ok('refused' in unmapped);
  assert.equal(unmapped.refused, 'no roles mapped for remote user uma from cluster root');
  assert.equal(unmapped.status, 403);
  assert.equal(unmapped.who?.user, 'uma');

  // A CA that calls itself "root" but is not the root's trusted one, and a third cluster's CA, are nobody here.
  const forgedRoot = await access.identify(certificate(createCaCertificate({ clusterName: 'root', kind: 'user' }), 'root', 'mallory', ['svc-user']));
  assert.ok('refused' in forgedRoot && forgedRoot.status === 401 && /not valid here/.test(forgedRoot.refused));
  const third = await access.identify(certificate(thirdCa, 'third', 'mallory', ['svc-user']));
  assert.ok('refused' in third && third.status === 401 && /not valid here/.test(third.refused));

  // A proxy-vouched routed identity is for this cluster's users only.
  const routed = { v: 1 as const, username: 'sam', roles: ['svc'], traits: {}, cluster: 'leaf', expires: new Date(Date.now() + 60_000).toISOString(), via: 'app-session' as const, addr: '1.2.3.4:5' };
  assert.ok('caller' in (await access.identify(encodeRoutedIdentity(routed))));
  const foreign = await access.identify(encodeRoutedIdentity({ ...routed, cluster: 'root' }));
  assert.ok('refused' in foreign && foreign.status === 403);
  assert.ok('refused' in (await access.identify('')));

  // Events about a root user are marked for forwarding to it.
  access.audit({ type: 'db.session.start', identity: access.auditIdentity(mapped.caller), resource: { kind: 'db', name: 'pg' }, outcome: 'allow', fields: {} }, mapped.caller);
  await access.flush();
  const sent = audited.flat().map((text) => JSON.parse(text) as { fields: Record<string, unknown> });
  assert.equal(sent.at(-1)?.fields['user_cluster'], 'root');
  access.stop();
});
