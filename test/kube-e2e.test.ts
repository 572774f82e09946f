/**
 * kubectl through Postern with real processes: a cluster process (auth + proxy), an
 * agent process serving the API-server fixture (test/fixtures/kube-apiserver.ts) with
 * its own bearer token, a user who logs in with psh and runs `psh kube login`, then
 * plain kubectl: get, get -w (streamed), exec over websocket. The fixture records what
 * it received: the forwarder's token (never the user's credentials), Impersonate-User
 * and -Group from the role (traits expanded), and never a client's own Impersonate-*.
 * Refusals: a user without kube access; requests are audited with verb and resource.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startDaemon, stopAll, type DaemonProcess } from './fixtures/processes.ts';
import { pshIn, signUpAndLogIn, startClusterProcess, type ClusterProcess } from './fixtures/cluster-process.ts';
import { startKubeApiServer, type KubeFixture } from './fixtures/kube-apiserver.ts';

const kubectlMissing = spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0 ? undefined : 'kubectl missing: install Debian package kubernetes-client';

describe('kubectl through Postern', { skip: kubectlMissing }, () => {
  let cluster: ClusterProcess | undefined;
  let agent: DaemonProcess | undefined;
  let kube: KubeFixture | undefined;
  let home = '';
  let kubeconfig = '';
  const psh = (args: string[], input?: string) => pshIn(home)(args, input);
  /** kubectl without blocking this process (the fixture lives here). */
  const kubectl = (args: string[], timeoutMs = 20_000): Promise<{ code: number; stdout: string; stderr: string }> => new Promise((resolve) => {
    execFile('kubectl', ['--kubeconfig', kubeconfig, ...args], { encoding: 'utf8', timeout: timeoutMs }, (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }));
  });
  const since = (mark: number) => kube!.requests.slice(mark);

  before(async () => {
    home = mkdtempSync(path.join(tmpdir(), 'postern-kube-home-'));
    kubeconfig = path.join(home, 'kubeconfig');
    kube = await startKubeApiServer();
    cluster = await startClusterProcess('kube');
    const token = (JSON.parse((await cluster.pctl(['tokens', 'add', '--type=node', '--format', 'json'])).stdout) as { token: string }).token;
    agent = await startDaemon('agent', (dir, diag) => [
      `data_dir: ${dir}`, `diag_addr: ${diag}`, 'agent:', '  node_name: kube-agent', `  proxy_addr: ${cluster!.proxy}`, `  token: ${token}`, `  ca_pin: ${cluster!.pin}`,
      '  ssh: { enabled: false }',
      '  kube:',
      '    clusters:',
      `      - { name: dev-k8s, labels: { env: dev }, api_addr: "${kube!.url}", ca_file: "${kube!.caFile}", token_file: "${kube!.tokenFile}" }`,
      '',
    ].join('\n'));
    await agent.waitReady();
    const role = path.join(home, 'role.yaml');
    writeFileSync(role, [
      'kind: role', 'version: v1', 'metadata: { name: kube-dev }', 'spec:', '  allow:',
      '    kubernetes_labels: { env: dev }', "    kubernetes_users: ['{{internal.logins}}']", '    kubernetes_groups: [developers, viewers]',
      '    resources: [{ kinds: [kube_cluster], verbs: [list, read] }]', '',
    ].join('\n'));
    assert.equal((await cluster.pctl(['create', '-f', role])).code, 0);
    await signUpAndLogIn(cluster, home, { name: 'carol', roles: 'kube-dev', logins: 'carol-k8s', password: 'a long and happy password' });
    let listed = '';
    for (let i = 0; i < 100 && !listed.includes('dev-k8s'); i++) {
      listed = (await psh(['kube', 'ls'])).stdout;
      if (!listed.includes('dev-k8s')) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.match(listed, /dev-k8s/);
    const login = await psh(['kube', 'login', 'dev-k8s', '--kubeconfig', kubeconfig]);
    assert.equal(login.code, 0, login.stderr);
  });
  after(async () => {
    await stopAll([agent, cluster?.daemon]);
    await kube?.close();
    rmSync(home, { recursive: true, force: true });
  });

  test('kubectl get pods works with the written context; the API server sees the service token and the role\'s impersonation', async () => {
    const mark = kube!.requests.length;
    const run = await kubectl(['get', 'pods']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /web-1\s+Running/);
    const list = since(mark).find((r) => r.path.startsWith('/api/v1/namespaces/default/pods'));
    assert.ok(list, JSON.stringify(since(mark).map((r) => r.path)));
    assert.equal(list.headers.authorization, `Bearer ${kube!.token}`);
    assert.equal(list.headers['impersonate-user'], 'carol-k8s');
    assert.equal(list.headers['impersonate-group'], 'developers, viewers');
  });

  test('a client\'s own --as / --as-group are replaced, not passed', async () => {
    const mark = kube!.requests.length;
    const run = await kubectl(['get', 'pods', '--as', 'system:admin', '--as-group', 'system:masters']);
    assert.equal(run.code, 0, run.stderr);
    for (const request of since(mark)) {
      assert.equal(request.headers['impersonate-user'], 'carol-k8s', request.path);
      assert.doesNotMatch(String(request.headers['impersonate-group']), /system:masters/);
    }
  });

  test('kubectl get -w streams a watch event', async () => {
    const child = spawn('kubectl', ['--kubeconfig', kubeconfig, 'get', 'pods', '-w', '-o', 'name'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (c: Buffer) => {
          out += c.toString();
          if (out.includes('pod/web-2')) resolve();
        });
        child.once('exit', (code) => reject(new Error(`kubectl exited ${code}: ${out} ${err}`)));
        setTimeout(() => reject(new Error(`no watch event within 15 s: ${out} ${err}`)), 15_000).unref();
      });
    } finally {
      child.kill();
    }
    assert.match(out, /pod\/web-1[\s\S]*pod\/web-2/);
    assert.ok(kube!.requests.some((r) => r.path.includes('watch=true') && r.headers['impersonate-user'] === 'carol-k8s'));
  });

  test('kubectl exec runs over the websocket upgrade as the impersonated user', async () => {
    const run = await kubectl(['exec', 'web-1', '--', 'echo', 'through', 'postern']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'exec in web-1 as carol-k8s: echo through postern\n');
  });

  test('requests are audited with verb, resource and namespace', async () => {
    let events: Array<{ fields?: { verb?: string; resource?: string; namespace?: string; kube_user?: string } }> = [];
    for (let i = 0; i < 50; i++) {
      const audit = await cluster!.pctl(['audit', 'search', '--type', 'kube.request', '--user', 'carol', '--format', 'json']);
      events = JSON.parse(audit.stdout) as typeof events;
      if (events.some((e) => e.fields?.resource === 'pods' && e.fields.verb === 'list')) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const list = events.find((e) => e.fields?.resource === 'pods' && e.fields.verb === 'list');
    assert.ok(list, JSON.stringify(events.slice(0, 5)));
    assert.equal(list.fields?.namespace, 'default');
    assert.equal(list.fields?.kube_user, 'carol-k8s');
  });

  test('psh kube login --exec: kubectl runs psh kube credentials, which issues a certificate when none is stored', async () => {
    const execConfig = path.join(home, 'kubeconfig-exec');
    const login = await psh(['kube', 'login', 'dev-k8s', '--exec', '--kubeconfig', execConfig]);
    assert.equal(login.code, 0, login.stderr);
    assert.match(readFileSync(execConfig, 'utf8'), /command: [\s\S]*kube[\s\S]*credentials/);
    rmSync(path.join(home, 'profiles', cluster!.proxy.replace(/[^A-Za-z0-9.-]/g, '_'), 'kube-dev-k8s.crt'));
    const run = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => execFile('kubectl', ['--kubeconfig', execConfig, 'get', 'pods'], { encoding: 'utf8', timeout: 30_000 }, (error, stdout, stderr) => resolve({ code: error ? 1 : 0, stdout, stderr })));
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /web-1/);
  });

  test('a user without kube access cannot get a certificate for the cluster, and a plain user certificate is refused', async () => {
    const otherHome = mkdtempSync(path.join(tmpdir(), 'postern-kube-other-'));
    try {
      const role = path.join(otherHome, 'role.yaml');
      writeFileSync(role, 'kind: role\nversion: v1\nmetadata: { name: no-kube }\nspec:\n  allow:\n    logins: [dave]\n');
      assert.equal((await cluster!.pctl(['create', '-f', role])).code, 0);
      await signUpAndLogIn(cluster!, otherHome, { name: 'dave', roles: 'no-kube', logins: 'dave', password: 'a long and happy password' });
      const login = await pshIn(otherHome)(['kube', 'login', 'dev-k8s', '--kubeconfig', path.join(otherHome, 'kubeconfig')]);
      assert.notEqual(login.code, 0);
      assert.match(login.stderr, /no role allows kubernetes cluster "dev-k8s"|no Kubernetes cluster is named/);
      // Dave's ordinary certificate, presented to the Kubernetes route, names no cluster.
      const dir = path.join(otherHome, 'profiles', cluster!.proxy.replace(/[^A-Za-z0-9.-]/g, '_'));
      const config = path.join(otherHome, 'kubeconfig-plain');
      writeFileSync(config, `apiVersion: v1\nkind: Config\nclusters: [{name: p, cluster: {server: "https://${cluster!.proxy}", certificate-authority: ${dir}/cluster-ca.pem, tls-server-name: kube.postern}}]\nusers: [{name: d, user: {client-certificate: ${dir}/tls.crt, client-key: ${dir}/tls.key}}]\ncontexts: [{name: d, context: {cluster: p, user: d}}]\ncurrent-context: d\n`);
      const mark = kube!.requests.length;
      const run = await new Promise<{ code: number; stderr: string }>((resolve) => execFile('kubectl', ['--kubeconfig', config, 'get', 'pods'], { encoding: 'utf8', timeout: 20_000 }, (error, _o, stderr) => resolve({ code: error ? 1 : 0, stderr })));
      assert.notEqual(run.code, 0);
      assert.match(run.stderr, /not routed to a Kubernetes cluster/);
      assert.equal(kube!.requests.length, mark, 'nothing reached the API server');
    } finally {
      rmSync(otherHome, { recursive: true, force: true });
    }
  });
});
