/**
 * HTTP and TCP apps through Postern with real programs: a cluster process (auth +
 * proxy with app_domain proxy.localhost), an agent process serving three apps (an
 * HTTP app labelled env=dev, another labelled env=prod, a TCP echo app), a user whose
 * role allows env=dev apps, psh for login, and curl for requests. The HTTP upstream
 * verifies the JWT assertion against the proxy's JWKS. Refusals: an app the role does
 * not allow, a certificate for one app used for another, a Host header naming another
 * app than SNI, no credentials, a client-sent assertion (replaced). HTTP/2 clients (curl
 * --http2, h2load, Chromium) on the proxy's HTTP/2 fast path and, for refusals and
 * redirects, its full server.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
import { MessageReader } from '../protocols/http1/index.ts';

const chromiumMissing = existsSync('/usr/bin/chromium') ? undefined : 'chromium missing: install Debian package chromium';
const curlMissing = spawnSync('curl', ['--version']).status === 0 ? undefined : 'curl missing: install Debian package curl';
const h2loadMissing = spawnSync('h2load', ['--version']).status === 0 ? undefined : 'h2load missing: install Debian package nghttp2-client';
const domain = 'proxy.localhost';

/** The payload of a chunked body (the reader hands bodies on with their framing). */
function _dechunk(framed: string): string {
  let out = '';
  for (let at = 0; ;) {
    const eol = framed.indexOf('\r\n', at);
    const size = Number.parseInt(framed.slice(at, eol), 16);
    if (!(size > 0)) return out;
    out += framed.slice(eol + 2, eol + 2 + size);
    at = eol + 2 + size + 2;
  }
}

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
  /** curl --http2: the same as curl(), and the HTTP version of the answer. */
  const curl2 = async (app: string, pathname: string, args: string[] = []) => {
    const run = await runCurl(['-sS', '--http2', '--max-time', '20', '--cacert', caFile, '--connect-to', `${app}.${domain}:${port}:127.0.0.1:${port}`, '-w', '\n%{http_version} %{http_code}', ...args, `https://${app}.${domain}:${port}${pathname}`]);
    const cut = run.stdout.lastIndexOf('\n');
    const [version, status] = run.stdout.slice(cut + 1).split(' ');
    return { version, status: Number(status), body: run.stdout.slice(0, cut), stderr: run.stderr };
  };
  /** Requests the proxy's full path has forwarded so far (it logs each one; the fast paths do not). */
  const fullPathRequests = () => (cluster!.daemon.logs().match(/"msg":"app request"/g) ?? []).length;
  /** Logs in to `app` with the form and returns the session cookie (name=value). */
  const sessionCookie = async (app: string) => {
    const login = await curl(app, '/.postern/login', ['-D', '-', '--data-urlencode', 'user=alice', '--data-urlencode', 'password=a long and happy password', '--data-urlencode', 'redirect=/']);
    const id = /set-cookie: __Host-postern_app=([A-Za-z0-9_-]{43})/i.exec(login.body)?.[1];
    assert.ok(id, login.body);
    return `__Host-postern_app=${id}`;
  };
  const certArgs = (app: string) => {
    const dir = path.join(home, 'profiles', `127.0.0.1_${port}`);
    return ['--cert', path.join(dir, `app-${app}.crt`), '--key', path.join(dir, `app-${app}.key`)];
  };

  /** One HTTP/1.1 connection to APP: send() writes raw bytes, answers(n) waits for n whole answers. */
  const http1 = (app: string) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: `${app}.${domain}`, ca: readFileSync(caFile), ALPNProtocols: ['http/1.1'] });
    const reader = new MessageReader({ kind: 'response', maxHeadBytes: 64 * 1024 });
    const got: Array<{ status: number; body: string }> = [];
    let current: { status: number; body: string; chunked: boolean } | undefined;
    let wake = (): void => {};
    socket.on('data', (chunk: Buffer) => {
      reader.push(chunk);
      for (let event = reader.read(); event; event = reader.read()) {
        if (event.type === 'head') current = { status: event.head.status, body: '', chunked: event.head.framing.kind === 'chunked' };
        else if (event.type === 'body') current!.body += event.data.toString('latin1');
        else got.push({ status: current!.status, body: current!.chunked ? _dechunk(current!.body) : current!.body });
      }
      wake();
    });
    let closed = false;
    socket.on('close', () => { closed = true; wake(); });
    return {
      send: (text: string) => socket.write(text),
      answers: async (n: number) => {
        const deadline = Date.now() + 10_000;
        while (got.length < n && !closed && Date.now() < deadline) await new Promise<void>((resolve) => { wake = resolve; setTimeout(resolve, 100); });
        assert.ok(got.length >= n, `expected ${n} answers, got ${JSON.stringify(got)} (closed: ${closed})`);
        return got.splice(0, n);
      },
      close: () => socket.destroy(),
    };
  };

  before(async () => {
    home = mkdtempSync(path.join(tmpdir(), 'postern-apps-home-'));
    // Debug logs: the full path logs each request it forwards ('app request'), which tells the paths apart.
    cluster = await startClusterProcess('apps', { proxyYaml: `  app_domain: ${domain}\nlog:\n  level: debug\n` });
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
    // The same over HTTP/1.1 (the proxy's fast path): curl sends Expect: 100-continue, the app's 100 comes back through.
    const upload1 = await curl('web', '/upload', [...certArgs('web'), '--http1.1', '--data-binary', `@${file}`, '-H', 'content-type: application/octet-stream']);
    assert.equal(upload1.status, 200, upload1.stderr);
    assert.deepEqual(JSON.parse(upload1.body), { bytes: payload.length, sha256: createHash('sha256').update(payload).digest('hex') });
    const started1 = Date.now();
    const stream1 = await curl('web', '/stream', [...certArgs('web'), '-N', '--http1.1']);
    assert.equal(stream1.status, 200, stream1.stderr);
    assert.match(stream1.body, /tick 1[\s\S]*tick 3/);
    assert.ok(Date.now() - started1 >= 500);
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

  test('browser sessions: login form, cookie (Secure, HttpOnly, SameSite=Lax) kept from the app, forged and cross-app cookies refused, logout revokes', async () => {
    const first = await curl('web', '/page', ['-H', 'Accept: text/html', '-D', '-']);
    assert.equal(first.status, 302, first.body);
    assert.match(first.body, /location: \/\.postern\/login\?redirect=%2Fpage/i);
    const form = await curl('web', '/.postern/login');
    assert.match(form.body, /<form method="post" action="\/\.postern\/login">/);
    const bad = await curl('web', '/.postern/login', ['--data-urlencode', 'user=alice', '--data-urlencode', 'password=wrong password here', '--data-urlencode', 'redirect=/page']);
    assert.equal(bad.status, 401);
    assert.doesNotMatch(bad.body, /set-cookie/i);
    const login = await curl('web', '/.postern/login', ['-D', '-', '--data-urlencode', 'user=alice', '--data-urlencode', 'password=a long and happy password', '--data-urlencode', 'redirect=//evil.example/']);
    assert.equal(login.status, 303, login.body);
    assert.match(login.body, /location: \/\r?\n/i, 'an off-host redirect becomes /');
    const setCookie = /set-cookie: (__Host-postern_app=([A-Za-z0-9_-]{43});[^\r\n]*)/i.exec(login.body);
    assert.ok(setCookie, login.body);
    for (const attribute of ['Secure', 'HttpOnly', 'SameSite=Lax', 'Path=/']) assert.match(setCookie[1]!, new RegExp(`; ${attribute}(;|$)`));
    const cookie = `__Host-postern_app=${setCookie[2]}`;
    const seen = await curl('web', '/via-cookie', ['-H', `Cookie: theme=dark; ${cookie}`]);
    assert.equal(seen.status, 200, seen.body);
    const body = JSON.parse(seen.body) as { user: string; headers: Record<string, string> };
    assert.equal(body.user, 'alice');
    assert.equal(body.headers.cookie, 'theme=dark', 'the session cookie must not reach the app');
    const forged = await curl('web', '/', ['-H', `Cookie: __Host-postern_app=${'A'.repeat(43)}`]);
    assert.equal(forged.status, 401);
    const crossApp = await curl('secret', '/', ['-H', `Cookie: ${cookie}`]);
    assert.equal(crossApp.status, 401, 'a session for web must not open secret');
    const logout = await curl('web', '/.postern/logout', ['-X', 'POST', '-H', `Cookie: ${cookie}`, '-D', '-']);
    assert.equal(logout.status, 303);
    assert.match(logout.body, /Max-Age=0/);
    const after = await curl('web', '/', ['-H', `Cookie: ${cookie}`]);
    assert.equal(after.status, 401, 'a logged-out session must not work');
  });

  test('HTTP/1.1 keep-alive connections: every request is checked on its own, pipelined answers keep their order, a refusal mid-connection answers after the earlier ones', async () => {
    const login = await curl('web', '/.postern/login', ['-D', '-', '--data-urlencode', 'user=alice', '--data-urlencode', 'password=a long and happy password', '--data-urlencode', 'redirect=/']);
    const id = /set-cookie: __Host-postern_app=([A-Za-z0-9_-]{43})/i.exec(login.body)?.[1];
    assert.ok(id, login.body);
    const host = `Host: web.${domain}:${port}`;
    const cookie = `Cookie: theme=dark; __Host-postern_app=${id}`;
    const first = http1('web');
    try {
      first.send(`GET /one HTTP/1.1\r\n${host}\r\n${cookie}\r\nX-Forwarded-For: 6.6.6.6\r\nPostern-Jwt-Assertion: forged\r\n\r\n`);
      const [one] = await first.answers(1);
      assert.equal(one!.status, 200, one!.body);
      const seen = JSON.parse(one!.body) as { user: string; jwtError: string | null; headers: Record<string, string> };
      assert.equal(seen.user, 'alice');
      assert.equal(seen.jwtError, null);
      assert.equal(seen.headers.cookie, 'theme=dark', 'the session cookie must not reach the app');
      assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1', 'a client-sent X-Forwarded-For is replaced');
      // Pipelined in one write: a chunked upload, a forged cookie, then the good cookie again.
      first.send([
        `POST /upload HTTP/1.1\r\n${host}\r\n${cookie}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
        `GET /forged HTTP/1.1\r\n${host}\r\nCookie: __Host-postern_app=${'A'.repeat(43)}\r\n\r\n`,
        `GET /three HTTP/1.1\r\n${host}\r\n${cookie}\r\n\r\n`,
      ].join(''));
      const [upload, forged, three] = await first.answers(3);
      assert.deepEqual([upload!.status, forged!.status, three!.status], [200, 401, 200], JSON.stringify([upload, forged, three]));
      assert.deepEqual(JSON.parse(upload!.body), { bytes: 5, sha256: createHash('sha256').update('hello').digest('hex') });
      assert.match(forged!.body, /log in to reach app "web"/);
      assert.equal((JSON.parse(three!.body) as { path: string }).path, '/three');
    } finally {
      first.close();
    }
    // A cookie for web on a connection to web naming another app in Host: refused, never forwarded.
    const trick = http1('web');
    try {
      trick.send(`GET / HTTP/1.1\r\nHost: secret.${domain}:${port}\r\n${cookie}\r\n\r\n`);
      const [refused] = await trick.answers(1);
      assert.equal(refused!.status, 421, refused!.body);
    } finally {
      trick.close();
    }
    // Logged out while a connection that used the session stays open: its next request is refused.
    const second = http1('web');
    try {
      second.send(`GET /before HTTP/1.1\r\n${host}\r\n${cookie}\r\n\r\n`);
      assert.equal((await second.answers(1))[0]!.status, 200);
      const logout = await curl('web', '/.postern/logout', ['-X', 'POST', '-H', cookie]);
      assert.equal(logout.status, 303);
      second.send(`GET /after HTTP/1.1\r\n${host}\r\n${cookie}\r\n\r\n`);
      assert.equal((await second.answers(1))[0]!.status, 401);
    } finally {
      second.close();
    }
    assert.ok(!web!.seen.some((r) => r.path === '/forged' || r.path === '/after'), 'refused requests never reach the app');
  });

  test('HTTP/2 clients take the fast path: GET, HEAD, POST with and without a length, chunked and streaming answers, a 20 MB upload, several cookies set', async () => {
    assert.equal((await psh(['apps', 'login', 'web'])).code, 0);
    const cookie = await sessionCookie('web');
    const before = fullPathRequests();
    const seenBefore = web!.seen.length;
    const viaCert = await curl2('web', '/h2?via=cert', certArgs('web'));
    assert.deepEqual([viaCert.version, viaCert.status], ['2', 200], viaCert.stderr + viaCert.body);
    const certSeen = JSON.parse(viaCert.body) as { path: string; user: string; jwtError: string | null; headers: Record<string, string> };
    assert.deepEqual([certSeen.path, certSeen.user, certSeen.jwtError], ['/h2?via=cert', 'alice', null]);
    assert.equal(certSeen.headers['x-env'], 'dev');
    assert.equal(certSeen.headers['x-forwarded-host'], `web.${domain}:${port}`);
    // HTTP/2 may send cookies as separate fields: they reach the app as one header, without Postern's.
    const viaCookie = await curl2('web', '/h2?via=cookie', ['-H', 'Cookie: theme=dark', '-H', `Cookie: ${cookie}; lang=en`, '-H', 'Postern-Jwt-Assertion: forged']);
    assert.deepEqual([viaCookie.version, viaCookie.status], ['2', 200], viaCookie.body);
    const cookieSeen = JSON.parse(viaCookie.body) as { user: string; jwtError: string | null; headers: Record<string, string> };
    assert.deepEqual([cookieSeen.user, cookieSeen.jwtError], ['alice', null]);
    assert.equal(cookieSeen.headers.cookie, 'theme=dark; lang=en', 'the session cookie must not reach the app');
    assert.notEqual(cookieSeen.headers['postern-jwt-assertion'], 'forged');
    const head = await curl2('web', '/h2-head', ['-I', '-H', `Cookie: ${cookie}`]);
    assert.deepEqual([head.version, head.status], ['2', 200], head.body);
    assert.match(head.body, /^content-type: application\/json\r\n[\s\S]*\r\n\r\n$/m, 'the head, no body');
    assert.equal(web!.seen.at(-1)!.method, 'HEAD');
    // A body with a length goes as is; one of unknown length goes chunked to the app (curl
    // reads all of --data-binary @- before sending, with a length; -T - streams stdin without).
    const sized = await curl2('web', '/upload', ['-H', `Cookie: ${cookie}`, '--data-binary', 'hello h2']);
    assert.deepEqual([sized.version, sized.status], ['2', 200], sized.body);
    assert.deepEqual(JSON.parse(sized.body), { bytes: 8, sha256: createHash('sha256').update('hello h2').digest('hex') });
    assert.equal(web!.seen.at(-1)!.headers['content-length'], '8');
    const piped = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn('curl', ['-sS', '--http2', '--cacert', caFile, '--connect-to', `web.${domain}:${port}:127.0.0.1:${port}`, '-H', `Cookie: ${cookie}`, '-X', 'POST', '-T', '-', `https://web.${domain}:${port}/upload`]);
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.on('close', (code) => resolve({ code, out }));
      child.stdin.write('streamed ');
      setTimeout(() => child.stdin.end('from stdin'), 100);
    });
    assert.equal(piped.code, 0, piped.out);
    assert.deepEqual(JSON.parse(piped.out), { bytes: 19, sha256: createHash('sha256').update('streamed from stdin').digest('hex') });
    assert.equal(web!.seen.at(-1)!.headers['content-length'], undefined, 'curl sends no length for stdin');
    assert.equal(web!.seen.at(-1)!.headers['transfer-encoding'], 'chunked');
    // A chunked answer is decoded (HTTP/2 frames it); several set-cookie fields stay several.
    const chunked = await curl2('web', '/chunked', ['-H', `Cookie: ${cookie}`, '-D', '-']);
    assert.deepEqual([chunked.version, chunked.status], ['2', 200], chunked.body);
    assert.match(chunked.body, /\r\n\r\nfirst chunk, then the last one$/);
    assert.doesNotMatch(chunked.body, /transfer-encoding/i);
    const cookies = await curl2('web', '/cookies', ['-H', `Cookie: ${cookie}`, '-D', '-']);
    assert.deepEqual((cookies.body.match(/^set-cookie: .*$/gim) ?? []).map((line) => line.trim()), ['set-cookie: one=1; Path=/', 'set-cookie: two=2; Path=/; HttpOnly']);
    // Server-sent events reach the client as they are written, before the answer ends.
    const events = await new Promise<{ firstAt: number; endAt: number; out: string }>((resolve) => {
      const started = Date.now();
      let firstAt = 0;
      let out = '';
      const child = spawn('curl', ['-sS', '-N', '--http2', '--cacert', caFile, '--connect-to', `web.${domain}:${port}:127.0.0.1:${port}`, '-H', `Cookie: ${cookie}`, `https://web.${domain}:${port}/stream`]);
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        if (!firstAt && out.includes('tick 1')) firstAt = Date.now() - started;
      });
      child.on('close', () => resolve({ firstAt, endAt: Date.now() - started, out }));
    });
    assert.match(events.out, /tick 1[\s\S]*tick 3/);
    assert.ok(events.firstAt > 0 && events.endAt - events.firstAt >= 300, `the first event came at ${events.firstAt} ms, the end at ${events.endAt} ms`);
    const payload = randomBytes(20 * 1024 * 1024);
    const file = path.join(home, 'upload-h2.bin');
    writeFileSync(file, payload);
    const upload = await curl2('web', '/upload', [...certArgs('web'), '--data-binary', `@${file}`, '-H', 'content-type: application/octet-stream']);
    assert.deepEqual([upload.version, upload.status], ['2', 200], upload.stderr);
    assert.deepEqual(JSON.parse(upload.body), { bytes: payload.length, sha256: createHash('sha256').update(payload).digest('hex') });
    // A request the full path serves (HTTP/1.1 with Connection: close is always its) shows
    // up in the count once its log line is through; the lines of the requests before it are too.
    const control = await curl('web', '/control', [...certArgs('web'), '--http1.1', '-H', 'Connection: close']);
    assert.equal(control.status, 200, control.body);
    for (let i = 0; i < 100 && fullPathRequests() === before; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(fullPathRequests(), before + 1, 'the HTTP/2 requests never went through the full path');
    for (const seen of web!.seen.slice(seenBefore)) {
      assert.doesNotMatch(String(seen.headers.cookie ?? ''), /postern/, `the session cookie reached the app at ${seen.path}`);
      assert.equal(seen.jwtError, undefined, `${seen.path}: ${seen.jwtError}`);
    }
  });

  test('HTTP/2 refusals, redirects and login pages are answered by the full path', async () => {
    const wrongCert = await curl2('secret', '/', certArgs('web'));
    assert.deepEqual([wrongCert.version, wrongCert.status], ['2', 403], wrongCert.body);
    assert.match(wrongCert.body, /this certificate is for app "web", not "secret"/);
    const hostTrick = await curl2('web', '/', [...certArgs('web'), '-H', `Host: secret.${domain}:${port}`]);
    assert.deepEqual([hostTrick.version, hostTrick.status], ['2', 421], hostTrick.body);
    assert.match(hostTrick.body, /does not match the TLS server name/);
    const browser = await curl2('web', '/page', ['-H', 'Accept: text/html', '-D', '-']);
    assert.deepEqual([browser.version, browser.status], ['2', 302], browser.body);
    assert.match(browser.body, /location: \/\.postern\/login\?redirect=%2Fpage/i);
    const anonymous = await curl2('web', '/');
    assert.equal(anonymous.status, 401, anonymous.body);
    const form = await curl2('web', '/.postern/login');
    assert.deepEqual([form.version, form.status], ['2', 200]);
    assert.match(form.body, /<form method="post" action="\/\.postern\/login">/);
    assert.equal(secret!.seen.length, 0, 'the secret app must never be reached');
  });

  test('h2load with the session cookie: every request answered 2xx over HTTP/2', { skip: h2loadMissing }, async () => {
    const cookie = await sessionCookie('web');
    const out = await new Promise<string>((resolve, reject) => execFile('h2load', ['-n', '400', '-c', '4', '-m', '8', '--connect-to', `127.0.0.1:${port}`, '-H', `cookie: ${cookie}`, `https://web.${domain}:${port}/load`], { encoding: 'utf8', timeout: 60_000 }, (error, stdout) => (error ? reject(error) : resolve(stdout))));
    assert.match(out, /Application protocol: h2/, out);
    assert.match(out, /requests: 400 total, 400 started, 400 done, 400 succeeded, 0 failed, 0 errored/, out);
    assert.match(out, /status codes: 400 2xx, 0 3xx, 0 4xx, 0 5xx/, out);
  });

  test('headless Chromium is sent to the login form, logs in and sees the app as its user', { skip: chromiumMissing }, async () => {
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-default-apps', '--disable-features=Translate,OptimizationHints,MediaRouter', `--host-resolver-rules=MAP *.${domain} 127.0.0.1`],
    });
    try {
      // The proxy's certificate comes from the cluster's own CA, which this throwaway browser profile does not trust.
      const context = await browser.newContext({ ignoreHTTPSErrors: true });
      const page = await context.newPage();
      await page.goto(`https://web.${domain}:${port}/dashboard`);
      assert.match(page.url(), /\/\.postern\/login\?redirect=%2Fdashboard$/);
      await page.fill('#user', 'alice');
      await page.fill('#password', 'a long and happy password');
      await Promise.all([page.waitForURL(`https://web.${domain}:${port}/dashboard`), page.click('#login')]);
      assert.equal(await page.textContent('#app'), 'web');
      assert.equal(await page.textContent('#who'), 'alice');
      const cookies = await context.cookies();
      const session = cookies.find((c) => c.name === '__Host-postern_app');
      assert.ok(session, JSON.stringify(cookies));
      assert.equal(session.httpOnly, true);
      assert.equal(session.secure, true);
      assert.equal(session.sameSite, 'Lax');
      assert.equal(await page.evaluate('document.cookie.includes("postern_app")'), false, 'scripts must not read the session cookie');
    } finally {
      await browser.close();
    }
  });

  test('refusals: an app the role does not allow, a certificate for another app, a Host trick, a path with dot segments, no credentials', async () => {
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
    // A path that climbs out of where the app is (raw or encoded dot segments) is refused at the agent.
    for (const climb of ['/../secret', '/%2e%2e/secret', '/a/%2E%2e%2fsecret', '/a\\..\\secret']) {
      const traversal = await curl('web', climb, [...certArgs('web'), '--path-as-is']);
      assert.equal(traversal.status, 400, `${climb}: ${traversal.body}`);
      assert.match(traversal.body, /has a dot segment/);
    }
    assert.ok(!web!.seen.some((r) => /\.\.|%2e|\\/i.test(r.path)), `the app saw a dot segment: ${JSON.stringify(web!.seen.map((r) => r.path))}`);
    const anonymous = await curl('web', '/');
    assert.equal(anonymous.status, 401, anonymous.body);
    assert.match(anonymous.body, /log in to reach app "web"/);
  });
});
