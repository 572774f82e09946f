/**
 * The agent's own decisions on Kubernetes streams, with a real auth server, proxy,
 * agent and the API-server fixture in this process: a user whose roles do not allow the
 * cluster's labels is refused by the agent (403, audited); an allowed one reaches the
 * API server with the service's token and the role's impersonation, whatever
 * Authorization and Impersonate-* headers the client sent; a bad kubeconfig path is
 * reported with the file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startTestProxy } from '../cluster/proxy/testdata/proxy-fixture.ts';
import { parseConfig } from '../cluster/common/config.ts';
import { silentLogger } from '../cluster/common/logger.ts';
import { encodeRoutedIdentity, type RoutedIdentity } from '../cluster/api/routed-identity.ts';
import { TunnelRejectedError } from '../protocols/tunnel/index.ts';
import { startKubeApiServer } from './fixtures/kube-apiserver.ts';
import { startAgent } from '../agent/agent.ts';
import { loadKubeCredentials } from '../agent/services/kube/kube-credentials.ts';

test('the agent refuses users the roles do not allow and impersonates the others with its own credentials', async () => {
  const kube = await startKubeApiServer();
  const t = await startTestProxy();
  const dir = mkdtempSync(path.join(tmpdir(), 'postern-kube-service-'));
  const admin = t.auth.connectAs(['admin']).client;
  const deps = t.auth.server.deps;
  const { secret } = await deps.tokens.add({ roles: ['node'], ttlMs: 600_000, labels: {}, singleUse: true });
  const pin = (await admin.status({})).authorities.find((a) => a.kind === 'host')?.tlsPin ?? '';
  await admin.createResources({
    source: 'test', upsert: false,
    text: "kind: role\nversion: v1\nmetadata: { name: k-dev }\nspec:\n  allow:\n    kubernetes_labels: { env: dev }\n    kubernetes_users: ['{{external.k8s_user}}']\n    kubernetes_groups: [devs]\n  deny:\n    kubernetes_groups: [system:masters]\n",
  });
  const config = parseConfig(`data_dir: ${dir}\nagent:\n  proxy_addr: ${t.proxy.address}\n  token: ${secret}\n  ca_pin: ${pin}\n  ssh: { enabled: false }\n  kube:\n    clusters:\n      - { name: dev, labels: { env: dev }, api_addr: "${kube.url}", ca_file: "${kube.caFile}", token_file: "${kube.tokenFile}" }\n`, path.join(dir, 'postern.yaml'));
  const agent = await startAgent(config, { logger: silentLogger() });
  try {
    const hostId = agent.identity.current.host_id!;
    for (let i = 0; i < 200 && !(t.proxy.registry.has(hostId) && agent.services.names().includes('kube_cluster:dev')); i++) await new Promise((resolve) => setTimeout(resolve, 25));
    const identity: RoutedIdentity = { v: 1, username: 'hana', roles: ['k-dev'], traits: { k8s_user: ['hana@corp'] }, cluster: 'alpha', expires: new Date(Date.now() + 600_000).toISOString(), via: 'certificate', addr: '127.0.0.1:1' };
    const stream = await t.proxy.registry.dial(hostId, 'kube_cluster:dev', encodeRoutedIdentity(identity));
    stream.write('GET /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: kube.postern\r\nAuthorization: Bearer stolen\r\nImpersonate-User: system:admin\r\nImpersonate-Group: system:masters\r\nImpersonate-Extra-scopes: all\r\nConnection: close\r\n\r\n');
    let answer = '';
    for await (const chunk of stream) answer += (chunk as Buffer).toString();
    assert.match(answer, /^HTTP\/1\.1 200[\s\S]*PodList/);
    const seen = kube.requests.at(-1)!;
    assert.equal(seen.headers.authorization, `Bearer ${kube.token}`);
    assert.equal(seen.headers['impersonate-user'], 'hana@corp');
    assert.equal(seen.headers['impersonate-group'], 'devs');
    assert.equal(seen.headers['impersonate-extra-scopes'], undefined);

    const outsider = encodeRoutedIdentity({ ...identity, username: 'ivan', roles: ['access-nothing'] });
    await assert.rejects(t.proxy.registry.dial(hostId, 'kube_cluster:dev', outsider), (error: unknown) => error instanceof TunnelRejectedError && error.status === 403 && /no role allows kubernetes cluster "dev"/.test(error.reason));
    let denied: Awaited<ReturnType<typeof deps.audit.search>> = [];
    for (let i = 0; i < 100 && denied.length === 0; i++) {
      denied = (await deps.audit.search({ from: new Date(Date.now() - 60_000), to: new Date(Date.now() + 60_000), types: ['access.denied'], user: 'ivan' }));
      if (denied.length === 0) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(denied[0]?.resource?.kind, 'kube_cluster');
  } finally {
    await agent.stop();
    await t.stop();
    await kube.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a kubeconfig that cannot be used is reported with the file and the context', async () => {
  await assert.rejects(loadKubeCredentials({ name: 'x', labels: {}, kubeconfig: '/nonexistent/kubeconfig' }), /cannot read the kubeconfig \/nonexistent\/kubeconfig/);
  const dir = mkdtempSync(path.join(tmpdir(), 'postern-kubeconfig-'));
  try {
    const file = path.join(dir, 'config');
    (await import('node:fs')).writeFileSync(file, 'apiVersion: v1\nkind: Config\ncurrent-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\nclusters: [{name: c, cluster: {server: "https://10.0.0.1:6443", certificate-authority-data: ' + Buffer.from('CA').toString('base64') + '}}]\nusers: [{name: u, user: {token: t0k}}]\n');
    const loaded = await loadKubeCredentials({ name: 'x', labels: {}, kubeconfig: file });
    assert.equal(loaded.server.href, 'https://10.0.0.1:6443/');
    assert.equal(loaded.ca, 'CA');
    assert.equal(loaded.token, 't0k');
    await assert.rejects(loadKubeCredentials({ name: 'x', labels: {}, kubeconfig: file, context: 'b' }), /has no context "b"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
