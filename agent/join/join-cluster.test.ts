import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, existsSync } from 'node:fs';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { startFakeProxy, useFakeCluster } from '../../test/fixtures/fake-proxy.ts';
import { AuthServer } from '../../cluster/auth/auth-server.ts';
import { silentLogger } from '../../cluster/common/logger.ts';
import { CaPinMismatchError } from '../../cluster/api/pinned-ca.ts';
import { parseOpenSshPrivateKey } from '../../protocols/ssh/private-key.ts';
import { joinCluster, type JoinOptions } from './join-cluster.ts';
import { AlreadyJoinedError } from './errors.ts';
import { ProxyApiError, ProxyUnreachableError } from '../proxy/errors.ts';
import { agentIdentityPath, loadAgentIdentity } from '../identity/agent-identity.ts';
import { readJoinRecord } from '../identity/join-record.ts';

const cluster = useFakeCluster('postern-join-');

const dataDir = () => cluster.dataDir();

async function token(options: { singleUse?: boolean; labels?: Record<string, string> } = {}): Promise<string> {
  const { secret } = await cluster.auth.server.deps.tokens.add({ roles: ['node'], ttlMs: 600_000, labels: options.labels ?? {}, singleUse: options.singleUse ?? false });
  return secret;
}

function options(overrides: Partial<JoinOptions>): JoinOptions {
  return { proxyAddr: cluster.proxy.address, token: '', caPin: cluster.proxy.caPin, dataDir: dataDir(), nodeName: 'web-1', ...overrides };
}

test('a join with a good token and pin writes a 0600 identity and the token labels', async () => {
  const dir = dataDir();
  const result = await joinCluster(options({ token: await token({ labels: { env: 'prod' } }), dataDir: dir, labels: { rack: 'r1' } }));
  const file = agentIdentityPath(dir);
  assert.equal(result.identityPath, file);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const onDisk = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  assert.equal(onDisk.host_id, result.identity.host_id);
  assert.equal(onDisk.cluster, 'test');
  assert.equal(onDisk.proxy_addr, cluster.proxy.address);
  assert.match(String(onDisk.ssh_cert), /^ssh-ed25519-cert-v01@openssh\.com /);
  assert.equal(parseOpenSshPrivateKey(String(onDisk.ssh_key_pem)).algorithm, 'ssh-ed25519');
  const certificate = new X509Certificate(String(onDisk.cert_pem));
  assert.ok(certificate.checkPrivateKey(createPrivateKey(String(onDisk.key_pem))), 'the certificate is for the key generated here');
  assert.match(certificate.subject, new RegExp(`CN=${result.identity.host_id}`));
  assert.ok(Math.abs(result.expires.getTime() - Date.now() - 7 * 86_400_000) < 60_000, 'host certificates live 7 days');
  const loaded = await loadAgentIdentity(dir);
  assert.equal(loaded?.host_id, result.identity.host_id);
  const record = await readJoinRecord(dir);
  assert.deepEqual([record?.host_id, record?.node_name, record?.token_labels, record?.labels], [result.identity.host_id, 'web-1', { env: 'prod' }, { rack: 'r1' }]);
  assert.equal(statSync(path.join(dir, 'agent-join.json')).mode & 0o777, 0o600);
});

test('a wrong CA pin is refused before the token is sent, and nothing is written', async () => {
  const dir = dataDir();
  const before = cluster.proxy.joinRequests;
  await assert.rejects(joinCluster(options({ token: await token(), dataDir: dir, caPin: `sha256:${'ab'.repeat(32)}` })), (error: unknown) => {
    assert.ok(error instanceof CaPinMismatchError);
    assert.match(error.message, /does not match --ca-pin sha256:abab/);
    return true;
  });
  assert.equal(cluster.proxy.joinRequests, before, 'no join request reached the proxy');
  assert.equal(existsSync(agentIdentityPath(dir)), false);
});

test('a used single-use token is refused with the server code and what to do', async () => {
  const secret = await token({ singleUse: true });
  await joinCluster(options({ token: secret }));
  const dir = dataDir();
  await assert.rejects(joinCluster(options({ token: secret, dataDir: dir })), (error: unknown) => {
    assert.ok(error instanceof ProxyApiError);
    assert.equal(error.code, 'PST_TOKEN_USED');
    assert.match(error.message, /^the cluster refused the join: join token \w+ is single-use and was already used .* by web-1; ask an admin for a new one: pctl tokens add --type=node$/);
    return true;
  });
  assert.equal(existsSync(agentIdentityPath(dir)), false);
});

test('an unknown token is refused', async () => {
  await assert.rejects(joinCluster(options({ token: 'f'.repeat(32) })), { code: 'PST_TOKEN_INVALID', message: /join token is not valid/ });
});

test('an expired token is refused with its expiry and the command for a new one', async () => {
  const skew = { ms: 0 };
  const dir = dataDir();
  const server = await AuthServer.start({
    clusterName: 'skewed', dataDir: dir, listenAddr: '127.0.0.1:0', logger: silentLogger(),
    clock: { now: () => new Date(Date.now() + skew.ms) }, scrypt: { N: 1024, r: 8, p: 1, keylen: 32 },
  });
  const skewedProxy = await startFakeProxy({ auth: server });
  try {
    const { secret } = await server.deps.tokens.add({ roles: ['node'], ttlMs: 60_000, labels: {}, singleUse: false });
    skew.ms = 120_000;
    await assert.rejects(joinCluster({ proxyAddr: skewedProxy.address, token: secret, caPin: skewedProxy.caPin, dataDir: dataDir(), nodeName: 'late' }), (error: unknown) => {
      assert.ok(error instanceof ProxyApiError);
      assert.equal(error.code, 'PST_TOKEN_EXPIRED');
      assert.equal(error.status, 401);
      assert.match(error.message, /join token \w+ expired at \d{4}-\d\d-\d\d \d\d:\d\d UTC; ask an admin for a new one: pctl tokens add --type=node/);
      return true;
    });
  } finally {
    await skewedProxy.close();
    await server.close();
  }
});

test('an unreachable proxy is named with the cause', async () => {
  const closed = net.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  await assert.rejects(joinCluster(options({ token: 'x', proxyAddr: `127.0.0.1:${port}` })), (error: unknown) => {
    assert.ok(error instanceof ProxyUnreachableError);
    assert.match(error.message, new RegExp(`^cannot reach the proxy at 127\\.0\\.0\\.1:${port}: connect ECONNREFUSED .*; check the address and that the proxy is running$`));
    return true;
  });
});

test('a data directory that holds an identity is not joined again', async () => {
  const dir = dataDir();
  const first = await joinCluster(options({ token: await token(), dataDir: dir }));
  const before = cluster.proxy.joinRequests;
  await assert.rejects(joinCluster(options({ token: await token(), dataDir: dir })), (error: unknown) => {
    assert.ok(error instanceof AlreadyJoinedError);
    assert.match(error.message, new RegExp(`holds the identity of host ${first.identity.host_id} in cluster test already .*move it aside first`));
    return true;
  });
  assert.equal(cluster.proxy.joinRequests, before);
});
