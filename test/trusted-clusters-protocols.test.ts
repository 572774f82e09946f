/**
 * Databases, apps and Kubernetes across trusted clusters, with real clients: a root
 * user whose root role the leaf maps runs psql against a PostgreSQL server behind a
 * leaf agent, curl against an HTTP app in the leaf and kubectl (get; exec over
 * websocket and SPDY, recorded at the leaf) against a Kubernetes API server in the
 * leaf, all through the root proxy (root proxy -> leaf tunnel -> leaf
 * proxy -> the leaf agent, which maps the root roles). A root user the map leaves out
 * is refused at the leaf agent with "no roles mapped ..." and the leaf audits it; a
 * root role whose cluster_labels miss the leaf gets no certificate routed there.
 *
 * Browsers reach the leaf's app through the root proxy with only a login: the form at
 * `/.postern/login?cluster=leaf` on the app's host makes a session routed to the leaf
 * (Node's https client, then headless Chromium); the same refusals hold for it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startDaemon, stopAll, type DaemonProcess } from './fixtures/processes.ts';
import { createResource, pshIn, signUpAndLogIn, startTrustedPair, type TrustedPair } from './fixtures/cluster-process.ts';
import { postgresSkipReason, startPostgres, type PostgresServer } from './fixtures/postgres.ts';
import { startKubeApiServer, type KubeFixture } from './fixtures/kube-apiserver.ts';
import { runCommand, until } from './fixtures/poll.ts';
import { chromiumFlags, chromiumMissing, chromiumPath, newContext } from './fixtures/browser.ts';
import { verifyEs256Jwt, type PublicJwk } from '../protocols/jwt/es256-jwt.ts';

const domain = 'root.localhost';
const password = 'a long and happy password';
const skip = postgresSkipReason()
  ?? (spawnSync('curl', ['--version']).status === 0 ? undefined : 'curl missing: install Debian package curl')
  ?? (spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0 ? undefined : 'kubectl missing: install Debian package kubernetes-client');

const run = (command: string, args: readonly string[], env: Record<string, string> = {}) => runCommand(command, args, { env, timeoutMs: 30_000 });

interface AppAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** The session cookie a login answer sets, as a Cookie header value; undefined when it sets none. */
function sessionCookieOf(answer: AppAnswer): string | undefined {
  const set = (answer.headers['set-cookie'] ?? []).find((c) => c.startsWith('__Host-postern_app='));
  return set?.split(';')[0];
}

describe('trusted clusters: databases, apps and Kubernetes in a leaf, through the root proxy', { skip }, () => {
  let pair: TrustedPair;
  let agent: DaemonProcess | undefined;
  let pg: PostgresServer | undefined;
  let kube: KubeFixture | undefined;
  let app: http.Server | undefined;
  let work = '';
  const homes: Record<string, string> = {};
  const psh = (user: string, args: string[]) => pshIn(homes[user]!)(args);
  /** The JWT assertion the leaf app received, by request path. */
  const jwtsSeen = new Map<string, string>();
  const rootPort = () => Number(pair.root.proxy.split(':')[1]);
  /**
   * One HTTPS request to APP.<domain> on the root proxy, as a browser sends it (SNI and
   * Host name the app). `keepAlive` sends it the way the proxy's HTTP/1.1 fast path takes
   * it; `Connection: close` otherwise, which the full HTTP server answers.
   */
  const rootApp = (app: string, pathname: string, options: { form?: Record<string, string>; cookie?: string; keepAlive?: boolean } = {}) => new Promise<AppAnswer>((resolve, reject) => {
    const form = options.form ? new URLSearchParams(options.form).toString() : undefined;
    const agent = options.keepAlive ? new https.Agent({ keepAlive: true, maxSockets: 1 }) : undefined;
    const req = https.request({
      host: '127.0.0.1', port: rootPort(), servername: `${app}.${domain}`, ca: readFileSync(path.join(homes.rita!, 'profiles', `127.0.0.1_${rootPort()}`, 'cluster-ca.pem')),
      method: form === undefined ? 'GET' : 'POST', path: pathname, agent: agent ?? false,
      headers: {
        host: `${app}.${domain}:${rootPort()}`,
        ...(agent ? {} : { connection: 'close' }),
        ...(form === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(form) }),
        ...(options.cookie ? { cookie: options.cookie } : {}),
      },
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        agent?.destroy();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      });
    });
    req.on('error', reject);
    req.end(form);
  });
  /** A cluster's JWKS (the jwt CA's public keys), as pctl exports it. */
  const jwksOf = async (cluster: 'root' | 'leaf') => {
    const exported = await pair[cluster].pctl(['auth', 'export', '--type', 'jwt', '--format', 'jwks']);
    assert.equal(exported.code, 0, exported.stderr);
    return JSON.parse(exported.stdout) as { keys: PublicJwk[] };
  };

  before(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'postern-xcluster-'));
    pair = await startTrustedPair({ roleMap: [{ remote: 'svc-user', local: ['svc'] }], rootProxyYaml: `  app_domain: ${domain}\n` });
    // The leaf's database trusts the leaf's db-client CA; the app answers with who the JWT says.
    const certs = path.join(work, 'pgcerts');
    const signed = await pair.leaf.pctl(['auth', 'sign', '--format=db', '--host', 'localhost,127.0.0.1', '--out', certs]);
    assert.equal(signed.code, 0, signed.stderr);
    [pg, kube, app] = await Promise.all([
      startPostgres({
        serverCertPem: readFileSync(path.join(certs, 'server.crt'), 'utf8'),
        serverKeyPem: readFileSync(path.join(certs, 'server.key'), 'utf8'),
        clientCaPem: readFileSync(path.join(certs, 'db-client-ca.crt'), 'utf8'),
      }),
      startKubeApiServer(),
      new Promise<http.Server>((resolve) => {
        const server = http.createServer((req, res) => {
          const jwt = String(req.headers['postern-jwt-assertion'] ?? '');
          jwtsSeen.set(req.url ?? '', jwt);
          const claims = jwt ? JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as { sub?: string; roles?: string[] } : {};
          res.end(JSON.stringify({ path: req.url, user: claims.sub ?? null, roles: claims.roles ?? null }));
        });
        server.listen(0, '127.0.0.1', () => resolve(server));
      }),
    ]);
    await pg!.sql('create user alice');
    await pg!.sql('create database app owner alice');
    const token = (JSON.parse((await pair.leaf.pctl(['tokens', 'add', '--type=node', '--format', 'json'])).stdout) as { token: string }).token;
    agent = await startDaemon('leaf-services', (dir, diag) => [
      `data_dir: ${dir}`, `diag_addr: ${diag}`, 'agent:', '  node_name: leaf-services', `  proxy_addr: ${pair.leaf.proxy}`, `  token: ${token}`, `  ca_pin: ${pair.leaf.pin}`,
      '  ssh: { enabled: false }',
      '  db:',
      '    databases:',
      `      - { name: leafdb, protocol: postgres, uri: "127.0.0.1:${pg!.port}", labels: { env: leaf }, tls: { mode: verify-full, ca_file: ${path.join(certs, 'server.cas')}, server_name: localhost }, auth: { type: cert } }`,
      '  apps:',
      `    - { name: leafweb, uri: "http://127.0.0.1:${(app!.address() as AddressInfo).port}", labels: { env: leaf } }`,
      '  kube:',
      '    clusters:',
      `      - { name: leafk8s, labels: { env: leaf }, api_addr: "${kube!.url}", ca_file: "${kube!.caFile}", token_file: "${kube!.tokenFile}" }`,
      '',
    ].join('\n'));
    await agent.waitReady();
    const leafRole = 'kind: role\nversion: v1\nmetadata: { name: svc }\nspec:\n  allow:\n    db_labels: { env: leaf }\n    db_users: [alice]\n    db_names: [app]\n    app_labels: { env: leaf }\n    kubernetes_labels: { env: leaf }\n    kubernetes_users: [leaf-viewer]\n    kubernetes_groups: [viewers]\n    resources: [{ kinds: [db, app, kube_cluster], verbs: [list, read] }]\n';
    assert.equal((await createResource(pair.leaf, leafRole)).code, 0);
    const rootRoles = [
      'kind: role\nversion: v1\nmetadata: { name: svc-user }\nspec:\n  allow:\n    cluster_labels: { env: prod }\n',
      'kind: role\nversion: v1\nmetadata: { name: svc-unmapped }\nspec:\n  allow:\n    cluster_labels: { env: prod }\n',
      'kind: role\nversion: v1\nmetadata: { name: svc-staging }\nspec:\n  allow:\n    cluster_labels: { env: staging }\n',
    ].join('---\n');
    const created = await createResource(pair.root, rootRoles);
    assert.equal(created.code, 0, created.stderr);
    await Promise.all([['rita', 'svc-user'], ['uma', 'svc-unmapped'], ['stan', 'svc-staging']].map(async ([name, roles]) => {
      homes[name!] = mkdtempSync(path.join(tmpdir(), `postern-${name}-`));
      await signUpAndLogIn(pair.root, homes[name!]!, { name: name!, roles: roles!, logins: name!, password });
    }));
    await until('the leaf database listed through the root', async () => {
      const listed = await psh('rita', ['db', 'ls', '--cluster', 'leaf', '--format', 'json']);
      return listed.code === 0 && (JSON.parse(listed.stdout) as Array<{ name: string; online: boolean }>).some((d) => d.name === 'leafdb' && d.online) ? true : undefined;
    }, 30_000);
  });

  after(async () => {
    await stopAll([agent, ...(pair?.daemons() ?? [])]);
    await Promise.all([pg?.stop(), kube?.close(), new Promise((resolve) => (app ? app.close(resolve) : resolve(undefined)))]);
    for (const home of Object.values(homes)) rmSync(home, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });

  test('psql: a mapped root user queries the leaf database as the mapped role allows; the leaf audits the query as the root user\'s', async () => {
    const login = await psh('rita', ['db', 'login', 'leafdb', '--db-user', 'alice', '--db-name', 'app', '--cluster', 'leaf']);
    assert.equal(login.code, 0, login.stderr);
    const query = await psh('rita', ['db', 'connect', 'leafdb', '--', '-X', '-At', '-c', 'select current_user, current_database(), 40 + 2']);
    assert.equal(query.code, 0, query.stderr);
    assert.equal(query.stdout, 'alice|app|42\n');
    const audited = await until('the query in the leaf audit log', async () => {
      const found = await pair.leaf.pctl(['audit', 'search', '--user', 'rita', '--type', 'db.query', '--format', 'json']);
      const events = JSON.parse(found.stdout || '[]') as Array<{ fields: Record<string, unknown>; identity: { roles?: string[] } }>;
      return events.find((e) => String(e.fields['statement']).includes('40 + 2'));
    });
    assert.equal(audited.fields['user_cluster'], 'root');
    assert.deepEqual(audited.identity.roles, ['svc'], 'the leaf roles the map gave');
  });

  test('curl: a mapped root user reaches the leaf\'s HTTP app with an app certificate; the app sees the root user', async () => {
    const login = await psh('rita', ['apps', 'login', 'leafweb', '--cluster', 'leaf']);
    assert.equal(login.code, 0, login.stderr);
    const config = await psh('rita', ['apps', 'config', 'leafweb', '--format', 'json']);
    assert.equal(config.code, 0, config.stderr);
    const flags = JSON.parse(config.stdout) as { url: string; cert: string; key: string; cacert: string; connect_to: string };
    const got = await run('curl', ['-sS', '--max-time', '20', '--cert', flags.cert, '--key', flags.key, '--cacert', flags.cacert, '--connect-to', flags.connect_to, `${flags.url}hello`]);
    assert.equal(got.code, 0, got.stderr);
    assert.deepEqual(JSON.parse(got.stdout), { path: '/hello', user: 'rita', roles: ['svc'] });
  });

  test('browser session: a mapped root user logs in on the leaf app\'s host at the root proxy with ?cluster=leaf; the app sees the root user with the leaf\'s JWT', async () => {
    const form = await rootApp('leafweb', '/.postern/login?cluster=leaf&redirect=/x');
    assert.equal(form.status, 200, form.body);
    assert.match(form.body, /<h1>Log in to leafweb in cluster leaf<\/h1>/);
    assert.match(form.body, /<input type="hidden" name="cluster" value="leaf">/);
    const login = await rootApp('leafweb', '/.postern/login', { form: { user: 'rita', password, cluster: 'leaf', redirect: '/x' } });
    assert.equal(login.status, 303, login.body);
    assert.equal(login.headers.location, '/x');
    const cookie = sessionCookieOf(login);
    assert.ok(cookie, JSON.stringify(login.headers));
    const [leafJwks, rootJwks] = await Promise.all([jwksOf('leaf'), jwksOf('root')]);
    // Both ways a request travels through the proxy dial the leaf with the session's certificate.
    for (const keepAlive of [true, false]) {
      const where = `/via-session-${keepAlive ? 'fast' : 'full'}`;
      const seen = await rootApp('leafweb', where, { cookie, keepAlive });
      assert.equal(seen.status, 200, seen.body);
      assert.deepEqual(JSON.parse(seen.body), { path: where, user: 'rita', roles: ['svc'] });
      const claims = verifyEs256Jwt(jwtsSeen.get(where)!, leafJwks);
      assert.equal(claims.iss, 'leaf', 'signed by the leaf\'s jwt CA');
      assert.throws(() => verifyEs256Jwt(jwtsSeen.get(where)!, rootJwks), /no key in the JWKS/, 'not the root\'s');
    }
    const created = await until('the session in the root audit log', async () => {
      const found = await pair.root.pctl(['audit', 'search', '--user', 'rita', '--type', 'app.session.create', '--format', 'json']);
      return (JSON.parse(found.stdout || '[]') as Array<{ resource?: { name: string }; fields: Record<string, unknown> }>).find((e) => e.resource?.name === 'leafweb');
    });
    assert.equal(created.fields['route_to_cluster'], 'leaf');
    // The session names its app: the same cookie on another app's host opens nothing.
    const elsewhere = await rootApp('otherweb', '/', { cookie });
    assert.equal(elsewhere.status, 401, elsewhere.body);
  });

  test('psh apps login --cluster leaf prints the browser URL with ?cluster=leaf', async () => {
    const login = await psh('rita', ['apps', 'login', 'leafweb', '--cluster', 'leaf', '--format', 'json']);
    assert.equal(login.code, 0, login.stderr);
    const printed = JSON.parse(login.stdout) as { cluster: string; browser_url: string };
    assert.equal(printed.cluster, 'leaf');
    assert.equal(printed.browser_url, `https://leafweb.${domain}:${rootPort()}/.postern/login?cluster=leaf`);
    const listed = JSON.parse((await psh('rita', ['apps', 'ls', '--cluster', 'leaf', '--format', 'json'])).stdout) as Array<{ name: string; url: string; browser_url: string }>;
    const leafweb = listed.find((a) => a.name === 'leafweb');
    assert.equal(leafweb?.browser_url, printed.browser_url);
    assert.equal(leafweb?.url, `https://leafweb.${domain}:${rootPort()}`, 'curl\'s address stays the app\'s own');
  });

  test('headless Chromium opens the leaf app\'s login URL at the root proxy, logs in and sees the leaf app as the root user', { skip: chromiumMissing() }, async () => {
    const { chromium } = await import('playwright-core');
    // *.localhost resolves to loopback in Chromium anyway; the rule says so where a test can see it.
    const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: [...chromiumFlags, `--host-resolver-rules=MAP *.${domain} 127.0.0.1`], timeout: 30_000 });
    try {
      const page = await (await newContext(browser)).newPage();
      const origin = `https://leafweb.${domain}:${rootPort()}`;
      await page.goto(`${origin}/.postern/login?cluster=leaf&redirect=/in-browser`);
      assert.equal(await page.textContent('h1'), 'Log in to leafweb in cluster leaf');
      await page.fill('#user', 'rita');
      await page.fill('#password', password);
      await Promise.all([page.waitForURL(`${origin}/in-browser`), page.click('#login')]);
      assert.deepEqual(JSON.parse((await page.textContent('body')) ?? ''), { path: '/in-browser', user: 'rita', roles: ['svc'] });
    } finally {
      await browser.close();
    }
  });

  test('browser session refusals: a cluster the roles miss, a value that is not a cluster name, a user the leaf maps to nothing', async () => {
    // Not a cluster name: refused before auth is asked (stan's later failed login is the only one auth sees).
    for (const bad of ['../x', 'leaf"><script>alert(1)</script>']) {
      const page = await rootApp('leafweb', `/.postern/login?cluster=${encodeURIComponent(bad)}`);
      assert.equal(page.status, 400, page.body);
      assert.match(page.body, /is not a cluster name/);
      assert.doesNotMatch(page.body, /<script>|<form/, 'escaped, and no form that would log in elsewhere');
      const posted = await rootApp('leafweb', '/.postern/login', { form: { user: 'stan', password: 'not the password at all', cluster: bad } });
      assert.equal(posted.status, 400, posted.body);
      assert.match(posted.body, /is not a cluster name/);
      assert.equal(sessionCookieOf(posted), undefined);
    }
    // A wrong password stays generic even with a cluster named.
    const wrong = await rootApp('leafweb', '/.postern/login', { form: { user: 'stan', password: 'not the password at all', cluster: 'leaf' } });
    assert.equal(wrong.status, 401, wrong.body);
    assert.match(wrong.body, /check your user name, password and one-time code/);
    assert.doesNotMatch(wrong.body, /cluster "leaf"|roles/);
    const failures = await until('stan\'s failed login in the root audit log', async () => {
      const found = await pair.root.pctl(['audit', 'search', '--user', 'stan', '--type', 'user.login.failed', '--format', 'json']);
      const events = JSON.parse(found.stdout || '[]') as unknown[];
      return events.length > 0 ? events : undefined;
    });
    assert.equal(failures.length, 1, 'the logins with a bad cluster never reached auth');
    // The right password, but stan's cluster_labels miss the leaf: said precisely, no session.
    const missed = await rootApp('leafweb', '/.postern/login', { form: { user: 'stan', password, cluster: 'leaf', redirect: '/' } });
    assert.equal(missed.status, 403, missed.body);
    assert.match(missed.body, /Your roles do not reach cluster leaf: cannot route to cluster &#34;leaf&#34;: no role allows cluster/);
    assert.match(missed.body, /<input type="hidden" name="cluster" value="leaf">/);
    assert.equal(sessionCookieOf(missed), undefined);
    // uma's root role reaches the leaf, which maps it to nothing: the session is made, the leaf agent refuses every request.
    const login = await rootApp('leafweb', '/.postern/login', { form: { user: 'uma', password, cluster: 'leaf', redirect: '/' } });
    assert.equal(login.status, 303, login.body);
    const cookie = sessionCookieOf(login);
    assert.ok(cookie);
    for (const keepAlive of [true, false]) {
      const refused = await rootApp('leafweb', '/uma', { cookie, keepAlive });
      assert.equal(refused.status, 403, refused.body);
      assert.match(refused.body, /no roles mapped for remote user uma from cluster root/);
    }
    assert.equal(jwtsSeen.has('/uma'), false, 'the app never saw uma');
  });

  test('kubectl: a mapped root user lists pods in the leaf\'s Kubernetes cluster, impersonating what the leaf role says', async () => {
    const kubeconfig = path.join(work, 'kubeconfig');
    const login = await psh('rita', ['kube', 'login', 'leafk8s', '--cluster', 'leaf', '--kubeconfig', kubeconfig]);
    assert.equal(login.code, 0, login.stderr);
    const mark = kube!.requests.length;
    const pods = await run('kubectl', ['--kubeconfig', kubeconfig, 'get', 'pods']);
    assert.equal(pods.code, 0, pods.stderr);
    assert.match(pods.stdout, /web-1\s+Running/);
    const seen = kube!.requests.slice(mark).find((r) => r.path.startsWith('/api/v1/namespaces/default/pods'));
    assert.ok(seen);
    assert.equal(seen.headers['impersonate-user'], 'leaf-viewer');
    assert.equal(seen.headers.authorization, `Bearer ${kube!.token}`);
    // Exec over websocket and SPDY: the leaf's agent impersonates, audits the session as the root user's and records it.
    for (const spdy of [false, true]) {
      const exec = await run('kubectl', ['--kubeconfig', kubeconfig, 'exec', 'web-1', '--', 'echo', spdy ? 'spdy' : 'websocket'], spdy ? { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: 'false' } : {});
      assert.equal(exec.code, 0, exec.stderr);
      assert.equal(exec.stdout, `exec in web-1 as leaf-viewer: echo ${spdy ? 'spdy' : 'websocket'}\n`);
    }
    const ends = await until('the exec sessions in the leaf audit log', async () => {
      const found = await pair.leaf.pctl(['audit', 'search', '--user', 'rita', '--type', 'session.end', '--format', 'json']);
      const events = (JSON.parse(found.stdout || '[]') as Array<{ fields: Record<string, unknown> }>).filter((e) => e.fields.kind === 'kube');
      return events.length >= 2 ? events : undefined;
    });
    for (const end of ends) {
      assert.equal(end.fields.user_cluster, 'root');
      assert.equal(end.fields.recording_id, end.fields.session_id);
    }
  });

  test('a root user the role map leaves out is refused at the leaf agent with the reason, and the leaf audits it', async () => {
    const login = await psh('uma', ['db', 'login', 'leafdb', '--db-user', 'alice', '--db-name', 'app', '--cluster', 'leaf']);
    assert.equal(login.code, 0, login.stderr);
    const query = await psh('uma', ['db', 'connect', 'leafdb', '--', '-X', '-At', '-c', 'select 1']);
    assert.notEqual(query.code, 0);
    assert.match(query.stderr, /no roles mapped for remote user uma from cluster root/);
    const kubeconfig = path.join(work, 'kubeconfig-uma');
    assert.equal((await psh('uma', ['kube', 'login', 'leafk8s', '--cluster', 'leaf', '--kubeconfig', kubeconfig])).code, 0);
    const pods = await run('kubectl', ['--kubeconfig', kubeconfig, 'get', 'pods']);
    assert.notEqual(pods.code, 0);
    assert.match(pods.stderr, /no roles mapped for remote user uma from cluster root/);
    const denied = await until('the denials in the leaf audit log', async () => {
      const found = await pair.leaf.pctl(['audit', 'search', '--user', 'uma', '--type', 'access.denied', '--format', 'json']);
      const events = (JSON.parse(found.stdout || '[]') as Array<{ reason?: string; resource?: { kind: string }; fields: Record<string, unknown> }>)
        .filter((e) => /no roles mapped for remote user uma from cluster root/.test(e.reason ?? ''));
      const kinds = new Set(events.map((e) => e.resource?.kind));
      return kinds.has('db') && kinds.has('kube_cluster') ? events : undefined;
    });
    assert.ok(denied.every((e) => e.fields['user_cluster'] === 'root'), 'marked for forwarding to the root');
  });

  test('a root role whose cluster_labels miss the leaf gets no certificate routed to it (db, app, kube)', async () => {
    for (const args of [['db', 'login', 'leafdb', '--db-user', 'alice'], ['apps', 'login', 'leafweb'], ['kube', 'login', 'leafk8s', '--kubeconfig', path.join(work, 'kc-stan')]]) {
      const refused = await psh('stan', [...args, '--cluster', 'leaf']);
      assert.notEqual(refused.code, 0, args.join(' '));
      assert.match(refused.stderr, /cluster "leaf"|leaf cluster leaf/, args.join(' '));
    }
    const audited = JSON.parse((await pair.root.pctl(['audit', 'search', '--user', 'stan', '--type', 'access.denied', '--format', 'json'])).stdout || '[]') as Array<{ resource?: { kind: string; name: string } }>;
    assert.ok(audited.some((e) => e.resource?.kind === 'cluster' && e.resource.name === 'leaf'), 'the root audits the refused route');
  });
});
