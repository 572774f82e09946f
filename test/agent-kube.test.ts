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
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Duplex } from 'node:stream';
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
import { HeaderBlockWriter } from '../protocols/spdy/header-block.ts';
import { dataFrame, synStream } from '../protocols/spdy/frame-writer.ts';

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

/** Sends an upgrade request on a dialed stream and returns the head and every byte after it, as they come. */
async function upgrade(stream: Duplex, request: string): Promise<{ stream: Duplex; head: string; after: () => Buffer; closed: Promise<void> }> {
  let received = Buffer.alloc(0);
  const closed = new Promise<void>((resolve) => stream.once('close', () => resolve()));
  stream.on('data', (chunk: Buffer) => (received = Buffer.concat([received, chunk])));
  stream.on('error', () => {});
  stream.write(request);
  for (let i = 0; i < 200 && received.indexOf('\r\n\r\n') < 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  const end = received.indexOf('\r\n\r\n');
  assert.ok(end > 0, `no answer head: ${received.toString('latin1').slice(0, 200)}`);
  const head = received.subarray(0, end).toString('latin1');
  const start = end + 4;
  return { stream, head, after: () => received.subarray(start), closed };
}

/** One masked client websocket message on a kube channel. */
function clientFrame(channel: number, data: Buffer): Buffer {
  const payload = Buffer.concat([Buffer.from([channel]), data]);
  assert.ok(payload.length < 126);
  const mask = randomBytes(4);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i & 3]!));
  return Buffer.concat([Buffer.from([0x82, 0x80 | payload.length]), mask, masked]);
}

async function until<T>(what: string, get: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await get();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test('exec sessions are audited and recorded (not when the roles say record_session: false); garbage in a websocket or SPDY exec stream passes through unchanged and only stops the recording', async () => {
  const kube = await startKubeApiServer();
  const t = await startTestProxy();
  const dir = mkdtempSync(path.join(tmpdir(), 'postern-kube-exec-'));
  const admin = t.auth.connectAs(['admin']).client;
  const deps = t.auth.server.deps;
  const { secret } = await deps.tokens.add({ roles: ['node'], ttlMs: 600_000, labels: {}, singleUse: true });
  const pin = (await admin.status({})).authorities.find((a) => a.kind === 'host')?.tlsPin ?? '';
  await admin.createResources({ source: 'test', upsert: false, text: "kind: role\nversion: v1\nmetadata: { name: k-dev }\nspec:\n  allow:\n    kubernetes_labels: { env: dev }\n    kubernetes_users: [hana-k8s]\n" });
  await admin.createResources({ source: 'test', upsert: false, text: "kind: role\nversion: v1\nmetadata: { name: k-unrecorded }\nspec:\n  options: { record_session: false }\n  allow:\n    kubernetes_labels: { env: dev }\n    kubernetes_users: [hana-k8s]\n" });
  const config = parseConfig(`data_dir: ${dir}\nagent:\n  proxy_addr: ${t.proxy.address}\n  token: ${secret}\n  ca_pin: ${pin}\n  ssh: { enabled: false }\n  kube:\n    clusters:\n      - { name: dev, labels: { env: dev }, api_addr: "${kube.url}", ca_file: "${kube.caFile}", token_file: "${kube.tokenFile}" }\n`, path.join(dir, 'postern.yaml'));
  const agent = await startAgent(config, { logger: silentLogger() });
  try {
    const hostId = agent.identity.current.host_id!;
    for (let i = 0; i < 200 && !(t.proxy.registry.has(hostId) && agent.services.names().includes('kube_cluster:dev')); i++) await new Promise((resolve) => setTimeout(resolve, 25));
    const identity: RoutedIdentity = { v: 1, username: 'hana', roles: ['k-dev'], traits: {}, cluster: 'alpha', expires: new Date(Date.now() + 600_000).toISOString(), via: 'certificate', addr: '127.0.0.1:1' };
    const dial = () => t.proxy.registry.dial(hostId, 'kube_cluster:dev', encodeRoutedIdentity(identity));
    const events = async (type: string) => (await deps.audit.search({ from: new Date(Date.now() - 60_000), to: new Date(Date.now() + 60_000), types: [type], user: 'hana' }));
    const sessionOf = async (pod: string, protocol: RegExp) => until(`session.start for ${pod}`, async () => (await events('session.start')).find((e) => e.fields.pod === `default/${pod}` && protocol.test(String(e.fields.protocol))));

    // Websocket: a valid resize from the client, then garbage; the fixture echoes every byte.
    const ws = await upgrade(await dial(), 'GET /api/v1/namespaces/default/pods/web-ws/exec?command=raw-echo&stdin=true&stdout=true&tty=true HTTP/1.1\r\nHost: kube.postern\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n');
    assert.match(ws.head, /^HTTP\/1\.1 101/);
    const beforeText = Buffer.from('before the raw echo\n');
    const before = Buffer.concat([Buffer.from([0x82, 1 + beforeText.length, 1]), beforeText]);
    await sendAndCompare(ws, [clientFrame(4, Buffer.from('{"Width":100,"Height":30}')), randomBytes(4096), Buffer.from('GET / HTTP/1.1\r\n\r\n')], before);

    // SPDY: a stream the client names stdout, data on it (echoed back: the API server's side
    // carries it on "stdout", so it is recorded), then garbage.
    const spdy = await upgrade(await dial(), 'POST /api/v1/namespaces/default/pods/web-spdy/exec?command=raw-echo&stdout=true HTTP/1.1\r\nHost: kube.postern\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\nContent-Length: 0\r\n\r\n');
    assert.match(spdy.head, /^HTTP\/1\.1 101[\s\S]*SPDY\/3\.1/i);
    const headers = new HeaderBlockWriter();
    await sendAndCompare(spdy, [Buffer.concat([synStream(headers, 1, { streamtype: 'stdout' }), dataFrame(1, Buffer.from('spdy output before garbage\n'))]), Buffer.concat([Buffer.from([0x80, 0x02, 0, 1, 0, 0, 0, 0]), randomBytes(4096)])], Buffer.alloc(0));

    // The agent still serves, and both sessions are audited and recorded up to the garbage.
    const check = await dial();
    check.write('GET /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: kube.postern\r\nConnection: close\r\n\r\n');
    let answer = '';
    for await (const chunk of check) answer += (chunk as Buffer).toString();
    assert.match(answer, /^HTTP\/1\.1 200/);
    for (const [pod, protocol, output, stoppedBy] of [['web-ws', /^websocket\+v5\.channel\.k8s\.io$/, 'before the raw echo\n', /API server's websocket stream is malformed \(a server frame with a mask\)/], ['web-spdy', /^SPDY\/3\.1\+v4\.channel\.k8s\.io$/, 'spdy output before garbage\n', /client's SPDY stream is malformed \(SPDY version 2/]] as const) {
      const start = await sessionOf(pod, protocol);
      const sessionId = String(start.fields.session_id);
      assert.equal(start.fields.recorded, true);
      assert.equal(start.fields.kube_user, 'hana-k8s');
      assert.equal(start.resource?.kind, 'kube_cluster');
      const end = await until(`session.end of ${pod}`, async () => (await events('session.end')).find((e) => e.fields.session_id === sessionId));
      assert.equal(end.fields.recording_id, sessionId);
      assert.match(String(end.fields.recording_stopped), stoppedBy);
      const stopped = await until(`session.recording_stopped of ${pod}`, async () => (await events('session.recording_stopped')).find((e) => e.fields.session_id === sessionId));
      assert.match(stopped.reason ?? '', stoppedBy);
      await agent.kube!.uploadRecordings();
      const stored = await deps.recordings.get(sessionId);
      assert.equal(stored.kind, 'kube');
      assert.equal(stored.node, 'dev');
      assert.equal(stored.login, 'hana-k8s');
      assert.equal(stored.pod, `default/${pod}`);
      const cast = (await deps.recordings.read(sessionId, 0, stored.size)).toString('utf8').trim().split('\n').map((l) => JSON.parse(l) as unknown);
      const printed = cast.slice(1).filter((e) => (e as string[])[1] === 'o').map((e) => (e as string[])[2]).join('');
      assert.equal(printed, output);
      if (pod === 'web-ws') assert.ok(cast.some((e) => (e as string[])[1] === 'r' && (e as string[])[2] === '100x30'), JSON.stringify(cast));
    }

    // A role with record_session: false: the session is audited, not recorded.
    const unrecorded = await upgrade(await t.proxy.registry.dial(hostId, 'kube_cluster:dev', encodeRoutedIdentity({ ...identity, roles: ['k-unrecorded'] })), 'GET /api/v1/namespaces/default/pods/web-norec/exec?command=echo&command=hi&stdout=true HTTP/1.1\r\nHost: kube.postern\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n');
    await until('the exec output', async () => (/exec in web-norec as hana-k8s: echo hi/.test(unrecorded.after().toString('latin1')) ? true : undefined));
    unrecorded.stream.end();
    await unrecorded.closed;
    const start = await sessionOf('web-norec', /^websocket\+v5\.channel\.k8s\.io$/);
    assert.equal(start.fields.recorded, false);
    assert.match(String(start.fields.unrecorded_reason), /record_session: false/);
    const end = await until('session.end of web-norec', async () => (await events('session.end')).find((e) => e.fields.session_id === start.fields.session_id));
    assert.equal(end.fields.recording_id, undefined);
    assert.equal(end.fields.exit_code, 0);
    await agent.kube!.uploadRecordings();
    await assert.rejects(deps.recordings.get(String(start.fields.session_id)), /not found|no recording/i);
  } finally {
    await agent.stop();
    await t.stop();
    await kube.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Writes `sent` on the upgraded stream and checks that `first` then exactly `sent` come back; then closes. */
async function sendAndCompare(up: Awaited<ReturnType<typeof upgrade>>, parts: Buffer[], first: Buffer): Promise<void> {
  let expected = first;
  for (const part of parts) {
    // Each part whole before the next, so the side that sees garbage first is known; in
    // pieces, so frames and garbage cross chunk boundaries on the way.
    expected = Buffer.concat([expected, part]);
    for (let at = 0; at < part.length; at += 700) up.stream.write(part.subarray(at, at + 700));
    await until('the echo', async () => (up.after().length >= expected.length ? true : undefined));
  }
  assert.ok(up.after().equals(expected), `the bytes came back changed: ${up.after().length} bytes, ${expected.length} expected`);
  up.stream.end();
  await up.closed;
}

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
