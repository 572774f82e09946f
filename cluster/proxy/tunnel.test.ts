import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { AgentTunnel, TunnelRejectedError } from '../../protocols/tunnel/index.ts';
import type { IdentityFile } from '../api/identity-file.ts';
import { startTestAuth, type TestAuth } from '../../test/fixtures/auth.ts';
import { TunnelNotFoundError } from './errors.ts';
import { closedAfter, startTestProxy, tlsConnect, type TestProxy } from './testdata/proxy-fixture.ts';

let t: TestProxy;
let other: TestAuth;

before(async () => {
  [t, other] = await Promise.all([startTestProxy(), startTestAuth({ clusterName: 'beta' })]);
});
after(async () => {
  await Promise.all([t.stop(), other.stop()]);
});

/** An agent: TLS with its host identity and ALPN postern-tunnel, then the HTTP/2 server of the tunnel. */
async function _agent(identity: IdentityFile, onStream: (service: string, stream: Duplex) => void): Promise<AgentTunnel> {
  const socket = await tlsConnect(t.port, identity.ca_pems, { alpn: ['postern-tunnel'], identity });
  assert.equal(socket.alpnProtocol, 'postern-tunnel');
  return new AgentTunnel(socket, {
    onStream: ({ service, stream }) => {
      if (service === 'denied') throw new TunnelRejectedError(403, 'no such luck');
      onStream(service, stream);
    },
  });
}

async function _waitFor(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function _readAll(stream: Duplex): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function _auditTypes(): Promise<Array<{ type: string; outcome: string; reason?: string; identity: { host?: string } }>> {
  const { eventsJson } = await t.auth.connectAs(['admin']).client.searchAudit({ types: ['tunnel.open', 'tunnel.refused'], limit: 100, order: 'asc' });
  return eventsJson.map((line) => JSON.parse(line));
}

describe('reverse tunnels through the proxy', () => {
  it('accepts an agent with a host certificate and carries a dial byte-exact, both ways, with half-close', async () => {
    const identity = t.hostIdentity(['node'], 'node-echo');
    const agent = await _agent(identity, (_service, stream) => void stream.pipe(stream));
    try {
      await _waitFor(() => t.proxy.registry.has('node-echo'), 'the tunnel to register');
      assert.deepEqual(t.proxy.registry.list().map((i) => [i.hostId, i.nodeName, i.systemRoles]), [['node-echo', 'node-echo', ['node']]]);
      const payload = randomBytes(3 * 1024 * 1024 + 17);
      const stream = await t.proxy.registry.dial('node-echo', 'ssh', 'identity-blob');
      const echoed = _readAll(stream);
      stream.end(payload);
      assert.ok((await echoed).equals(payload), 'the echo differs from what was sent');
      await assert.rejects(t.proxy.registry.dial('node-echo', 'denied', 'x'), (error: unknown) => error instanceof TunnelRejectedError && error.status === 403);
      assert.deepEqual([t.proxy.metrics.stats.dials.ok, t.proxy.metrics.stats.dials.rejected], [1, 1]);
      const metrics = await t.proxy.metrics.dialSeconds.get();
      assert.equal(metrics.values.find((v) => v.metricName === 'postern_proxy_tunnel_dial_seconds_count')?.value, 2);
    } finally {
      agent.destroy();
    }
    await _waitFor(() => !t.proxy.registry.has('node-echo'), 'the closed tunnel to leave the registry');
    await assert.rejects(t.proxy.registry.dial('node-echo', 'ssh', 'x'), TunnelNotFoundError);
    const events = (await _auditTypes()).filter((e) => e.identity.host === 'node-echo');
    assert.deepEqual(events.map((e) => [e.type, e.outcome]), [['tunnel.open', 'allow']]);
  });

  it('prefers the newest of two tunnels from one host and falls back when it closes', async () => {
    const identity = t.hostIdentity(['node'], 'node-twice');
    const answer = (name: string) => (_service: string, stream: Duplex) => { stream.end(name); stream.resume(); };
    const first = await _agent(identity, answer('first'));
    await _waitFor(() => t.proxy.registry.list().some((i) => i.hostId === 'node-twice'), 'the first tunnel');
    const second = await _agent(identity, answer('second'));
    try {
      await _waitFor(() => t.proxy.registry.list().filter((i) => i.hostId === 'node-twice').length === 2, 'the second tunnel');
      const read = async () => (await _readAll(await t.proxy.registry.dial('node-twice', 'app:x', ''))).toString();
      assert.equal(await read(), 'second');
      second.destroy();
      await _waitFor(() => t.proxy.registry.list().filter((i) => i.hostId === 'node-twice').length === 1, 'the second tunnel to go');
      assert.equal(await read(), 'first');
    } finally {
      first.destroy();
      second.destroy();
    }
  });

  it('refuses a tunnel without a client certificate: closed, logged and counted, not registered', async () => {
    const socket = await tlsConnect(t.port, t.caPems, { alpn: ['postern-tunnel'] });
    assert.ok((await closedAfter(socket)) < 2_500);
    assert.equal(t.proxy.metrics.stats.rejected['tunnel-no-certificate'], 1);
    assert.equal(t.proxy.registry.size, 0);
    const logged = t.logs().find((l) => l.msg === 'reverse tunnel refused' && l.reason === 'tunnel-no-certificate');
    assert.match(String(logged?.why), /presented no client certificate/);
  });

  it("refuses a host certificate from another cluster's CA and audits the refusal", async () => {
    const foreign = other.server.issueHostIdentity({ hostId: 'intruder', nodeName: 'intruder', systemRoles: ['node'], ttlMs: 3_600_000 });
    // The agent trusts the proxy (right CA) but presents a certificate of cluster beta.
    const socket = await tlsConnect(t.port, t.caPems, { alpn: ['postern-tunnel'], identity: foreign });
    assert.ok((await closedAfter(socket)) < 2_500);
    assert.equal(t.proxy.metrics.stats.rejected['tunnel-bad-certificate'], 1);
    assert.equal(t.proxy.registry.size, 0);
    assert.ok(t.logs().some((l) => l.msg === 'reverse tunnel refused' && l.reason === 'tunnel-bad-certificate' && /not a CA trusted here/.test(String(l.why))));
    let refused: Awaited<ReturnType<typeof _auditTypes>> = [];
    for (let i = 0; i < 50 && refused.length === 0; i++) {
      refused = (await _auditTypes()).filter((e) => e.type === 'tunnel.refused');
      if (refused.length === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(refused.length, 1);
    assert.equal(refused[0]!.outcome, 'deny');
    assert.match(refused[0]!.reason ?? '', /^tunnel-bad-certificate: certificate .* was issued by .*beta.*not a CA trusted here/);
  });

  it('refuses a host of this cluster whose roles may not hold a tunnel', async () => {
    const admin = t.hostIdentity(['admin'], 'local-admin');
    const socket = await tlsConnect(t.port, t.caPems, { alpn: ['postern-tunnel'], identity: admin });
    await closedAfter(socket);
    assert.equal(t.proxy.metrics.stats.rejected['tunnel-role'], 1);
    assert.equal(t.proxy.registry.size, 0);
  });

  it('reports tunnels and dials in the Prometheus metrics', async () => {
    const identity = t.hostIdentity(['node'], 'node-metrics');
    const agent = await _agent(identity, (_s, stream) => void stream.pipe(stream));
    try {
      await _waitFor(() => t.proxy.registry.has('node-metrics'), 'the tunnel');
      const stream = await t.proxy.registry.dial('node-metrics', 'ssh', '');
      stream.end('ping');
      await _readAll(stream);
      const text = await _metricsText();
      assert.match(text, /^postern_proxy_tunnels 1$/m);
      assert.match(text, /^postern_proxy_tunnel_dials_total\{outcome="ok"\} [1-9]/m);
      assert.match(text, /^postern_proxy_rejected_connections_total\{reason="tunnel-no-certificate"\} 1$/m);
      assert.match(text, /^postern_proxy_connections_total\{protocol="postern-tunnel"\} [1-9]/m);
      const bytesIn = Number(/^postern_proxy_bytes_total\{path="tunnel",direction="in"\} (\d+)$/m.exec(text)?.[1]);
      assert.ok(bytesIn > 0, text);
    } finally {
      agent.destroy();
    }
    await _waitFor(() => t.proxy.registry.size === 0, 'the tunnel to go');
    assert.match(await _metricsText(), /^postern_proxy_tunnels 0$/m);
  });
});

function _metricsText(): Promise<string> {
  return t.proxy.metricsRegistry.metrics();
}
