/**
 * kubectl through Postern with real processes: a cluster process (auth + proxy), an
 * agent process serving the API-server fixture (test/fixtures/kube-apiserver.ts) with
 * its own bearer token, a user who logs in with psh and runs `psh kube login`, then
 * plain kubectl: get, get -w (streamed), exec over websocket and over SPDY/3.1
 * (KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false), byte-exact both ways, exit codes,
 * port-forward over websocket-tunneled SPDY and over SPDY, and the
 * exec recordings listed by `psh recordings ls` and replayed by `psh play`. The fixture
 * records what it received: the forwarder's token (never the user's credentials),
 * Impersonate-User and -Group from the role (traits expanded), and never a client's own
 * Impersonate-*.
 * Refusals: a user without kube access; requests are audited with verb and resource.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startDaemon, stopAll, type DaemonProcess } from './fixtures/processes.ts';
import { pshIn, signUpAndLogIn, startClusterProcess, type ClusterProcess } from './fixtures/cluster-process.ts';
import { patternBytes, startKubeApiServer, type KubeFixture } from './fixtures/kube-apiserver.ts';

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
  /** kubectl with binary output and optional input; `spdy` forces SPDY/3.1 for exec (kubectl 1.32 defaults to websocket). */
  const kubectlRun = (args: string[], options: { spdy?: boolean; input?: Buffer } = {}): Promise<{ code: number; stdout: Buffer; stderr: string }> => new Promise((resolve) => {
    const child = spawn('kubectl', ['--kubeconfig', kubeconfig, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...(options.spdy ? { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: 'false' } : {}) } });
    const out: Buffer[] = [];
    let err = '';
    const timer = setTimeout(() => child.kill(), 30_000);
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? Buffer.alloc(0));
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, stdout: Buffer.concat(out), stderr: err });
    });
  });
  type AuditEvent = { fields?: Record<string, unknown> };
  /** Polls the audit log for events of `type` by carol until `done` says enough. */
  const auditUntil = async (type: string, done: (events: AuditEvent[]) => AuditEvent[] | undefined): Promise<AuditEvent[]> => {
    let events: AuditEvent[] = [];
    for (let i = 0; i < 100; i++) {
      const audit = await cluster!.pctl(['audit', 'search', '--type', type, '--user', 'carol', '--format', 'json']);
      events = JSON.parse(audit.stdout) as AuditEvent[];
      const found = done(events);
      if (found) return found;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`no such ${type} events: ${JSON.stringify(events.slice(0, 5))}`);
  };
  type Listed = { session_id: string; user: string; login: string; node: string; kind: string; command?: string };
  /** Polls psh recordings ls until `count` recordings match. */
  const waitForRecordings = async (match: (r: Listed) => boolean, count: number): Promise<Listed[]> => {
    let last = '';
    for (let i = 0; i < 100; i++) {
      const listed = await psh(['recordings', 'ls', '--format', 'json']);
      assert.equal(listed.code, 0, listed.stderr);
      last = listed.stdout;
      const found = (JSON.parse(listed.stdout) as Listed[]).filter(match);
      if (found.length >= count) return found;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    throw new Error(`fewer than ${count} recordings; listed: ${last}\nagent log: ${agent?.logs().slice(-3000)}`);
  };

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

  test('kubectl exec over SPDY/3.1 works through Postern as the impersonated user, with the service token', async () => {
    const mark = kube!.requests.length;
    const run = await kubectlRun(['exec', 'web-1', '--', 'echo', 'over', 'spdy'], { spdy: true });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.toString(), 'exec in web-1 as carol-k8s: echo over spdy\n');
    const exec = since(mark).find((r) => r.path.includes('/pods/web-1/exec'));
    assert.ok(exec, JSON.stringify(since(mark).map((r) => r.path)));
    assert.equal(String(exec.headers.upgrade).toLowerCase(), 'spdy/3.1', 'kubectl used SPDY, not websocket');
    assert.equal(exec.headers.authorization, `Bearer ${kube!.token}`);
    assert.equal(exec.headers['impersonate-user'], 'carol-k8s');
    assert.equal(exec.headers['impersonate-group'], 'developers, viewers');
  });

  test('a client\'s own --as is replaced on exec upgrades too (websocket and SPDY)', async () => {
    for (const spdy of [false, true]) {
      const mark = kube!.requests.length;
      const run = await kubectlRun(['exec', 'web-1', '--as', 'system:admin', '--as-group', 'system:masters', '--', 'whoami'], { spdy });
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout.toString(), 'exec in web-1 as carol-k8s: whoami\n');
      const exec = since(mark).find((r) => r.path.includes('/exec'))!;
      assert.equal(String(exec.headers.upgrade).toLowerCase(), spdy ? 'spdy/3.1' : 'websocket');
      assert.doesNotMatch(String(exec.headers['impersonate-group']), /system:masters/);
    }
  });

  test('kubectl exec -i cat carries 1 MB of binary both ways byte-exact, over websocket and SPDY', async () => {
    const input = randomBytes(1024 * 1024);
    for (const spdy of [false, true]) {
      const run = await kubectlRun(['exec', '-i', 'web-1', '--', 'cat'], { spdy, input });
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout.length, input.length, spdy ? 'SPDY' : 'websocket');
      assert.ok(run.stdout.equals(input), `${spdy ? 'SPDY' : 'websocket'}: the bytes came back changed`);
    }
  });

  test('a command\'s exit code reaches kubectl over websocket and SPDY, and its session.end audit event', async () => {
    for (const spdy of [false, true]) {
      const run = await kubectlRun(['exec', 'web-1', '--', 'exit', '3'], { spdy });
      assert.equal(run.code, 3, `${spdy ? 'SPDY' : 'websocket'}: ${run.stderr}`);
      assert.match(run.stderr, /exiting with 3/);
    }
    const ends = await auditUntil('session.end', (events) => events.filter((e) => e.fields?.command === 'exit 3').length >= 2 ? events : undefined);
    assert.deepEqual(ends.filter((e) => e.fields?.command === 'exit 3').map((e) => e.fields?.exit_code), [3, 3]);
  });

  test('exec sessions over websocket and SPDY are recorded: psh recordings ls lists them and psh play replays their output', async () => {
    const expected = Buffer.concat([patternBytes(100_000), Buffer.from('pattern: 100000 bytes\n')]).toString();
    for (const [spdy, size] of [[false, '100000'], [true, '100000']] as const) {
      const run = await kubectlRun(['exec', 'web-1', '--', 'pattern', size], { spdy });
      assert.equal(run.code, 0, run.stderr);
      assert.ok(run.stdout.equals(patternBytes(100_000)));
    }
    const recordings = await waitForRecordings((r) => r.kind === 'kube' && r.command === 'pattern 100000', 2);
    const protocols: string[] = [];
    for (const recorded of recordings) {
      assert.equal(recorded.user, 'carol');
      assert.equal(recorded.login, 'carol-k8s');
      assert.equal(recorded.node, 'dev-k8s');
      const cast = await psh(['play', '--format', 'asciicast', recorded.session_id]);
      assert.equal(cast.code, 0, cast.stderr);
      const [header, ...events] = cast.stdout.trim().split('\n');
      assert.equal((JSON.parse(header!) as { version: number }).version, 2);
      const printed = events.map((l) => JSON.parse(l) as [number, string, string]).filter(([, type]) => type === 'o').map(([, , text]) => text).join('');
      assert.equal(printed, expected);
      const played = await psh(['play', '--speed', '1000', '--idle-limit', '0.01', recorded.session_id]);
      assert.equal(played.code, 0, played.stderr);
      assert.equal(played.stdout, expected);
      // The session's audit events carry its id; session.end names the recording.
      const events2 = await auditUntil('session.end', (found) => found.find((e) => e.fields?.session_id === recorded.session_id) ? found : undefined);
      const end = events2.find((e) => e.fields?.session_id === recorded.session_id)!;
      assert.equal(end.fields?.recording_id, recorded.session_id);
      assert.equal(end.fields?.exit_code, 0);
      protocols.push(String(end.fields?.protocol));
    }
    assert.deepEqual(protocols.map((p) => p.split('+')[0]).sort(), ['SPDY/3.1', 'websocket']);
    const ls = await psh(['recordings', 'ls']);
    assert.match(ls.stdout, /carol-k8s@dev-k8s\s+kube: pattern 100000/);
  });

  test('kubectl attach over websocket and SPDY is a recorded session too', async () => {
    for (const spdy of [false, true]) {
      const run = await kubectlRun(['attach', 'web-1'], { spdy });
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout.toString(), 'attached to web-1 as carol-k8s\n');
    }
    const recordings = await waitForRecordings((r) => r.kind === 'kube' && r.command === 'attach default/web-1', 2);
    for (const recorded of recordings) {
      const played = await psh(['play', '--speed', '1000', '--idle-limit', '0.01', recorded.session_id]);
      assert.equal(played.code, 0, played.stderr);
      assert.equal(played.stdout, 'attached to web-1 as carol-k8s\n');
    }
  });

  test('kubectl port-forward carries bytes exactly over websocket-tunneled SPDY and over SPDY/3.1, as the impersonated user', async () => {
    for (const websockets of [true, false]) {
      const mark = kube!.requests.length;
      const child = spawn('kubectl', ['--kubeconfig', kubeconfig, 'port-forward', 'pod/web-1', ':80'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KUBECTL_PORT_FORWARD_WEBSOCKETS: String(websockets) } });
      let err = '';
      child.stderr.on('data', (c: Buffer) => (err += c.toString()));
      try {
        const port = await new Promise<number>((resolve, reject) => {
          let out = '';
          child.stdout.on('data', (c: Buffer) => {
            out += c.toString();
            const found = /Forwarding from 127\.0\.0\.1:(\d+) -> 80/.exec(out);
            if (found) resolve(Number(found[1]));
          });
          child.once('exit', (code) => reject(new Error(`kubectl port-forward exited ${code}: ${out} ${err}`)));
          setTimeout(() => reject(new Error(`kubectl port-forward did not listen within 15 s: ${out} ${err}`)), 15_000).unref();
        });
        const sent = randomBytes(256 * 1024);
        const echoed = await new Promise<Buffer>((resolve, reject) => {
          const socket = connect(port, '127.0.0.1');
          const parts: Buffer[] = [];
          let length = 0;
          socket.on('data', (c: Buffer) => {
            parts.push(c);
            length += c.length;
            if (length >= sent.length) {
              socket.end();
              resolve(Buffer.concat(parts));
            }
          });
          socket.on('error', reject);
          setTimeout(() => reject(new Error(`${length} of ${sent.length} bytes came back within 15 s: ${err}`)), 15_000).unref();
          socket.write(sent);
        });
        assert.ok(echoed.equals(sent), `${websockets ? 'websocket' : 'SPDY'}: the bytes came back changed`);
      } finally {
        child.kill();
      }
      const forward = since(mark).find((r) => r.path.includes('/pods/web-1/portforward'));
      assert.ok(forward, JSON.stringify(since(mark).map((r) => r.path)));
      assert.equal(String(forward.headers.upgrade).toLowerCase(), websockets ? 'websocket' : 'spdy/3.1');
      assert.equal(forward.headers['impersonate-user'], 'carol-k8s');
      assert.equal(forward.headers.authorization, `Bearer ${kube!.token}`);
    }
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
