import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { startTestAuth, type TestAuth } from '../../test/fixtures/auth.ts';
import { startFakeProxy } from '../../test/fixtures/fake-proxy.ts';
import type { IdentityFile } from '../../cluster/api/identity-file.ts';
import { silentLogger } from '../../cluster/common/logger.ts';
import { TunnelRejectedError, type ProxyTunnel } from '../../protocols/tunnel/index.ts';
import { echoService } from '../services/echo-service.ts';
import { ServiceRegistry } from './service-registry.ts';
import { TunnelPool, type TunnelPoolOptions } from './tunnel-pool.ts';

let auth: TestAuth;
let agentIdentity: IdentityFile;
before(async () => {
  auth = await startTestAuth();
  agentIdentity = auth.server.issueHostIdentity({ hostId: 'agent-1', nodeName: 'n1', systemRoles: ['node'], ttlMs: 3_600_000 });
});
after(async () => { await auth.stop(); });

function pool(proxyAddr: string, overrides: Partial<TunnelPoolOptions> = {}): TunnelPool {
  const services = new ServiceRegistry();
  services.register('echo', echoService);
  return new TunnelPool({ proxyAddr, identity: () => agentIdentity, onStream: services.onStream, logger: silentLogger(), discoveryIntervalMs: 60_000, ...overrides });
}

async function roundTrip(tunnel: ProxyTunnel, payload: Buffer): Promise<Buffer> {
  const stream = await tunnel.dial('echo', 'test-user');
  stream.end(payload);
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test('the tunnel comes up with the host certificate; echo is byte-exact; an unknown service is refused', async (t) => {
  const proxy = await startFakeProxy({ auth: auth.server });
  const tunnels = pool(proxy.address);
  t.after(async () => { await tunnels.stop(); await proxy.close(); });
  assert.equal(tunnels.health().ok, false);
  const up = once(tunnels, 'up');
  await tunnels.start();
  const [address, peer] = await up;
  assert.deepEqual([address, peer], [proxy.address, { hostId: 'proxy-1', roles: ['proxy'] }]);
  const tunnel = await proxy.waitForTunnel();
  assert.deepEqual(proxy.tunnelPeers, ['agent-1'], 'the proxy saw the agent\'s host certificate');
  const payload = randomBytes(3 * 1024 * 1024 + 7);
  assert.ok((await roundTrip(tunnel, payload)).equals(payload));
  await assert.rejects(tunnel.dial('db:orders', 'test-user'), (error: unknown) => {
    assert.ok(error instanceof TunnelRejectedError);
    assert.deepEqual([error.status, error.reason], [404, 'this agent does not serve db:orders; it serves echo']);
    return true;
  });
  assert.deepEqual(tunnels.health(), { ok: true, detail: '1 of 1 tunnels up' });
  assert.deepEqual(tunnels.status().map((row) => [row.address, row.state, row.proxyHostId, row.failures]), [[proxy.address, 'up', 'proxy-1', 0]]);
});

test('after the proxy restarts the agent is back within a few seconds', async (t) => {
  const proxy = await startFakeProxy({ auth: auth.server });
  const tunnels = pool(proxy.address);
  t.after(async () => { await tunnels.stop(); await proxy.close(); });
  await tunnels.start();
  await proxy.waitForTunnel();
  const down = once(tunnels, 'down');
  await proxy.stop();
  await down;
  await new Promise((resolve) => setTimeout(resolve, 1000)); // the proxy stays away a while: dials fail and back off
  assert.equal(tunnels.health().ok, false);
  assert.match(tunnels.health().detail ?? '', /no tunnel to any proxy \(127\.0\.0\.1:\d+: cannot open a tunnel to the proxy at 127\.0\.0\.1:\d+: connect ECONNREFUSED/);
  const restartedAt = Date.now();
  await proxy.restart();
  const tunnel = await proxy.waitForTunnel(8_000);
  const elapsed = Date.now() - restartedAt;
  assert.ok(elapsed < 4_000, `reconnected ${elapsed} ms after the restart`);
  const payload = randomBytes(1000);
  assert.ok((await roundTrip(tunnel, payload)).equals(payload));
  assert.equal(tunnels.status()[0]?.failures, 0, 'a tunnel that came up resets the back-off');
});

test('a host of the cluster that is not a proxy gets no tunnel', async (t) => {
  const impostor = await startFakeProxy({ auth: auth.server, roles: ['node'] });
  const tunnels = pool(impostor.address);
  t.after(async () => { await tunnels.stop(); await impostor.close(); });
  await tunnels.start();
  await until('a failed dial', () => tunnels.status()[0]?.lastError !== undefined);
  assert.match(tunnels.status()[0]?.lastError ?? '', /holds a host certificate of this cluster for roles node, not a proxy's/);
  assert.equal(impostor.tunnels.size, 0);
  assert.equal(tunnels.connected, 0);
});

test('the mesh: a tunnel per discovered proxy, none twice to one proxy, and links dropped when a proxy leaves', async (t) => {
  let listed: Array<{ host_id: string; public_addr: string }> = [];
  const a = await startFakeProxy({ auth: auth.server, hostId: 'proxy-a', proxies: () => listed });
  const b = await startFakeProxy({ auth: auth.server, hostId: 'proxy-b', proxies: () => listed });
  const tunnels = pool(a.address);
  t.after(async () => { await tunnels.stop(); await a.close(); await b.close(); });
  listed = [
    { host_id: 'proxy-a', public_addr: a.address },
    { host_id: 'proxy-b', public_addr: b.address },
    // The same proxy A under another name, listed with a host id that does not say so.
    { host_id: 'proxy-a-alias', public_addr: `localhost:${a.port}` },
    { host_id: 'proxy-c', public_addr: '0.0.0.0:3080' },
  ];
  await tunnels.start();
  await until('tunnels to A and B', () => a.tunnels.size === 1 && b.tunnels.size === 1);
  await until('the alias link dropped', () => tunnels.status().length === 2);
  const rows = tunnels.status().map((row) => [row.proxyHostId, row.address]).sort((x, y) => String(x[0]).localeCompare(String(y[0])));
  assert.deepEqual(rows, [['proxy-a', a.address], ['proxy-b', b.address]]);
  // The agent may finish its handshake before A records it (TLS 1.3): wait for A's view.
  await until('A to see the alias dial', () => a.tunnelPeers.length === 2);
  await until('the alias tunnel closed at A', () => a.tunnels.size === 1);
  await tunnels.discover();
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(a.tunnelPeers.length, 2, 'the alias is remembered: rediscovery does not dial it again');

  // One discovery without B (a proxy that just restarted lists only itself) keeps it; two drop it.
  listed = [{ host_id: 'proxy-a', public_addr: a.address }];
  await tunnels.discover();
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(b.tunnels.size, 1, 'one discovery without B keeps its tunnel');
  await tunnels.discover();
  await until('B dropped', () => b.tunnels.size === 0);
  assert.deepEqual(tunnels.status().map((row) => row.address), [a.address]);
});

test('refresh replaces open tunnels with ones made with the current identity', async (t) => {
  const proxy = await startFakeProxy({ auth: auth.server });
  let identity = agentIdentity;
  const tunnels = pool(proxy.address, { identity: () => identity });
  t.after(async () => { await tunnels.stop(); await proxy.close(); });
  await tunnels.start();
  const first = await proxy.waitForTunnel();
  identity = auth.server.issueHostIdentity({ hostId: 'agent-1-renewed', nodeName: 'n1', systemRoles: ['node'], ttlMs: 3_600_000 });
  await tunnels.refresh();
  await until('the old tunnel closed', () => first.closed && proxy.tunnels.size === 1);
  assert.deepEqual(proxy.tunnelPeers, ['agent-1', 'agent-1-renewed']);
  const payload = randomBytes(100);
  assert.ok((await roundTrip([...proxy.tunnels][0]!, payload)).equals(payload));
  assert.equal(tunnels.connected, 1);
});
