import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import https from 'node:https';
import type net from 'node:net';
import { startTestAuth, type TestAuth } from '../../test/fixtures/auth.ts';
import { startFakeProxy } from '../../test/fixtures/fake-proxy.ts';
import { verifyProxyCertificate } from './proxy-peer.ts';
import { fetchDiscovery } from './discovery.ts';
import { proxyRequest } from './proxy-web-client.ts';
import { ProxyApiError, ProxyIdentityError, ProxyResponseError } from './errors.ts';

let auth: TestAuth;
let other: TestAuth;
before(async () => {
  auth = await startTestAuth();
  other = await startTestAuth({ clusterName: 'other' });
});
after(async () => {
  await auth.stop();
  await other.stop();
});

function issue(from: TestAuth, roles: Array<'proxy' | 'node'>) {
  return from.server.issueHostIdentity({ hostId: `${roles.join('-')}-x`, nodeName: 'x', systemRoles: roles, ttlMs: 600_000, ipAddresses: ['127.0.0.1'] });
}

test('a proxy certificate from the host CA is accepted; a node certificate or another cluster is not', () => {
  const caPems = issue(auth, ['proxy']).ca_pems;
  assert.deepEqual(verifyProxyCertificate(issue(auth, ['proxy']).cert_pem, caPems, 'p:1'), { hostId: 'proxy-x', roles: ['proxy'] });
  assert.throws(() => verifyProxyCertificate(issue(auth, ['node']).cert_pem, caPems, 'p:1'), {
    name: 'ProxyIdentityError',
    message: 'the server at p:1 holds a host certificate of this cluster for roles node, not a proxy\'s; check the proxy address',
  });
  assert.throws(() => verifyProxyCertificate(issue(other, ['proxy']).cert_pem, caPems, 'p:1'), /not issued by this cluster's host CA/);
  assert.throws(() => verifyProxyCertificate('junk', caPems, 'p:1'), /does not parse/);
});

test('the web client refuses a node posing as proxy and a server of another cluster', async () => {
  const caPems = issue(auth, ['proxy']).ca_pems;
  const impostor = await startFakeProxy({ auth: auth.server, roles: ['node'] });
  const foreign = await startFakeProxy({ auth: other.server });
  try {
    await assert.rejects(fetchDiscovery(impostor.address, { caPems }), (error: unknown) => {
      assert.ok(error instanceof ProxyIdentityError, String(error));
      assert.match(error.message, /roles node, not a proxy's/);
      return true;
    });
    await assert.rejects(fetchDiscovery(foreign.address, { caPems }), (error: unknown) => {
      assert.ok(error instanceof ProxyIdentityError, String(error));
      assert.match(error.message, /host CA does not vouch for/);
      return true;
    });
  } finally {
    await impostor.close();
    await foreign.close();
  }
});

test('discovery through a real proxy certificate, and the proxy\'s error body comes back with its code', async () => {
  const proxy = await startFakeProxy({ auth: auth.server });
  try {
    const caPems = proxy.identity.ca_pems;
    const discovery = await fetchDiscovery(proxy.address, { caPems });
    assert.deepEqual(discovery, { cluster_name: 'test', version: 'test', proxies: [{ host_id: 'proxy-1', public_addr: proxy.address }], ca_pins: [proxy.caPin] });
    await assert.rejects(proxyRequest(proxy.address, '/v1/nope', { trust: { caPems } }), (error: unknown) => {
      assert.ok(error instanceof ProxyApiError);
      assert.deepEqual([error.code, error.status, error.message], ['PST_NOT_FOUND', 404, 'no such endpoint GET /v1/nope']);
      return true;
    });
  } finally {
    await proxy.close();
  }
});

test('a server that answers HTML or too much is not taken for a proxy', async () => {
  const identity = issue(auth, ['proxy']);
  const server = https.createServer({ cert: identity.cert_pem, key: identity.key_pem, ALPNProtocols: ['http/1.1'] }, (req, res) => {
    if (req.url === '/big') return void res.end(Buffer.alloc(64 * 1024, 'a'));
    res.end('<html>hello</html>');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  try {
    await assert.rejects(proxyRequest(address, '/v1/discovery', { trust: { caPems: identity.ca_pems } }), (error: unknown) => {
      assert.ok(error instanceof ProxyResponseError);
      assert.match(error.message, /answered \/v1\/discovery with HTTP 200 and a body that is not JSON; is the address a Postern proxy\?/);
      return true;
    });
    await assert.rejects(proxyRequest(address, '/big', { trust: { caPems: identity.ca_pems }, maxBytes: 1024 }), /larger than 1024 bytes/);
  } finally {
    server.closeAllConnections();
    server.close();
  }
});
