/**
 * App sessions against a real auth server and proxy: a session whose certificate
 * expires is refused from then on (401), even while the proxy's lookup cache holds it;
 * and a session id never created is refused. Logins naming a leaf (`cluster`): the
 * value is checked before auth is asked, a route the roles miss is said precisely, and
 * a session routed to a leaf is dialled there with its certificate. curl drives the
 * requests.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { startTestProxy } from './testdata/proxy-fixture.ts';
import { AppSessions, loginCluster, loginRefusal, safeRedirect, sessionCaller, withoutSessionCookie } from './app-sessions.ts';
import { dialOfCaller } from './app-web.ts';
import { RateLimiter } from './rate-limiter.ts';
import { parseResources } from '../access/resources/parse-resources.ts';
import type { AuthClient } from '../api/auth-client.ts';
import { decodeRoutedIdentity } from '../api/routed-identity.ts';
import type { UserIdentity } from '../auth/pki/identity.ts';
import type { Logger } from '../common/logger.ts';
import { PosternError } from '../../protocols/errors.ts';

function curl(port: number, cookie: string, pathname = '/', args: string[] = []): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sSk', '--max-time', '10', '--connect-to', `web.apps.localhost:${port}:127.0.0.1:${port}`, '-H', `Cookie: ${cookie}`, '-w', '\n%{http_code}', ...args, `https://web.apps.localhost:${port}${pathname}`], { encoding: 'utf8' }, (_error, stdout) => {
      const cut = stdout.lastIndexOf('\n');
      resolve({ status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut) });
    });
  });
}

/** POSTs the login form of app web; `-D -` puts the answer's headers in the body. */
function postLogin(port: number, fields: Record<string, string>): Promise<{ status: number; body: string }> {
  return curl(port, '', '/.postern/login', ['-D', '-', ...Object.entries(fields).flatMap(([k, v]) => ['--data-urlencode', `${k}=${v}`])]);
}

function identityRoutedTo(routeToCluster: string): UserIdentity {
  return { kind: 'user', username: 'rita', roles: ['svc-user'], traits: {}, logins: [], cluster: 'root', routeToCluster, mfaVerified: false, bot: false, expires: new Date(Date.now() + 60_000) };
}

test('an app session stops working when its certificate expires; an unknown id never works', async () => {
  const t = await startTestProxy({ proxy: { appDomain: 'apps.localhost' } });
  try {
    for (let i = 0; i < 100 && t.proxy.credentials.userCaPems().length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    const tls = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const identity = {
      kind: 'user' as const, username: 'alice', roles: ['access'], traits: {}, logins: [], cluster: 'alpha', routeToCluster: 'alpha',
      mfaVerified: false, bot: false, expires: new Date(Date.now() + 2_000),
    };
    const pem = t.auth.server.deps.issuer.issueUserTls(identity, tls.publicKey.export({ type: 'spki', format: 'pem' }) as string);
    const proxyClient = t.auth.connectAs(['proxy']).client;
    const { sessionId } = await proxyClient.createAppSession({ tlsCertificatePem: pem, appName: 'web' });
    // Accepted while current: the proxy goes on to look for the app (there is none here).
    const live = await curl(t.port, `__Host-postern_app=${sessionId}`);
    assert.equal(live.status, 404, live.body);
    assert.match(live.body, /no app is named "web"/);
    await new Promise((resolve) => setTimeout(resolve, 2_300));
    const expired = await curl(t.port, `__Host-postern_app=${sessionId}`);
    assert.equal(expired.status, 401, expired.body);
    const unknown = await curl(t.port, `__Host-postern_app=${'x'.repeat(43)}`);
    assert.equal(unknown.status, 401, unknown.body);
    await assert.rejects(proxyClient.getAppSession({ sessionId }), /expired|no such app session/);
    // Only proxies read sessions.
    await assert.rejects(t.auth.connectAs(['node']).client.getAppSession({ sessionId }), /only proxy hosts may/);
  } finally {
    await t.stop();
  }
});

test('redirects stay on the app host; the session cookie is removed from what the app gets', () => {
  assert.equal(safeRedirect('/grafana/d/1?x=2'), '/grafana/d/1?x=2');
  for (const bad of ['//evil.example/', 'https://evil.example/', '/\\evil', '', null, '/a\r\nSet-Cookie: x=1']) assert.equal(safeRedirect(bad), '/');
  assert.equal(withoutSessionCookie(`a=1; __Host-postern_app=${'A'.repeat(43)}; b=2`), 'a=1; b=2');
  assert.equal(withoutSessionCookie(`__Host-postern_app=${'A'.repeat(43)}`), undefined);
  assert.equal(withoutSessionCookie(`a=1; __Host-postern_cluster=leaf; __Host-postern_app=${'A'.repeat(43)}`), 'a=1', 'the cluster cookie is Postern\'s too');
});

test('concurrent lookups of one session id make one call to auth, then the answer is cached', async () => {
  let calls = 0;
  const auth = {
    getAppSession: async () => {
      calls++;
      await new Promise((resolve) => setTimeout(resolve, 50));
      throw new Error('no such app session');
    },
  };
  const silent = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {}, child: () => silent };
  const sessions = new AppSessions({ auth: () => auth as unknown as AuthClient, userCaPems: () => [], limiter: new RateLimiter({ burst: 5, perSecond: 1 }), logger: silent as unknown as Logger });
  const req = { headers: { cookie: `a=1; __Host-postern_app=${'B'.repeat(43)}` } };
  assert.equal(sessions.cached(req, 'web'), 'miss');
  const answers = await Promise.all(Array.from({ length: 10 }, () => sessions.lookup(req, 'web')));
  assert.deepEqual(answers, Array(10).fill(undefined));
  assert.equal(calls, 1);
  assert.equal(sessions.cached(req, 'web'), undefined, 'the refusal is cached');
  await sessions.lookup(req, 'web');
  assert.equal(calls, 1);
});

test('the cluster of a login is a cluster name or nothing', () => {
  for (const none of [null, undefined, '']) assert.deepEqual(loginCluster(none), { cluster: '' });
  for (const name of ['leaf', 'leaf-eu.1', 'Leaf_2']) assert.deepEqual(loginCluster(name), { cluster: name });
  for (const bad of ['../x', 'leaf"><script>', '-leaf', 'leaf.', 'a b', 'x'.repeat(64), 'leaf/..']) {
    const answer = loginCluster(bad);
    assert.ok('refused' in answer, bad);
    assert.match(answer.refused, /is not a cluster name: it must/);
  }
});

test('a session routed to a leaf is dialled there with its certificate; a session of this cluster with a vouched identity', () => {
  const leaf = sessionCaller(identityRoutedTo('leaf'), 'PEM');
  assert.deepEqual(leaf.certificate, { pem: 'PEM', routeToCluster: 'leaf' });
  assert.equal(leaf.via, 'app-session');
  const leafDial = dialOfCaller(leaf, '10.0.0.9:5000');
  assert.equal(leafDial.cluster, 'leaf');
  assert.equal(Buffer.from(leafDial.identity, 'base64').toString(), 'PEM');
  for (const here of [identityRoutedTo('root'), identityRoutedTo('')]) {
    const caller = sessionCaller(here, 'PEM');
    assert.equal(caller.certificate, undefined);
    const dial = dialOfCaller(caller, '10.0.0.9:5000');
    assert.equal(dial.cluster, undefined);
    assert.equal(decodeRoutedIdentity(dial.identity).username, 'rita');
  }
});

test('a refused route is said precisely; password, code and lockout failures stay generic', () => {
  const route = new PosternError('PST_ACCESS_DENIED', 'cannot route to cluster "leaf": no role allows cluster "leaf"');
  assert.deepEqual(loginRefusal(route, 'leaf'), { message: 'Your roles do not reach cluster leaf: cannot route to cluster "leaf": no role allows cluster "leaf"', status: 403 });
  const generic = { message: 'Login failed: check your user name, password and one-time code.', status: 401 };
  assert.deepEqual(loginRefusal(route, ''), generic);
  for (const code of ['PST_LOGIN_FAILED', 'PST_ACCOUNT_LOCKED', 'PST_UNAUTHENTICATED', 'PST_UNAVAILABLE']) assert.deepEqual(loginRefusal(new PosternError(code, 'x'), 'leaf'), generic, code);
  assert.deepEqual(loginRefusal(new Error('socket hang up'), 'leaf'), generic);
});

test('login forms naming a leaf: bad names refused before auth, a route the roles miss said precisely, a session routed there dialled there', async () => {
  const t = await startTestProxy({ proxy: { appDomain: 'apps.localhost' } });
  try {
    for (let i = 0; i < 100 && t.proxy.credentials.userCaPems().length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    const { deps } = t.auth.server;
    const password = 'a long and happy password';
    const [role] = parseResources('kind: role\nversion: v1\nmetadata: { name: reach-prod }\nspec:\n  allow:\n    cluster_labels: { env: prod }\n', { source: 'test', registry: deps.registry });
    await deps.resources.put(role!);
    const [leaf] = parseResources('kind: remote_cluster\nversion: v1\nmetadata: { name: leaf, labels: { env: prod } }\nspec: {}\n', { source: 'test', registry: deps.registry });
    await deps.resources.put(leaf!);
    for (const [name, roles] of [['alice', ['access']], ['rita', ['access', 'reach-prod']]] as const) {
      await deps.users.create(name, { roles: [...roles], traits: { logins: [name] } });
      await deps.users.setPassword(name, password);
    }
    const form = await curl(t.port, '', '/.postern/login?cluster=leaf&redirect=/x');
    assert.match(form.body, /<h1>Log in to web in cluster leaf<\/h1>/);
    assert.match(form.body, /<input type="hidden" name="cluster" value="leaf">/);
    const badForm = await curl(t.port, '', `/.postern/login?cluster=${encodeURIComponent('leaf"><b>')}`);
    assert.equal(badForm.status, 400);
    assert.match(badForm.body, /&#34;leaf&#34;&#62;&#60;b&#62;&#34; is not a cluster name/);
    assert.doesNotMatch(badForm.body, /<form/);
    // Not a cluster name: no call to auth, so no failed login recorded for the wrong password.
    const badPost = await postLogin(t.port, { user: 'alice', password: 'wrong', cluster: '../x' });
    assert.equal(badPost.status, 400, badPost.body);
    assert.doesNotMatch(badPost.body, /set-cookie/i);
    const wrong = await postLogin(t.port, { user: 'alice', password: 'wrong', cluster: 'leaf' });
    assert.equal(wrong.status, 401, wrong.body);
    assert.match(wrong.body, /check your user name, password and one-time code/);
    const failures = (await deps.audit.search({ from: new Date(0), to: new Date(Date.now() + 60_000), types: ['user.login.failed'] })).filter((e) => e.identity.user === 'alice');
    assert.equal(failures.length, 1, 'only the login with a cluster name reached auth');
    const missed = await postLogin(t.port, { user: 'alice', password, cluster: 'leaf' });
    assert.equal(missed.status, 403, missed.body);
    assert.match(missed.body, /Your roles do not reach cluster leaf: cannot route to cluster &#34;leaf&#34;/);
    assert.doesNotMatch(missed.body, /set-cookie/i);
    const login = await postLogin(t.port, { user: 'rita', password, cluster: 'leaf' });
    assert.equal(login.status, 303, login.body);
    const cookie = /set-cookie: (__Host-postern_app=[A-Za-z0-9_-]{43})/i.exec(login.body)?.[1];
    assert.ok(cookie, login.body);
    // This proxy has no tunnel to a leaf: the refusal shows the request was dialled to cluster leaf, not here.
    const dialled = await curl(t.port, cookie);
    assert.equal(dialled.status, 404, dialled.body);
    assert.match(dialled.body, /no cluster "leaf" is reachable from alpha/);
    // The browser remembers the leaf: once its session is gone, the login page it is sent to is routed there again.
    const remembered = /set-cookie: (__Host-postern_cluster=leaf); Path=\/; Secure; HttpOnly; SameSite=Lax; Max-Age=\d+/i.exec(login.body)?.[1];
    assert.ok(remembered, login.body);
    const expired = await curl(t.port, `__Host-postern_app=${'C'.repeat(43)}; ${remembered}`, '/reports?q=1', ['-D', '-', '-H', 'Accept: text/html']);
    assert.equal(expired.status, 302, expired.body);
    assert.match(expired.body, /location: \/\.postern\/login\?cluster=leaf&redirect=%2Freports%3Fq%3D1\r?\n/i);
    const forged = await curl(t.port, '__Host-postern_cluster=leaf%22%3E%3Cb%3E', '/', ['-D', '-', '-H', 'Accept: text/html']);
    assert.match(forged.body, /location: \/\.postern\/login\?redirect=%2F\r?\n/i, 'a cluster cookie that is not a cluster name is ignored');
    const loggedOut = await curl(t.port, `${cookie}; ${remembered}`, '/.postern/logout', ['-D', '-', '-X', 'POST']);
    assert.match(loggedOut.body, /location: \/\.postern\/login\?cluster=leaf\r?\n/i);
    // A login to this cluster forgets the leaf.
    const local = await postLogin(t.port, { user: 'rita', password });
    assert.match(local.body, /set-cookie: __Host-postern_cluster=; Path=\/; Secure; HttpOnly; SameSite=Lax; Max-Age=0/i);
  } finally {
    await t.stop();
  }
});
