import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import { once } from 'node:events';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { connectAuth, type AuthClient } from '../api/auth-client.ts';
import { AuthServer } from '../auth/auth-server.ts';
import { FakeClock } from '../common/clock.ts';
import { silentLogger } from '../common/logger.ts';
import { startProxy } from './start-proxy.ts';
import { pinOf } from '../api/pinned-ca.ts';
import { verifyCertificateChain } from '../auth/pki/verify-certificate.ts';
import { clientKeys, startTestProxy, webRequest, type TestProxy } from './testdata/proxy-fixture.ts';

const run = promisify(execFile);
const password = 'correct horse battery staple';
let t: TestProxy;
let admin: AuthClient;
let dir: string;

before(async () => {
  t = await startTestProxy({ proxy: { rateLimits: { signup: { burst: 2, perSecond: 0.001 } } } });
  admin = t.auth.connectAs(['admin']).client;
  dir = mkdtempSync(path.join(tmpdir(), 'postern-web-'));
});
after(async () => {
  await t.stop();
  rmSync(dir, { recursive: true, force: true });
});

const post = (route: string, body: string | object, headers?: Record<string, string>) => webRequest(t.port, t.caPems, 'POST', route, body, headers);

async function _token(options: { singleUse?: boolean; ttlSeconds?: number; roles?: string[] } = {}): Promise<string> {
  const added = await admin.addToken({ roles: options.roles ?? ['node'], ttlSeconds: BigInt(options.ttlSeconds ?? 600), labels: { env: 'test' }, singleUse: options.singleUse ?? true });
  return added.token;
}

function _joinBody(token: string, keys = clientKeys()) {
  return { token, roles: ['node'], node_name: 'web-node', ssh_public_key: keys.sshLine, tls_public_key: keys.tlsPub, addresses: ['10.0.0.7'] };
}

function _assertError(answer: { status: number; body: any }, status: number, code: string, message?: RegExp): void {
  assert.equal(answer.status, status, JSON.stringify(answer.body));
  assert.equal(answer.body.error.code, code);
  assert.equal(typeof answer.body.error.message, 'string');
  if (message) assert.match(answer.body.error.message, message);
}

describe('web API: discovery', () => {
  it('answers without authentication with the cluster, this proxy and the host CA pin', async () => {
    const answer = await webRequest(t.port, t.caPems, 'GET', '/v1/discovery');
    assert.equal(answer.status, 200);
    assert.equal(answer.body.cluster_name, 'alpha');
    assert.match(answer.body.version, /^\d+\.\d+\.\d+/);
    assert.deepEqual(answer.body.proxies, [{ host_id: 'proxy-1', public_addr: `127.0.0.1:${t.port}` }]);
    assert.deepEqual(answer.body.ca_pins, [pinOf(new X509Certificate(t.caPems[0]!))]);
  });

  it('speaks HTTP/2 to clients that offer h2', async () => {
    const session = http2.connect(`https://127.0.0.1:${t.port}`, { ca: t.caPems });
    try {
      const stream = session.request({ ':path': '/v1/discovery' });
      let text = '';
      stream.on('data', (chunk: Buffer) => { text += chunk.toString(); });
      const [headers] = await new Promise<[http2.IncomingHttpHeaders]>((resolve) => stream.once('response', (h) => resolve([h])));
      await new Promise((resolve) => stream.once('end', resolve));
      assert.equal(headers[':status'], 200);
      assert.equal(JSON.parse(text).cluster_name, 'alpha');
    } finally {
      session.close();
    }
  });

  it('serves HTTP/1.1 on ALPN postern-join (agents joining) as on http/1.1', async () => {
    const socket = tls.connect({ host: '127.0.0.1', port: t.port, ca: t.caPems, ALPNProtocols: ['postern-join'] });
    await once(socket, 'secureConnect');
    assert.equal(socket.alpnProtocol, 'postern-join');
    socket.end('GET /v1/discovery HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n');
    let text = '';
    for await (const chunk of socket) text += String(chunk);
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n[\s\S]*"cluster_name":"alpha"/);
  });

  it('answers unknown paths with 404 and wrong methods with 405, as JSON errors', async () => {
    _assertError(await webRequest(t.port, t.caPems, 'GET', '/v1/nope'), 404, 'PST_NOT_FOUND', /^no such endpoint GET \/v1\/nope$/);
    _assertError(await webRequest(t.port, t.caPems, 'POST', '/v1/discovery', {}), 405, 'PST_METHOD_NOT_ALLOWED');
  });
});

describe('web API: join', () => {
  it('audits a relayed join under the client\'s address, not the proxy\'s', async () => {
    const socket = tls.connect({ host: '127.0.0.1', port: t.port, ca: t.caPems, ALPNProtocols: ['http/1.1'] });
    await once(socket, 'secureConnect');
    const clientPort = socket.localPort;
    const body = JSON.stringify({ ..._joinBody('e'.repeat(32)), node_name: 'addr-probe' });
    socket.write(`POST /v1/join HTTP/1.1\r\nhost: proxy\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
    let answer = '';
    for await (const chunk of socket) answer += String(chunk);
    assert.match(answer, /^HTTP\/1.1 401 /);
    const events = await admin.searchAudit({ types: ['token.consume.failed'], limit: 100 });
    const event = events.eventsJson.map((json) => JSON.parse(json)).find((e) => e.identity.host === 'addr-probe');
    assert.equal(event?.identity.addr, `127.0.0.1:${clientPort}`);
  });

  it('relays a join with a token (curl) and returns a host certificate from the cluster CA', async () => {
    const keys = clientKeys();
    const caFile = path.join(dir, 'ca.pem');
    writeFileSync(caFile, t.caPems.join(''));
    const { stdout } = await run('curl', ['-sS', '--cacert', caFile, '-H', 'content-type: application/json', '--data-binary', JSON.stringify(_joinBody(await _token(), keys)), '-w', '\n%{http_code}', `https://127.0.0.1:${t.port}/v1/join`]);
    const cut = stdout.lastIndexOf('\n');
    const [text, status] = [stdout.slice(0, cut), stdout.slice(cut + 1)];
    assert.equal(status, '200', stdout);
    const body = JSON.parse(text!);
    assert.deepEqual(body.token_labels, { env: 'test' });
    assert.match(body.certificates.ssh_certificate, /^ssh-ed25519-cert-v01@openssh\.com /);
    assert.deepEqual(body.certificates.tls_ca_pems, t.caPems);
    assert.ok(body.certificates.ssh_host_ca_keys.length > 0);
    assert.ok(Date.parse(body.certificates.expires) > Date.now());
    const identity = verifyCertificateChain(body.certificates.tls_certificate_pem, { trustedCaCerts: t.caPems, expectedKind: 'host', usage: 'client' });
    assert.deepEqual([identity.kind, identity.kind === 'host' && identity.hostId, identity.kind === 'host' && identity.systemRoles], ['host', body.host_id, ['node']]);
    assert.equal(new X509Certificate(body.certificates.tls_certificate_pem).publicKey.export({ type: 'spki', format: 'pem' }), keys.tlsPub);
  });

  it('refuses a used and an unknown token with the auth code and 401', async () => {
    const token = await _token({ singleUse: true });
    assert.equal((await post('/v1/join', _joinBody(token))).status, 200);
    _assertError(await post('/v1/join', _joinBody(token)), 401, 'PST_TOKEN_USED', /single-use and was already used/);
    _assertError(await post('/v1/join', _joinBody('f'.repeat(32))), 401, 'PST_TOKEN_INVALID', /not valid/);
  });

  it('refuses an expired token with the auth code and 401', async () => {
    // Tokens live at least a minute: this auth server runs on a clock the test moves.
    const clock = new FakeClock(new Date());
    const authDir = mkdtempSync(path.join(tmpdir(), 'postern-auth-clock-'));
    const auth = await AuthServer.start({ clusterName: 'clocked', dataDir: authDir, listenAddr: '127.0.0.1:0', logger: silentLogger(), clock, scrypt: { N: 1024, r: 8, p: 1, keylen: 32 } });
    const issue = () => auth.issueHostIdentity({ hostId: 'proxy-c', nodeName: 'proxy-c', systemRoles: ['proxy'], ttlMs: 3_600_000, ipAddresses: ['127.0.0.1'] });
    const proxy = await startProxy({ identity: issue(), renewIdentity: async () => issue(), authAddr: auth.address, listenAddr: '127.0.0.1:0', logger: silentLogger() });
    const clockedAdmin = connectAuth(auth.address, auth.issueHostIdentity({ hostId: 'admin', nodeName: 'admin', systemRoles: ['admin'], ttlMs: 3_600_000 }));
    try {
      const { token } = await clockedAdmin.client.addToken({ roles: ['node'], ttlSeconds: 60n, labels: {}, singleUse: true });
      clock.advance(61_000);
      const answer = await webRequest(Number(proxy.address.split(':').pop()), proxy.credentials.hostCaPems(), 'POST', '/v1/join', _joinBody(token));
      _assertError(answer, 401, 'PST_TOKEN_EXPIRED', /expired at .* UTC; ask an admin for a new one/);
    } finally {
      clockedAdmin.close();
      await proxy.close();
      await auth.close();
      rmSync(authDir, { recursive: true, force: true });
    }
  });

  it('refuses a role the token does not allow with 403', async () => {
    const body = { ..._joinBody(await _token({ roles: ['db'] })), roles: ['node'] };
    _assertError(await post('/v1/join', body), 403, 'PST_TOKEN_ROLE', /allows db, not node/);
  });

  it('answers bad JSON, a missing field, an unknown field and a wrong media type with 4xx before calling auth', async () => {
    _assertError(await post('/v1/join', '{"token": '), 400, 'PST_BAD_INPUT', /not valid JSON/);
    const { tls_public_key: _dropped, ...missing } = _joinBody('x');
    _assertError(await post('/v1/join', missing), 400, 'PST_BAD_INPUT', /join request: tls_public_key: /);
    _assertError(await post('/v1/join', { ..._joinBody('x'), tls_publickey: 'typo' }), 400, 'PST_BAD_INPUT', /tls_publickey/);
    _assertError(await post('/v1/join', _joinBody('x'), { 'content-type': 'text/plain' }), 415, 'PST_UNSUPPORTED_MEDIA_TYPE');
  });

  it('checks a trusted-cluster join before calling auth, and says when this cluster takes no leaves', async () => {
    const ca = t.auth.server.deps.authorities.publicAuthority('host');
    const body = { token: 'f'.repeat(64), leaf_cluster: 'leaf', host_ca_tls_pems: ca.tlsCertPems, host_ca_ssh_keys: ca.sshPublicKeys };
    const { token: _token, ...noToken } = body;
    _assertError(await post('/v1/trusted-clusters/validate', noToken), 400, 'PST_BAD_INPUT', /trusted cluster request: token: /);
    _assertError(await post('/v1/trusted-clusters/validate', { ...body, host_ca_tls_pems: [] }), 400, 'PST_BAD_INPUT', /host_ca_tls_pems/);
    // This test auth runs without the root extension (root/trust): the refusal says so.
    _assertError(await post('/v1/trusted-clusters/validate', body), 400, 'PST_BAD_INPUT', /does not accept trusted clusters/);
  });

  it('refuses a body over 64 KiB with 413', async () => {
    const answer = await post('/v1/join', { ..._joinBody('x'), node_name: 'n'.repeat(70 * 1024) });
    _assertError(answer, 413, 'PST_REQUEST_TOO_LARGE', /65536 bytes/);
  });
});

describe('web API: sign-up and login', () => {
  it('completes a sign-up, logs in with the password, and refuses a wrong one with 401', async () => {
    const { signupToken } = await admin.createUser({ name: 'alice', roles: ['access'], logins: ['alice'] });
    const signed = await post('/v1/signup', { token: signupToken, password });
    assert.deepEqual([signed.status, signed.body], [200, { username: 'alice' }]);
    _assertError(await post('/v1/signup', { token: signupToken, password }), 401, 'PST_RESET_TOKEN_INVALID');

    const keys = clientKeys();
    const login = await post('/v1/login', { user: 'alice', password, ssh_public_key: keys.sshLine, tls_public_key: keys.tlsPub, ttl_seconds: 3_600 });
    assert.equal(login.status, 200, JSON.stringify(login.body));
    assert.deepEqual([login.body.username, login.body.roles, login.body.logins], ['alice', ['access'], ['alice']]);
    const identity = verifyCertificateChain(login.body.tls_certificate_pem, { trustedCaCerts: (await admin.exportAuthorities({ kind: 'user' })).authorities.map((a) => a.tlsCertPem), expectedKind: 'user' });
    assert.equal(identity.kind === 'user' && identity.username, 'alice');
    assert.ok(Math.abs(Date.parse(login.body.expires) - Date.now() - 3_600_000) < 60_000);
    assert.deepEqual(login.body.tls_ca_pems, t.caPems);
    assert.match(login.body.ssh_certificate, /^ssh-ed25519-cert-v01@openssh\.com /);

    const wrong = await post('/v1/login', { user: 'alice', password: 'not the password', ssh_public_key: keys.sshLine, tls_public_key: keys.tlsPub });
    _assertError(wrong, 401, 'PST_LOGIN_FAILED', /unknown user, wrong password or wrong one-time code/);
    assert.doesNotMatch(JSON.stringify(wrong.body), /not the password/);
    const refused = t.logs().filter((l) => l.msg === 'web API request refused');
    assert.ok(refused.some((l) => l.path === '/v1/login' && l.code === 'PST_LOGIN_FAILED' && l.user === 'alice' && l.status === 401));
    assert.ok(refused.some((l) => l.path === '/v1/join' && l.code === 'PST_TOKEN_USED' && l.clientIp === '127.0.0.1'));
    const everything = JSON.stringify(t.logs());
    for (const secret of [password, 'not the password', signupToken, 'PRIVATE KEY']) assert.ok(!everything.includes(secret), `the log carries a secret: ${secret.slice(0, 8)}...`);
  });

  it('rate-limits per client address with 429 and retry-after', async () => {
    // The fixture allows sign-up bursts of 2 and refills one token in 1,000 s.
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await post('/v1/signup', { token: 'x'.repeat(20), password }));
    const limited = answers.at(-1)!;
    _assertError(limited, 429, 'PST_RATE_LIMITED', /too many sign-up requests/);
    assert.ok(Number(limited.headers['retry-after']) > 0);
  });
});
