import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { useFakeCluster } from '../../test/fixtures/fake-proxy.ts';
import type { IdentityFile } from '../../cluster/api/identity-file.ts';
import { silentLogger } from '../../cluster/common/logger.ts';
import { joinCluster } from '../join/join-cluster.ts';
import { AgentIdentity, agentIdentityPath } from './agent-identity.ts';
import { AuthConnector } from './auth-connector.ts';
import { IdentityRenewer } from './identity-renewer.ts';

const cluster = useFakeCluster('postern-renew-');

async function joined(): Promise<{ identity: AgentIdentity; connector: AuthConnector; dir: string }> {
  const dir = cluster.dataDir();
  const { secret } = await cluster.auth.server.deps.tokens.add({ roles: ['node'], ttlMs: 600_000, labels: {}, singleUse: true });
  const result = await joinCluster({ proxyAddr: cluster.proxy.address, token: secret, caPin: cluster.proxy.caPin, dataDir: dir, nodeName: 'web-1' });
  const identity = new AgentIdentity(agentIdentityPath(dir), result.identity);
  return { identity, connector: new AuthConnector(cluster.proxy.address, identity), dir };
}

test('renewal through the proxy gets new keys and certificates for the same host, written atomically', async (t) => {
  const { identity, connector, dir } = await joined();
  t.after(() => connector.dispose());
  const before = identity.current;
  const renewed: IdentityFile[] = [];
  const renewer = new IdentityRenewer({ identity, auth: () => connector.client(), nodeName: 'web-1', logger: silentLogger(), onRenewed: (next) => void renewed.push(next) });
  const halfway = identity.info.notBefore.getTime() + (identity.info.notAfter.getTime() - identity.info.notBefore.getTime()) / 2;
  assert.equal(renewer.renewAt.getTime(), halfway);
  await renewer.renewNow();
  const after = identity.current;
  assert.equal(renewed.length, 1);
  assert.equal(after.host_id, before.host_id);
  assert.notEqual(after.key_pem, before.key_pem, 'a fresh TLS key');
  assert.notEqual(after.ssh_key_pem, before.ssh_key_pem, 'a fresh SSH key');
  assert.notEqual(after.ssh_cert, before.ssh_cert);
  const certificate = new X509Certificate(after.cert_pem);
  assert.notEqual(certificate.serialNumber, new X509Certificate(before.cert_pem).serialNumber);
  assert.match(certificate.subject, new RegExp(`CN=${before.host_id}`));
  const file = agentIdentityPath(dir);
  assert.equal(JSON.parse(readFileSync(file, 'utf8')).cert_pem, after.cert_pem);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  // The connection was remade with the new certificate, and auth accepts it.
  const response = await connector.client().heartbeat({ inventoryJson: '{}', services: [], publicAddr: '' });
  assert.ok(response.intervalSeconds > 0n);
});

test('a refused renewal keeps the current identity and is retried', async (t) => {
  const { identity, connector, dir } = await joined();
  const onDisk = readFileSync(agentIdentityPath(dir), 'utf8');
  const certPem = identity.current.cert_pem;
  // Auth renews only the host id the caller's certificate names.
  Object.assign(identity.current, { host_id: 'someone-else' });
  const renewer = new IdentityRenewer({ identity, auth: () => connector.client(), nodeName: 'web-1', logger: silentLogger(), backoff: { baseMs: 60_000, maxMs: 60_000 } });
  t.after(async () => { await renewer.stop(); connector.dispose(); });
  await renewer.start();
  await renewer.renewNow();
  assert.equal(identity.current.cert_pem, certPem);
  assert.equal(readFileSync(agentIdentityPath(dir), 'utf8'), onDisk, 'nothing written');
  const status = renewer.status();
  assert.equal(status.failures, 1);
  assert.match(status.lastError ?? '', /^renewing the host certificate of someone-else failed: join without a token is a renewal: present the host certificate of that host id$/);
  assert.equal(renewer.health().ok, true, 'plenty of certificate life is left');
});

test('an identity past half life is renewed as soon as the renewer starts', async (t) => {
  const { identity, connector } = await joined();
  const clock = { now: () => new Date(identity.info.notBefore.getTime() + 4 * 86_400_000) };
  const renewer = new IdentityRenewer({ identity, auth: () => connector.client(), nodeName: 'web-1', logger: silentLogger(), clock });
  t.after(async () => { await renewer.stop(); connector.dispose(); });
  const changed = new Promise<IdentityFile>((resolve) => identity.once('change', resolve));
  await renewer.start();
  const next = await changed;
  assert.equal(next.host_id, identity.current.host_id);
});
