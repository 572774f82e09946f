/**
 * Web sessions against a real auth server over gRPC: two WebSessions instances stand
 * for two proxies of one cluster. A session made at one is served by the other, calls
 * run with the session's own certificate (auth's roles decide), and a sign-out at one
 * ends it at the other. Auth refuses web-session calls from anything but a proxy.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../common/logger.ts';
import { AuthenticationError, PosternError } from '../../protocols/errors.ts';
import { rejectsWith } from '../../test/fixtures/rejects-with.ts';

/** Errors from auth arrive over gRPC as PosternErrors with the server's code. */
async function rejectsCode(promise: Promise<unknown>, code: string): Promise<void> {
  const error = await rejectsWith(promise, PosternError);
  assert.equal(error.code, code, error.message);
}
import { startTestAuth, type TestAuth } from '../../test/fixtures/auth.ts';
import { WebSessions } from './web-sessions.ts';

describe('web sessions shared by the proxies of a cluster', () => {
  let auth: TestAuth;
  let proxyA: WebSessions;
  let proxyB: WebSessions;
  const password = 'correct horse battery staple';

  before(async () => {
    auth = await startTestAuth({ clusterName: 'one' });
    const { users } = auth.server.deps;
    for (const [name, roles] of [['ada', ['access', 'editor']], ['bob', ['access']]] as const) {
      await users.create(name, { roles: [...roles], traits: { logins: [name] } });
      await users.setPassword(name, password);
    }
    const make = (hostId: string) => {
      const connection = auth.connectAs(['proxy'], hostId);
      return new WebSessions({
        proxyAuth: () => connection.client,
        authAddr: auth.server.address,
        hostCaPems: () => auth.server.deps.authorities.trustedTlsCerts('host'),
        logger: silentLogger(),
        cacheMs: 0,
      });
    };
    proxyA = make('proxy-a');
    proxyB = make('proxy-b');
  });
  after(async () => {
    proxyA.close();
    proxyB.close();
    await auth.stop();
  });

  test('a session made at one proxy is served by another, as the person', async () => {
    const session = await proxyA.login({ user: 'bob', password, totpCode: '' });
    assert.equal(session.record.user, 'bob');
    assert.deepEqual(session.record.logins, ['bob']);
    const atB = await proxyB.get(session.id);
    assert.equal(atB.record.csrfToken, session.record.csrfToken);
    // bob's roles may list nodes but not users: auth decides from the session's certificate.
    await atB.auth.getResources({ kind: 'node' });
    await rejectsCode(atB.auth.getResources({ kind: 'user' }), 'PST_ACCESS_DENIED');
    const ada = await proxyB.get((await proxyA.login({ user: 'ada', password, totpCode: '' })).id);
    assert.ok(JSON.parse((await ada.auth.getResources({ kind: 'user' })).resourcesJson).length >= 2);
  });

  test('sign-out at one proxy ends the session at the other', async () => {
    const session = await proxyA.login({ user: 'bob', password, totpCode: '' });
    await proxyB.get(session.id);
    await proxyA.logout(session.id);
    await rejectsWith(proxyB.get(session.id), AuthenticationError);
    await rejectsWith(proxyA.get(session.id), AuthenticationError);
  });

  test('wrong passwords, forged and missing ids are refused', async () => {
    await rejectsCode(proxyA.login({ user: 'bob', password: 'wrong password here', totpCode: '' }), 'PST_LOGIN_FAILED');
    await rejectsWith(proxyA.get(undefined), AuthenticationError);
    await rejectsWith(proxyA.get('A'.repeat(43)), AuthenticationError);
    await rejectsWith(proxyA.get('../../web_sessions'), AuthenticationError);
  });

  test('auth serves web-session calls to proxies only, and checks what a proxy stores', async () => {
    const node = auth.connectAs(['node'], 'node-x');
    await rejectsCode(node.client.getWebSession({ id: 'A'.repeat(43) }), 'PST_ACCESS_DENIED');
    const session = await proxyA.login({ user: 'bob', password, totpCode: '' });
    const asBob = (await proxyA.get(session.id)).auth;
    await rejectsCode(asBob.getWebSession({ id: session.id }), 'PST_ACCESS_DENIED');
    const proxy = auth.connectAs(['proxy'], 'proxy-c');
    const record = session.record;
    await rejectsCode(proxy.client.createWebSession({ session: { ...record, tlsCertificatePem: auth.server.deps.authorities.trustedTlsCerts('host')[0]! } }), 'PST_BAD_INPUT');
    const other = await proxyA.login({ user: 'ada', password, totpCode: '' });
    await rejectsCode(proxy.client.createWebSession({ session: { ...record, tlsKeyPem: other.record.tlsKeyPem } }), 'PST_BAD_INPUT');
  });
});
