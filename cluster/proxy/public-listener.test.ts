import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { connectAuth } from '../api/auth-client.ts';
import { closedAfter, startTestProxy, webRequest, type TestProxy } from './testdata/proxy-fixture.ts';

let t: TestProxy;
const peekTimeoutMs = 300;

before(async () => {
  t = await startTestProxy({ proxy: { peekTimeoutMs } });
});
after(async () => t.stop());

async function _raw(): Promise<net.Socket> {
  const socket = net.connect(t.port, '127.0.0.1');
  await once(socket, 'connect');
  return socket;
}

async function _discoveryWorks(): Promise<void> {
  const answer = await webRequest(t.port, t.caPems, 'GET', '/v1/discovery');
  assert.equal(answer.status, 200);
}

describe('the public port', () => {
  it('passes SNI auth.postern through to the auth gRPC API: mutual TLS end to end', async () => {
    const identity = t.hostIdentity(['node'], 'node-grpc');
    const through = connectAuth(t.proxy.address, identity);
    try {
      const status = await through.client.status({});
      assert.equal(status.clusterName, 'alpha');
      // The caller auth saw is the agent, not the proxy: TLS was not terminated in between.
      assert.equal(status.caller, 'host node-grpc (node)');
    } finally {
      through.close();
    }
    assert.ok((t.proxy.metrics.stats.connections['auth-passthrough'] ?? 0) >= 1);
  });

  it('lets an anonymous caller reach auth through the port (a new host joining by token)', async () => {
    const anonymous = connectAuth(t.proxy.address, { key_pem: '', cert_pem: '', ca_pems: t.caPems });
    try {
      const { authorities } = await anonymous.client.exportAuthorities({ kind: 'host' });
      assert.equal(authorities[0]?.cluster, 'alpha');
      await assert.rejects(anonymous.client.status({}), { code: 'PST_UNAUTHENTICATED' });
    } finally {
      anonymous.close();
    }
  });

  it('drops garbage at once, without waiting for the timeout, and keeps serving', async () => {
    const socket = await _raw();
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.ok((await closedAfter(socket)) < peekTimeoutMs);
    assert.equal(t.proxy.metrics.stats.rejected.garbage, 1);
    await _discoveryWorks();
  });

  it('drops half a ClientHello after the timeout, and a malformed one at once', async () => {
    const hello = await _captureHello();
    const half = await _raw();
    half.write(hello.subarray(0, Math.floor(hello.length / 2)));
    const waited = await closedAfter(half);
    assert.ok(waited >= peekTimeoutMs - 50 && waited < peekTimeoutMs + 1_000, `closed after ${waited} ms`);
    assert.equal(t.proxy.metrics.stats.rejected['sniff-timeout'], 1);

    const malformed = Buffer.from(hello);
    malformed[9] = 0x02; // legacy_version 2.x
    const bad = await _raw();
    bad.write(malformed);
    assert.ok((await closedAfter(bad)) < peekTimeoutMs);
    assert.equal(t.proxy.metrics.stats.rejected['malformed-client-hello'], 1);

    const silent = await _raw();
    await closedAfter(silent);
    assert.equal(t.proxy.metrics.stats.rejected['sniff-timeout'], 2);
    await _discoveryWorks();
  });

  it('survives a storm of random bytes and resets', async () => {
    const sockets = await Promise.all(Array.from({ length: 40 }, () => _raw()));
    sockets.forEach((socket, i) => {
      socket.on('error', () => {});
      if (i % 3 === 0) socket.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x20, 0x01, i]));
      else if (i % 3 === 1) socket.write(Buffer.from([i, 1, 2, 3]));
      socket.resetAndDestroy();
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    await _discoveryWorks();
  });

  it('closes SSH openings (the jump server, without an SSH host certificate) cleanly with a log line; answers PostgreSQL SSLRequests (the database route)', async () => {
    const ssh = await _raw();
    ssh.write('SSH-2.0-OpenSSH_9.2\r\n');
    await closedAfter(ssh);
    assert.equal(t.proxy.metrics.stats.rejected['ssh-jump-no-host-key'], 1);
    assert.ok(t.logs().some((l) => /ssh jump connection refused: this proxy has no SSH host certificate/.test(String(l.msg))));
    const pg = await _raw();
    pg.write(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]));
    const [answer] = (await once(pg, 'data')) as [Buffer];
    assert.equal(answer.toString(), 'S');
    pg.destroy();
  });

  it('fails the handshake for a client offering only ALPNs nobody serves', async () => {
    const socket = tls.connect({ host: '127.0.0.1', port: t.port, ca: t.caPems, ALPNProtocols: ['imap'] });
    const [error] = (await once(socket, 'error')) as [Error];
    assert.match(error.message, /no application protocol|alert/i);
  });

  it('counts connections by protocol in the Prometheus metrics', async () => {
    const text = await t.proxy.metricsRegistry.metrics();
    assert.match(text, /^postern_proxy_connections_total\{protocol="auth-passthrough"\} [1-9]/m);
    assert.match(text, /^postern_proxy_connections_total\{protocol="http\/1.1"\} [1-9]/m);
    assert.match(text, /^postern_proxy_rejected_connections_total\{reason="garbage"\} [1-9]/m);
    assert.match(text, /^postern_proxy_bytes_total\{path="auth-passthrough",direction="in"\} [1-9]/m);
  });
});

/** A real ClientHello, as Node sends it to this proxy. */
async function _captureHello(): Promise<Buffer> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const client = tls.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, servername: 'proxy.test', ALPNProtocols: ['h2'] });
  client.on('error', () => {});
  const [socket] = await accepted;
  const [chunk] = (await once(socket, 'data')) as [Buffer];
  client.destroy();
  socket.destroy();
  server.close();
  return chunk;
}
