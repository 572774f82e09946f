/**
 * HTTP and TCP apps through Postern with real programs: a cluster process (auth +
 * proxy with app_domain proxy.localhost), an agent process serving three apps (an
 * HTTP app labelled env=dev, another labelled env=prod, a TCP echo app), a user whose
 * role allows env=dev apps, psh for login, and curl for requests. The HTTP upstream
 * verifies the JWT assertion against the proxy's JWKS. Refusals: an app the role does
 * not allow, a certificate for one app used for another, a Host header naming another
 * app than SNI, no credentials, a client-sent assertion (replaced).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { startDaemon, stopAll, type DaemonProcess } from './fixtures/processes.ts';
import { pshIn, signUpAndLogIn, startClusterProcess, type ClusterProcess } from './fixtures/cluster-process.ts';
import { cliPath } from './fixtures/auth.ts';
import { startHttpApp, startTcpEcho, type HttpApp } from './fixtures/app-upstream.ts';
import type { PublicJwk } from '../protocols/jwt/es256-jwt.ts';

const curlMissing = spawnSync('curl', ['--version']).status === 0 ? undefined : 'curl missing: install Debian package curl';
const domain = 'proxy.localhost';

describe('apps through Postern', { skip: curlMissing }, () => {
  let cluster: ClusterProcess | undefined;
  let agent: DaemonProcess | undefined;
  let web: HttpApp | undefined;
  let secret: HttpApp | undefined;
  let echo: { port: number; close(): Promise<void> } | undefined;
  let home = '';
  let caFile = '';
  let port = 0;
  const psh = (args: string[], input?: string) => pshIn(home)(args, input);
  const jwks = async (): Promise<{ keys: PublicJwk[] }> => new Promise((resolve, reject) => {
    https.get({ host: '127.0.0.1', port, path: '/.well-known/jwks.json', ca: readFileSync(caFile, 'utf8') }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(JSON.parse(body) as { keys: PublicJwk[] }));
    }).on('error', reject);
  });
  /** Runs curl without blocking this process (the upstreams live here). */
  const runCurl = (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => new Promise((resolve) => {
    execFile('curl', args, { encoding: 'utf8', timeout: 30_000, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }));
  });
  /** curl to APP.proxy.localhost on the proxy's port, with extra args. */
  const curl = async (app: string, pathname: string, args: string[] = []) => {
    const run = await runCurl(['-sS', '--max-time', '20', '--cacert', caFile, '--connect-to', `${app}.${domain}:${port}:127.0.0.1:${port}`, '-w', '\n%{http_code}', ...args, `https://${app}.${domain}:${port}${pathname}`]);
    const cut = run.stdout.lastIndexOf('\n');
    return { status: Number(run.stdout.slice(cut + 1)), body: run.stdout.slice(0, cut), stderr: run.stderr };
  };
  const certArgs = (app: string) => {
    const dir = path.join(home, 'profiles', `127.0.0.1_${port}`);
    return ['--cert', path.join(dir, `app-${app}.crt`), '--key', path.join(dir, `app-${app}.key`)];
  };

  before(async () => {
    home = mkdtempSync(path.join(tmpdir(), 'postern-apps-home-'));
    cluster = await startClusterProcess('apps', { proxyYaml: `  app_domain: ${domain}\n` });
    port = Number(cluster.proxy.split(':')[1]);
    caFile = path.join(home, 'profiles', `127.0.0.1_${port}`, 'cluster-ca.pem');
    web = await startHttpApp('web', jwks);
    secret = await startHttpApp('secret', jwks);
    echo = await startTcpEcho();
    const token = (JSON.parse((await cluster.pctl(['tokens', 'add', '--type=node', '--format', 'json'])).stdout) as { token: string }).token;
    agent = await startDaemon('agent', (dir, diag) => [
      `data_dir: ${dir}`, `diag_addr: ${diag}`, 'agent:', '  node_name: apps-1', `  proxy_addr: ${cluster!.proxy}`, `  token: ${token}`, `  ca_pin: ${cluster!.pin}`,
      '  ssh: { enabled: false }',
      '  apps:',
      `    - { name: web, uri: "http://127.0.0.1:${web!.port}", labels: { env: dev }, rewrite: { headers: { X-Env: dev } } }`,
      `    - { name: secret, uri: "http://127.0.0.1:${secret!.port}", labels: { env: prod } }`,
      `    - { name: echo, uri: "tcp://127.0.0.1:${echo!.port}", labels: { env: dev } }`,
      '',
    ].join('\n'));
    await agent.waitReady();
    const role = path.join(home, 'role.yaml');
    writeFileSync(role, 'kind: role\nversion: v1\nmetadata: { name: dev-apps }\nspec:\n  allow:\n    app_labels: { env: dev }\n    resources: [{ kinds: [app], verbs: [list, read] }]\n');
    const created = await cluster.pctl(['create', '-f', role]);
    assert.equal(created.code, 0, created.stderr);
    await signUpAndLogIn(cluster, home, { name: 'alice', roles: 'dev-apps', logins: 'alice', password: 'a long and happy password' });
  });
  after(async () => {
    await stopAll([agent, cluster?.daemon]);
    await Promise.all([web?.close(), secret?.close(), echo?.close()]);
    rmSync(home, { recursive: true, force: true });
  });

  test('psh apps ls lists the apps the role allows, and not the others', async () => {
    let names: string[] = [];
    for (let i = 0; i < 100 && names.length < 2; i++) {
      const ls = await psh(['apps', 'ls', '--format', 'json']);
      assert.equal(ls.code, 0, ls.stderr);
      names = (JSON.parse(ls.stdout) as Array<{ name: string }>).map((a) => a.name).sort();
      if (names.length < 2) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.deepEqual(names, ['echo', 'web']);
  });

  test('curl with the app certificate reaches the app; the upstream verifies the JWT against the JWKS; a client-sent assertion is replaced', async () => {
    const login = await psh(['apps', 'login', 'web']);
    assert.equal(login.code, 0, login.stderr);
    const config = await psh(['apps', 'config', 'web', '--format', 'json']);
    assert.equal(config.code, 0, config.stderr);
    const flags = JSON.parse(config.stdout) as { url: string; cert: string; key: string; cacert: string; connect_to: string };
    const run = await runCurl(['-sS', '--cert', flags.cert, '--key', flags.key, '--cacert', flags.cacert, '--connect-to', flags.connect_to, '-H', 'Postern-Jwt-Assertion: forged.by.client', `${flags.url}hello?x=1`]);
    assert.equal(run.code, 0, run.stderr);
    const seen = JSON.parse(run.stdout) as { app: string; path: string; user: string | null; jwtError: string | null; headers: Record<string, string> };
    assert.equal(seen.app, 'web');
    assert.equal(seen.path, '/hello?x=1');
    assert.equal(seen.jwtError, null);
    assert.equal(seen.user, 'alice');
    assert.equal(seen.headers['x-env'], 'dev');
    assert.notEqual(seen.headers['postern-jwt-assertion'], 'forged.by.client');
    const claims = web!.seen.at(-1)!.claims!;
    assert.deepEqual(claims.roles, ['dev-apps']);
    assert.ok((claims.exp as number) > Date.now() / 1000);
  });

  test('streaming answers arrive as they are written, a 20 MB upload arrives whole, and a websocket upgrade passes through', async () => {
    const started = Date.now();
    const stream = await curl('web', '/stream', [...certArgs('web'), '-N']);
    assert.equal(stream.status, 200, stream.stderr);
    assert.match(stream.body, /tick 1[\s\S]*tick 3/);
    assert.ok(Date.now() - started >= 500);
    const payload = randomBytes(20 * 1024 * 1024);
    const file = path.join(home, 'upload.bin');
    writeFileSync(file, payload);
    const upload = await curl('web', '/upload', [...certArgs('web'), '--data-binary', `@${file}`, '-H', 'content-type: application/octet-stream']);
    assert.equal(upload.status, 200, upload.stderr);
    assert.deepEqual(JSON.parse(upload.body), { bytes: payload.length, sha256: createHash('sha256').update(payload).digest('hex') });
    const dir = path.join(home, 'profiles', `127.0.0.1_${port}`);
    const socket = tls.connect({ host: '127.0.0.1', port, servername: `web.${domain}`, ca: readFileSync(caFile), cert: readFileSync(path.join(dir, 'app-web.crt')), key: readFileSync(path.join(dir, 'app-web.key')), ALPNProtocols: ['http/1.1'] });
    socket.write(`GET /ws HTTP/1.1\r\nHost: web.${domain}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    let got = '';
    await new Promise<void>((resolve, reject) => {
      socket.on('data', (chunk: Buffer) => {
        const before = got;
        got += chunk.toString('latin1');
        if (!before.includes('\r\n\r\n') && got.includes('\r\n\r\n')) socket.write('ping-through-the-tunnel');
        if (got.endsWith('ping-through-the-tunnel')) resolve();
      });
      socket.on('error', reject);
      setTimeout(() => reject(new Error(`no echo; got ${JSON.stringify(got)}`)), 10_000).unref();
    });
    socket.destroy();
    assert.match(got, /^HTTP\/1\.1 101 /);
    assert.match(got, /Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/);
    assert.match(got, /X-Seen-User: alice/);
  });

  test('a TCP app through psh proxy app echoes bytes', async () => {
    assert.equal((await psh(['apps', 'login', 'echo'])).code, 0);
    const child = spawn(process.execPath, [cliPath, 'psh', 'proxy', 'app', 'echo', '--port', '0'], { env: { ...process.env, POSTERN_HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const localPort = await new Promise<number>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (c: Buffer) => {
          out += c.toString();
          const match = /127\.0\.0\.1:(\d+)/.exec(out);
          if (match) resolve(Number(match[1]));
        });
        child.once('exit', (code) => reject(new Error(`psh proxy app exited ${code}`)));
      });
      const reply = await new Promise<string>((resolve, reject) => {
        const socket = net.connect(localPort, '127.0.0.1', () => socket.write('hello tcp app'));
        let got = '';
        socket.on('data', (c: Buffer) => {
          got += c.toString();
          if (got === 'hello tcp app') {
            socket.end();
            resolve(got);
          }
        });
        socket.on('error', reject);
        setTimeout(() => reject(new Error(`no echo; got ${JSON.stringify(got)}`)), 10_000).unref();
      });
      assert.equal(reply, 'hello tcp app');
    } finally {
      child.kill('SIGTERM');
    }
  });

  test('refusals: an app the role does not allow, a certificate for another app, a Host trick, no credentials', async () => {
    const denied = await psh(['apps', 'login', 'secret']);
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /no role allows app "secret"|no app is named "secret"/);
    const wrongCert = await curl('secret', '/', certArgs('web'));
    assert.equal(wrongCert.status, 403, wrongCert.body);
    assert.match(wrongCert.body, /this certificate is for app "web", not "secret"/);
    const hostTrick = await curl('web', '/', [...certArgs('web'), '-H', `Host: secret.${domain}:${port}`]);
    assert.equal(hostTrick.status, 421, hostTrick.body);
    assert.match(hostTrick.body, /does not match the TLS server name/);
    const absoluteTrick = await curl('web', '/', [...certArgs('web'), '--request-target', `https://secret.${domain}/`]);
    assert.notEqual(absoluteTrick.status, 200, absoluteTrick.body);
    assert.equal(secret!.seen.length, 0, 'the secret app must never be reached');
    const anonymous = await curl('web', '/');
    assert.equal(anonymous.status, 401, anonymous.body);
    assert.match(anonymous.body, /log in to reach app "web"/);
  });
});
