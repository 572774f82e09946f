import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { agentSocketWire, connectAgentSocket } from './agent-socket.ts';
import { AgentTunnel } from './agent-tunnel.ts';
import { ProxyTunnel } from './proxy-tunnel.ts';
import { createTestPki, type TestPki } from './testdata/test-pki.ts';

let pki: TestPki;
before(async () => { pki = await createTestPki(); });
after(async () => { await pki.cleanup(); });

async function _tlsServer(onSecure: (socket: tls.TLSSocket) => void, options: tls.TlsOptions = {}): Promise<{ port: number; close(): void }> {
  const server = tls.createServer({ cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert, requestCert: true, rejectUnauthorized: true, ...options }, onSecure);
  server.on('tlsClientError', () => {});
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

function _clientOptions(port: number): tls.ConnectionOptions {
  return { host: '127.0.0.1', port, servername: 'localhost', ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key };
}

describe('connectAgentSocket', () => {
  it('carries bytes both ways byte-exact over mutual TLS, in reads that reuse one buffer', async (t) => {
    // The server echoes; 8 MiB of a pattern that differs per 64 KiB catches a reused
    // read buffer handed on before it was copied.
    const server = await _tlsServer((s) => s.pipe(s));
    t.after(() => server.close());
    const socket = connectAgentSocket(_clientOptions(server.port));
    await once(socket, 'secureConnect');
    assert.ok(agentSocketWire(socket), 'the socket has a decoupled wire under TLS');
    assert.equal(socket.authorized, true);
    const sent = Buffer.alloc(8 * 1024 * 1024);
    for (let i = 0; i < sent.length; i += 4) sent.writeUInt32BE((i * 2654435761) >>> 0, i);
    const received: Buffer[] = [];
    let bytes = 0;
    const done = new Promise<void>((resolve) => socket.on('data', (chunk: Buffer) => {
      received.push(chunk);
      bytes += chunk.length;
      if (bytes === sent.length) resolve();
    }));
    socket.write(sent);
    await done;
    assert.ok(Buffer.concat(received).equals(sent));
    socket.destroy();
  });

  it('closes the TCP connection when the TLS socket is destroyed', async (t) => {
    let onAccepted: (s: tls.TLSSocket) => void = () => {};
    const accepted = new Promise<tls.TLSSocket>((resolve) => { onAccepted = resolve; });
    const server = await _tlsServer((s) => onAccepted(s));
    t.after(() => server.close());
    const socket = connectAgentSocket(_clientOptions(server.port));
    await once(socket, 'secureConnect');
    const serverSide = await accepted;
    serverSide.on('error', () => {});
    const closed = once(serverSide, 'close');
    socket.destroy();
    await closed;
  });

  it('fails with the connect error when nothing listens', async () => {
    const probe = net.createServer();
    probe.listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const { port } = probe.address() as net.AddressInfo;
    probe.close();
    await once(probe, 'close');
    const socket = connectAgentSocket(_clientOptions(port));
    const [err] = (await once(socket, 'error')) as [NodeJS.ErrnoException];
    assert.equal(err.code, 'ECONNREFUSED');
  });

  it('still refuses a server whose certificate the CA did not issue', async (t) => {
    const other = await createTestPki();
    t.after(() => other.cleanup());
    const server = await _tlsServer(() => {}, { cert: other.server.cert, key: other.server.key });
    t.after(() => server.close());
    const socket = connectAgentSocket(_clientOptions(server.port));
    const [err] = (await once(socket, 'error')) as [NodeJS.ErrnoException];
    assert.match(String(err.code), /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|UNABLE_TO_GET_ISSUER/);
  });

  it('lets AgentTunnel run its HTTP/2 session on the TLS socket natively (no JS reads of TLS), and carries dials', async (t) => {
    let onAccepted: (s: tls.TLSSocket) => void = () => {};
    const accepted = new Promise<tls.TLSSocket>((resolve) => { onAccepted = resolve; });
    const server = await _tlsServer((s) => onAccepted(s), { ALPNProtocols: ['postern-tunnel'] });
    t.after(() => server.close());
    const dialled = async (connect: (o: tls.ConnectionOptions) => tls.TLSSocket): Promise<{ socket: tls.TLSSocket; agent: AgentTunnel; proxy: ProxyTunnel }> => {
      const socket = connect({ ..._clientOptions(server.port), ALPNProtocols: ['postern-tunnel'] });
      await once(socket, 'secureConnect');
      const agent = new AgentTunnel(socket, { onStream: ({ stream }) => void stream.pipe(stream) });
      const proxy = new ProxyTunnel(await accepted);
      return { socket, agent, proxy };
    };
    const fast = await dialled(connectAgentSocket);
    t.after(() => { fast.proxy.destroy(); fast.agent.destroy(); });
    assert.equal(fast.socket.listenerCount('data'), 0, 'nothing reads the TLS socket in JS: the session consumes it natively');
    const stream = await fast.proxy.dial('echo', 'someone');
    stream.end('through the tunnel');
    const echoed: Buffer[] = [];
    for await (const chunk of stream) echoed.push(chunk as Buffer);
    assert.equal(String(Buffer.concat(echoed)), 'through the tunnel');
  });
});
