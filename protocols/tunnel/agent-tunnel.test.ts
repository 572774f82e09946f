import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { AccessDeniedError } from '../errors.ts';
import { AgentTunnel, type DialHandler } from './agent-tunnel.ts';
import { decodeReason } from './headers.ts';
import { createTestPki, type TestPki } from './testdata/test-pki.ts';

let pki: TestPki;
before(async () => { pki = await createTestPki(); });
after(async () => { await pki.cleanup(); });

/** An AgentTunnel facing a bare HTTP/2 client, so tests can send what ProxyTunnel never would. */
async function _agentWithRawClient(onStream: DialHandler): Promise<{ agent: AgentTunnel; client: http2.ClientHttp2Session; close(): void }> {
  const server = tls.createServer({ cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert, requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['postern-tunnel'] });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'secureConnection') as Promise<[tls.TLSSocket]>;
  const socket = tls.connect({
    host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, servername: 'localhost',
    ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key, ALPNProtocols: ['postern-tunnel'],
  });
  await once(socket, 'secureConnect');
  const [proxySocket] = await accepted;
  server.close();
  const agent = new AgentTunnel(socket, { onStream });
  const client = http2.connect('https://agent', { createConnection: () => proxySocket });
  return { agent, client, close: () => { client.destroy(); agent.destroy(); } };
}

function _request(client: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders): Promise<{ status: number; reason: string; stream: http2.ClientHttp2Stream }> {
  const stream = client.request(headers, { endStream: false });
  stream.on('error', () => {});
  return (once(stream, 'response') as Promise<[http2.IncomingHttpHeaders]>).then(([h]) => ({
    status: Number(h[':status']), reason: decodeReason(h['postern-reason']), stream,
  }));
}

describe('AgentTunnel', () => {
  it('answers requests that are not dials with 404/400 and never calls the handler', async (t) => {
    let calls = 0;
    const { client, close } = await _agentWithRawClient(() => { calls++; });
    t.after(close);
    const wrongPath = await _request(client, { ':method': 'POST', ':path': '/admin', 'postern-service': 'ssh' });
    assert.equal(wrongPath.status, 404);
    const wrongMethod = await _request(client, { ':method': 'GET', ':path': '/dial', 'postern-service': 'ssh' });
    assert.equal(wrongMethod.status, 404);
    const noService = await _request(client, { ':method': 'POST', ':path': '/dial' });
    assert.deepEqual([noService.status, noService.reason], [400, 'missing or malformed postern-service header']);
    const badService = await _request(client, { ':method': 'POST', ':path': '/dial', 'postern-service': '../etc' });
    assert.equal(badService.status, 400);
    assert.equal(calls, 0);
  });

  it('maps PosternError codes to statuses and resets a stream whose handler fails after writing', async (t) => {
    const { client, agent, close } = await _agentWithRawClient(async ({ service, stream }) => {
      if (service === 'denied') throw new AccessDeniedError('role dev may not reach db prod');
      stream.write('partial answer');
      throw new Error('upstream went away');
    });
    t.after(close);
    const denied = await _request(client, { ':method': 'POST', ':path': '/dial', 'postern-service': 'denied' });
    assert.deepEqual([denied.status, denied.reason], [403, 'role dev may not reach db prod']);
    denied.stream.end(); // as ProxyTunnel does: both sides ended, the stream closes without a reset
    await new Promise((resolve) => denied.stream.once('close', resolve));
    assert.equal(denied.stream.rstCode, http2.constants.NGHTTP2_NO_ERROR);

    const late = await _request(client, { ':method': 'POST', ':path': '/dial', 'postern-service': 'late' });
    assert.equal(late.status, 200, 'writing implied acceptance');
    const chunks: Buffer[] = [];
    late.stream.on('data', (d: Buffer) => chunks.push(d));
    await new Promise((resolve) => late.stream.once('close', resolve));
    assert.equal(String(Buffer.concat(chunks)), 'partial answer');
    assert.equal(late.stream.rstCode, http2.constants.NGHTTP2_INTERNAL_ERROR, 'reset, so the caller cannot mistake it for a complete answer');
    assert.equal(late.stream.readableEnded, false, 'no END_STREAM before the reset');
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(agent.activeStreams, 0);
  });
});
