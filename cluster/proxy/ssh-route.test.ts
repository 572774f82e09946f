import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { AgentTunnel } from '../../protocols/tunnel/index.ts';
import type { IdentityFile } from '../api/identity-file.ts';
import { clientKeys, startTestProxy, tlsConnect, webRequest, type TestProxy } from './testdata/proxy-fixture.ts';

let t: TestProxy;
let user: { key_pem: string; cert_pem: string };
const password = 'correct horse battery staple';

before(async () => {
  t = await startTestProxy();
  const admin = t.auth.connectAs(['admin']).client;
  const { signupToken } = await admin.createUser({ name: 'alice', roles: ['access'], logins: ['alice'] });
  const post = (route: string, body: object) => webRequest(t.port, t.caPems, 'POST', route, body);
  assert.equal((await post('/v1/signup', { token: signupToken, password })).status, 200);
  const keys = clientKeys();
  const login = await post('/v1/login', { user: 'alice', password, ssh_public_key: keys.sshLine, tls_public_key: keys.tlsPub, ttl_seconds: 3_600 });
  assert.equal(login.status, 200, JSON.stringify(login.body));
  user = { key_pem: keys.tlsKeyPem, cert_pem: login.body.tls_certificate_pem };
  await _waitFor(() => t.proxy.credentials.userCaPems().length > 0, 'the proxy to load the user CA');
});
after(async () => {
  await t.stop();
});

async function _waitFor(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A fake agent whose `ssh` service echoes bytes; records the identity headers it got. */
async function _agent(identity: IdentityFile): Promise<{ tunnel: AgentTunnel; identities: string[] }> {
  const identities: string[] = [];
  const socket = await tlsConnect(t.port, identity.ca_pems, { alpn: ['postern-tunnel'], identity });
  const tunnel = new AgentTunnel(socket, {
    onStream: ({ service, stream, identity: caller }: { service: string; stream: Duplex; identity: string }) => {
      assert.equal(service, 'ssh');
      identities.push(caller);
      stream.pipe(stream);
    },
  });
  await _waitFor(() => t.proxy.registry.has(identity.host_id!), 'the tunnel to register');
  return { tunnel, identities };
}

/** Connects with ALPN postern-ssh, sends `request` (plus `extra` bytes in the same write), reads the answer line. */
async function _route(request: string, options: { identity?: { key_pem: string; cert_pem: string }; extra?: Buffer } = {}): Promise<{ line: string; socket: tls.TLSSocket; rest: Buffer }> {
  const socket = await tlsConnect(t.port, t.caPems, { alpn: ['postern-ssh'], identity: options.identity });
  assert.equal(socket.alpnProtocol, 'postern-ssh');
  socket.on('error', () => {});
  socket.write(Buffer.concat([Buffer.from(request + '\n'), options.extra ?? Buffer.alloc(0)]));
  let buffered = Buffer.alloc(0);
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const newline = buffered.indexOf(0x0a);
      if (newline < 0) return;
      socket.off('data', onData);
      socket.pause();
      resolve({ line: buffered.subarray(0, newline).toString('utf8'), socket, rest: buffered.subarray(newline + 1) });
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error(`closed without an answer line (got ${JSON.stringify(buffered.toString())})`)));
  });
}

async function _echo(socket: tls.TLSSocket, first: Buffer, payload: Buffer): Promise<Buffer> {
  const chunks: Buffer[] = [first];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.resume();
  socket.write(payload);
  await _waitFor(() => Buffer.concat(chunks).length >= payload.length, 'the echo', 10_000);
  return Buffer.concat(chunks);
}

describe('ssh route (ALPN postern-ssh)', () => {
  it('routes a user by host id to the agent\'s ssh service, byte-exact, with early bytes kept and the certificate passed on', async () => {
    const agent = await _agent(t.hostIdentity(['node'], 'host-echo'));
    try {
      const banner = Buffer.from('SSH-2.0-test\r\n');
      const { line, socket, rest } = await _route(JSON.stringify({ node: 'host-echo', port: 22, login: 'alice' }), { identity: user, extra: banner });
      assert.equal(line, 'ok');
      const payload = randomBytes(256 * 1024);
      const echoed = await _echo(socket, rest, payload);
      assert.ok(echoed.equals(Buffer.concat([banner, payload])), 'the echo differs from what was sent');
      socket.destroy();
      assert.equal(agent.identities.length, 1);
      assert.equal(Buffer.from(agent.identities[0]!, 'base64').toString('utf8').trim(), user.cert_pem.trim());
    } finally {
      agent.tunnel.destroy();
    }
  });

  it('resolves a node name to its host id, and refuses a name two online hosts share with their ids', async () => {
    const web = await _agent(t.auth.server.issueHostIdentity({ hostId: 'h-web-1', nodeName: 'web-1', systemRoles: ['node'], ttlMs: 3_600_000 }));
    const twinA = await _agent(t.auth.server.issueHostIdentity({ hostId: 'h-twin-a', nodeName: 'twin', systemRoles: ['node'], ttlMs: 3_600_000 }));
    const twinB = await _agent(t.auth.server.issueHostIdentity({ hostId: 'h-twin-b', nodeName: 'twin', systemRoles: ['node'], ttlMs: 3_600_000 }));
    try {
      const { line, socket, rest } = await _route(JSON.stringify({ node: 'web-1', port: 22 }), { identity: user });
      assert.equal(line, 'ok');
      assert.ok((await _echo(socket, rest, Buffer.from('hello'))).equals(Buffer.from('hello')));
      socket.destroy();
      assert.equal(web.identities.length, 1);

      const twin = await _route(JSON.stringify({ node: 'twin' }), { identity: user });
      assert.match(twin.line, /^error 2 online nodes are named "twin" \(host ids h-twin-[ab], h-twin-[ab]\); connect by host id$/);
      twin.socket.destroy();
      const byId = await _route(JSON.stringify({ node: 'h-twin-b' }), { identity: user });
      assert.equal(byId.line, 'ok');
      byId.socket.destroy();
    } finally {
      for (const agent of [web, twinA, twinB]) agent.tunnel.destroy();
    }
  });

  it('refuses without a certificate, with a host certificate, for an unknown node and for a malformed request', async () => {
    const noCert = await _route(JSON.stringify({ node: 'anything' }));
    assert.match(noCert.line, /^error no client certificate was presented/);
    const host = await _route(JSON.stringify({ node: 'anything' }), { identity: t.hostIdentity(['node'], 'sneaky-host') });
    // Checked against the user CA only, a host certificate has no trusted issuer.
    assert.match(host.line, /^error certificate "O=node, CN=sneaky-host" .*was issued by "O=Postern, OU=host, CN=alpha", which is not a CA trusted here/);
    const unknown = await _route(JSON.stringify({ node: 'nowhere', port: 22, login: 'alice' }), { identity: user });
    assert.equal(unknown.line, 'error no node is named "nowhere" or has that host id in cluster alpha; list nodes with psh ls');
    const bad = await _route('not json', { identity: user });
    assert.match(bad.line, /^error the request must be one JSON line/);
    for (const r of [noCert, host, unknown, bad]) r.socket.destroy();

    const rejected = t.proxy.metrics.stats.rejected;
    assert.deepEqual([rejected['ssh-no-certificate'], rejected['ssh-bad-certificate'], rejected['ssh-unknown-node'], rejected['ssh-bad-request']], [1, 1, 1, 1]);
    const admin = t.auth.connectAs(['admin']).client;
    let events: Array<{ identity: { user?: string }; resource?: { name: string }; reason?: string; fields: { login?: string } }> = [];
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline) {
      const { eventsJson } = await admin.searchAudit({ types: ['access.denied'], limit: 100, order: 'asc' });
      events = eventsJson.map((line) => JSON.parse(line));
      if (events.some((e) => e.resource?.name === 'nowhere')) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const denied = events.find((e) => e.resource?.name === 'nowhere');
    assert.ok(denied, 'no access.denied event for the unknown node');
    assert.equal(denied.identity.user, 'alice');
    assert.equal(denied.fields.login, 'alice');
    assert.match(denied.reason ?? '', /^ssh-unknown-node: /);
  });
});
