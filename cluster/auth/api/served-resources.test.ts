import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { connectAuth } from '../../api/auth-client.ts';
import { formatAuthorizedKey } from '../../../protocols/ssh/public-key.ts';
import { parseResources } from '../../access/resources/parse-resources.ts';
import { startTestAuth } from '../../../test/fixtures/auth.ts';

const served = [
  { kind: 'db', name: 'orders', labels: { env: 'prod' }, spec: { protocol: 'postgres' } },
  { kind: 'db', name: 'scratch', labels: { env: 'dev' }, spec: { protocol: 'mysql' } },
  { kind: 'app', name: 'grafana', labels: { env: 'dev' }, spec: { uri: 'http://127.0.0.1:3000' } },
];

test('agents announce served resources; proxies see all, users see what their roles allow, bad announcements are refused', async (t) => {
  const auth = await startTestAuth({ clusterName: 'alpha' });
  t.after(() => auth.stop());
  const deps = auth.server.deps;
  const node = auth.connectAs(['node'], 'agent-1').client;
  await node.heartbeat({ inventoryJson: JSON.stringify({ nodeName: 'db-host' }), services: ['ssh', 'db:orders', 'db:scratch', 'app:grafana'], publicAddr: '', servedJson: JSON.stringify(served) });

  const list = async (client: typeof node, kind: string): Promise<Array<{ metadata: { name: string }; status: { node_name: string; online: boolean } }>> =>
    JSON.parse((await client.getResources({ kind, name: '' })).resourcesJson);
  const proxy = auth.connectAs(['proxy']).client;
  const dbs = await list(proxy, 'dbs');
  assert.deepEqual(dbs.map((d) => [d.metadata.name, d.status.node_name, d.status.online]), [['orders', 'db-host', true], ['scratch', 'db-host', true]]);
  assert.deepEqual((await list(proxy, 'app')).map((a) => a.metadata.name), ['grafana']);

  // A user with db_labels env=dev sees only the dev database, and no apps.
  const [role] = parseResources('kind: role\nversion: v1\nmetadata: { name: dev-db }\nspec:\n  allow:\n    db_labels: { env: dev }\n    db_users: ["*"]\n', { source: 'test', registry: deps.registry });
  await deps.resources.put(role!);
  const tls = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pair = deps.issuer.issueUser({
    identity: { kind: 'user', username: 'bob', roles: ['dev-db'], traits: {}, logins: [], cluster: 'alpha', routeToCluster: 'alpha', mfaVerified: false, bot: false, expires: new Date(Date.now() + 600_000) },
    sshPublicKey: formatAuthorizedKey(generateKeyPairSync('ed25519').publicKey),
    tlsPublicKey: tls.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    permit: { pty: true, portForwarding: false, agentForwarding: false },
  });
  const ca = deps.authorities.trustedTlsCerts('host');
  const bob = connectAuth(auth.server.address, { key_pem: tls.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), cert_pem: pair.tlsCertPem, ca_pems: ca });
  t.after(() => bob.close());
  assert.deepEqual((await list(bob.client, 'db')).map((d) => d.metadata.name), ['scratch']);
  assert.deepEqual(await list(bob.client, 'app'), []);

  // Another node may not read what its neighbours serve.
  await assert.rejects(list(auth.connectAs(['node'], 'agent-2').client, 'db'), { message: /may not list db/ });

  // Malformed announcements are refused with the field, and the last good record stays.
  const beat = (servedJson: string) => node.heartbeat({ inventoryJson: '{}', services: [], publicAddr: '', servedJson });
  await assert.rejects(beat('{'), { message: /served_json is not JSON/ });
  await assert.rejects(beat(JSON.stringify([{ kind: 'printer', name: 'x' }])), { message: /kind/ });
  await assert.rejects(beat(JSON.stringify([served[0], served[0]])), { message: /db "orders" is announced twice/ });
  await assert.rejects(beat(JSON.stringify([{ kind: 'db', name: '../etc' }])), { message: /name/ });
  assert.equal((await list(proxy, 'db')).length, 2);
});
