/**
 * App sessions against a real auth server and proxy: a session whose certificate
 * expires is refused from then on (401), even while the proxy's lookup cache holds it;
 * and a session id never created is refused. curl drives the requests.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { startTestProxy } from './testdata/proxy-fixture.ts';
import { AppSessions, safeRedirect, withoutSessionCookie } from './app-sessions.ts';
import { RateLimiter } from './rate-limiter.ts';
import type { AuthClient } from '../api/auth-client.ts';
import type { Logger } from '../common/logger.ts';

function curl(port: number, cookie: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sSk', '--max-time', '10', '--connect-to', `web.apps.localhost:${port}:127.0.0.1:${port}`, '-H', `Cookie: ${cookie}`, '-w', '\n%{http_code}', `https://web.apps.localhost:${port}/`], { encoding: 'utf8' }, (_error, stdout) => {
      const cut = stdout.lastIndexOf('\n');
      resolve({ status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut) });
    });
  });
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
