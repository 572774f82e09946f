import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { connectAuth, type AuthClient } from '../api/auth-client.ts';
import { readIdentityFile } from '../api/identity-file.ts';
import { verifyCertificateChain } from '../auth/pki/verify-certificate.ts';
import { parseConfig } from '../common/config.ts';
import { silentLogger } from '../common/logger.ts';
import { startTestAuth, type TestAuth } from '../../test/fixtures/auth.ts';
import { startDaemon } from '../../cli/postern/start.ts';
import { ProxyIdentityError } from './errors.ts';
import { proxyIdentityPath, proxyNames, renewProxyIdentity } from './proxy-identity.ts';
import { startProxyService } from './proxy-service.ts';
import { startProxy } from './start-proxy.ts';
import { webRequest } from './testdata/proxy-fixture.ts';
import { createTestPki } from '../../protocols/tunnel/testdata/test-pki.ts';
import { BadInputError } from '../../protocols/errors.ts';

let auth: TestAuth;
let admin: AuthClient;
let pin: string;
const dirs: string[] = [];

before(async () => {
  auth = await startTestAuth({ clusterName: 'alpha' });
  admin = auth.connectAs(['admin']).client;
  pin = auth.server.deps.authorities.publicAuthority('host').tlsPins[0]!;
});
after(async () => {
  await auth.stop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function _dir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'postern-proxy-'));
  dirs.push(dir);
  return dir;
}

function _config(dataDir: string, proxy: Record<string, string>) {
  const fields = Object.entries({ listen_addr: '127.0.0.1:0', ...proxy }).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`).join('\n');
  return parseConfig(`data_dir: ${JSON.stringify(dataDir)}\ndiag_addr: ""\nproxy:\n${fields}\n`, path.join(dataDir, 'postern.yaml'));
}

async function _proxyToken(): Promise<string> {
  return (await admin.addToken({ roles: ['proxy'], ttlSeconds: 600n, labels: {}, singleUse: true })).token;
}

async function _onlineProxies(): Promise<Array<{ host_id: string; public_addr: string; online: boolean }>> {
  return JSON.parse((await admin.getResources({ kind: 'proxy', name: '' })).resourcesJson);
}

describe('a proxy with auth elsewhere', () => {
  it('joins with a token and the CA pin, stores its identity, heartbeats, and reuses the identity on restart', async () => {
    const dataDir = _dir();
    const config = _config(dataDir, { auth_addr: auth.server.address, token: await _proxyToken(), ca_pin: pin });
    const first = await startProxyService(config, { logger: silentLogger() });
    const stored = await readIdentityFile(proxyIdentityPath(dataDir), 'test');
    try {
      const identity = verifyCertificateChain(stored.cert_pem, { trustedCaCerts: stored.ca_pems, expectedKind: 'host' });
      assert.deepEqual([identity.kind === 'host' && identity.systemRoles, stored.host_id, stored.cluster], [['proxy'], first.hostId, 'alpha']);
      await first.sync.beat();
      assert.ok(first.sync.connected);
      assert.ok((await _onlineProxies()).some((p) => p.host_id === first.hostId && p.public_addr === first.publicAddr && p.online));
      const discovery = await webRequest(Number(first.address.split(':').pop()), stored.ca_pems, 'GET', '/v1/discovery');
      assert.deepEqual(discovery.body.ca_pins, [pin]);
    } finally {
      await first.close();
    }
    // No token the second time: the stored identity is enough.
    const again = await startProxyService(_config(dataDir, { auth_addr: auth.server.address }), { logger: silentLogger() });
    try {
      assert.equal(again.hostId, first.hostId);
    } finally {
      await again.close();
    }
  });

  it("joins and heartbeats through another proxy's public port when it has no route to auth", async () => {
    const front = await startProxyService(_config(_dir(), { auth_addr: auth.server.address, token: await _proxyToken(), ca_pin: pin }), { logger: silentLogger() });
    try {
      const behind = await startProxyService(_config(_dir(), { auth_addr: front.address, token: await _proxyToken(), ca_pin: pin }), { logger: silentLogger() });
      try {
        await behind.sync.beat();
        assert.ok(behind.sync.connected);
        assert.ok((await _onlineProxies()).some((p) => p.host_id === behind.hostId && p.online));
        assert.ok((front.metrics.stats.connections['auth-passthrough'] ?? 0) >= 2, 'the pin check and the join went through the front proxy');
      } finally {
        await behind.close();
      }
    } finally {
      await front.close();
    }
  });

  it('refuses to start with a wrong CA pin, or with neither a stored identity nor a token', async () => {
    const wrongPin = `sha256:${'0'.repeat(64)}`;
    const dataDir = _dir();
    await assert.rejects(
      startProxyService(_config(dataDir, { auth_addr: auth.server.address, token: await _proxyToken(), ca_pin: wrongPin }), { logger: silentLogger() }),
      (error: unknown) => error instanceof ProxyIdentityError && /does not match --ca-pin/.test(error.message),
    );
    assert.equal(existsSync(proxyIdentityPath(dataDir)), false);
    await assert.rejects(
      startProxyService(_config(_dir(), { auth_addr: auth.server.address }), { logger: silentLogger() }),
      (error: unknown) => error instanceof ProxyIdentityError && /set proxy\.token .* and proxy\.ca_pin/.test(error.message),
    );
  });
});

describe('proxy identity renewal', () => {
  it('renews through the auth API with its own certificate: same host id, new key', async () => {
    const dataDir = _dir();
    const proxy = await startProxyService(_config(dataDir, { auth_addr: auth.server.address, token: await _proxyToken(), ca_pin: pin }), { logger: silentLogger() });
    await proxy.close();
    const current = await readIdentityFile(proxyIdentityPath(dataDir), 'test');
    const connection = connectAuth(auth.server.address, current);
    try {
      const renewed = await renewProxyIdentity(connection.client, current, proxyNames('127.0.0.1'));
      assert.equal(renewed.host_id, current.host_id);
      assert.notEqual(renewed.key_pem, current.key_pem);
      assert.notEqual(new X509Certificate(renewed.cert_pem).serialNumber, new X509Certificate(current.cert_pem).serialNumber);
    } finally {
      connection.close();
    }
  });

  it('serves the renewed certificate to new connections once two thirds of the old one are gone', async () => {
    // 20 s of life, dated back 60 s: past two thirds at once.
    const issue = (ttlMs: number) => auth.server.issueHostIdentity({ hostId: 'proxy-renew', nodeName: 'proxy-renew', systemRoles: ['proxy'], ttlMs, ipAddresses: ['127.0.0.1'] });
    const proxy = await startProxy({ identity: issue(20_000), renewIdentity: async () => issue(3_600_000), authAddr: auth.server.address, listenAddr: '127.0.0.1:0', logger: silentLogger() });
    try {
      await proxy.sync.beat();
      const renewedSerial = new X509Certificate(proxy.credentials.identity.cert_pem).serialNumber;
      const socket = tls.connect({ host: '127.0.0.1', port: Number(proxy.address.split(':').pop()), ca: proxy.credentials.hostCaPems(), ALPNProtocols: ['http/1.1'] });
      await once(socket, 'secureConnect');
      assert.equal(socket.getPeerX509Certificate()?.serialNumber, renewedSerial);
      socket.destroy();
    } finally {
      await proxy.close();
    }
  });
});

describe('postern start with auth and proxy in one process', () => {
  it('serves discovery and reports the proxy ready in /readyz', async () => {
    const dataDir = _dir();
    const config = parseConfig(
      `data_dir: ${JSON.stringify(dataDir)}\ndiag_addr: 127.0.0.1:0\nauth:\n  cluster_name: solo\n  listen_addr: 127.0.0.1:0\nproxy:\n  listen_addr: 127.0.0.1:0\n`,
      path.join(dataDir, 'postern.yaml'),
    );
    const daemon = await startDaemon(config, silentLogger());
    try {
      const proxy = daemon.proxy!;
      const discovery = await webRequest(Number(proxy.address.split(':').pop()), proxy.credentials.hostCaPems(), 'GET', '/v1/discovery');
      assert.equal(discovery.body.cluster_name, 'solo');
      for (let i = 0; i < 50 && !daemon.diag!.readiness().ready; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.deepEqual(daemon.diag!.readiness().components.proxy, { ready: true });
      assert.match(await daemon.diag!.registry.metrics(), /^postern_proxy_connections_total\{protocol="http\/1.1"\} 1$/m);
      assert.ok(existsSync(proxyIdentityPath(dataDir)));
    } finally {
      await daemon.stop();
    }
  });
});

describe('a proxy with a certificate for its public name', () => {
  it('serves proxy.tls_cert_file to clients and still tells them the host CA pin; refuses a key that does not match', async () => {
    const pki = await createTestPki();
    try {
      const dataDir = _dir();
      const files = { tls_cert_file: path.join(pki.dir, 'server.crt'), tls_key_file: path.join(pki.dir, 'server.key') };
      const proxy = await startProxyService(_config(dataDir, { auth_addr: auth.server.address, token: await _proxyToken(), ca_pin: pin, ...files }), { logger: silentLogger() });
      try {
        const discovery = await webRequest(Number(proxy.address.split(':').pop()), [pki.ca.cert], 'GET', '/v1/discovery');
        assert.deepEqual(discovery.body.ca_pins, [pin]);
      } finally {
        await proxy.close();
      }
      await assert.rejects(
        startProxyService(_config(dataDir, { auth_addr: auth.server.address, ...files, tls_key_file: path.join(pki.dir, 'client.key') }), { logger: silentLogger() }),
        (error: unknown) => error instanceof BadInputError && /do not make a usable certificate and key/.test(error.message),
      );
    } finally {
      await pki.cleanup();
    }
  });
});
