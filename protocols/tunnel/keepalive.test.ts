import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { once } from 'node:events';
import type { Http2Session } from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { TunnelClosedError } from './errors.ts';
import { startKeepalive } from './keepalive.ts';
import { ProxyTunnel } from './proxy-tunnel.ts';
import { createTestPki, type TestPki } from './testdata/test-pki.ts';
import { createTunnelPair } from './testdata/tunnel-pair.ts';

let pki: TestPki;
before(async () => { pki = await createTestPki(); });
after(async () => { await pki.cleanup(); });

describe('startKeepalive (fake session, mocked timers)', () => {
  function _fake(): { session: Http2Session; socket: { bytesRead: number }; acks: Array<() => void> } {
    const acks: Array<() => void> = [];
    const session = { destroyed: false, ping: (cb: () => void) => { acks.push(cb); return true; } } as unknown as Http2Session;
    return { session, socket: { bytesRead: 0 }, acks };
  }

  it('declares the peer dead when a PING is unanswered past the deadline and nothing arrives', (t) => {
    t.mock.timers.enable({ apis: ['setInterval', 'setTimeout'] });
    const { session, socket, acks } = _fake();
    let dead = 0;
    startKeepalive(session, socket, { intervalMs: 1_000, timeoutMs: 500 }, () => dead++);
    t.mock.timers.tick(1_000);
    assert.equal(acks.length, 1);
    t.mock.timers.tick(499);
    assert.equal(dead, 0);
    t.mock.timers.tick(1);
    assert.equal(dead, 1);
    t.mock.timers.tick(10_000);
    assert.equal(dead, 1, 'reported once, then stopped');
  });

  it('keeps a peer that acknowledges, and one whose ACK is queued behind data still arriving', (t) => {
    t.mock.timers.enable({ apis: ['setInterval', 'setTimeout'] });
    const { session, socket, acks } = _fake();
    let dead = 0;
    const stop = startKeepalive(session, socket, { intervalMs: 1_000, timeoutMs: 500 }, () => dead++);
    for (let i = 0; i < 5; i++) {
      t.mock.timers.tick(1_000);
      acks.shift()!();
    }
    t.mock.timers.tick(1_000); // a PING goes out; its ACK is late but bytes keep coming
    for (let i = 0; i < 4; i++) {
      socket.bytesRead += 16_384;
      t.mock.timers.tick(500);
    }
    assert.equal(dead, 0);
    t.mock.timers.tick(500); // nothing arrived during this deadline
    assert.equal(dead, 1);
    stop();
  });
});

describe('tunnel keepalive over real TLS', () => {
  it('closes both ends with keepalive-timeout when the network hangs', async (t) => {
    const options = { keepaliveIntervalMs: 100, keepaliveTimeoutMs: 300 };
    const pair = await createTunnelPair(pki, {
      agent: { ...options, onStream: ({ stream }) => void stream.pipe(stream) },
      proxy: options,
      relay: true,
    });
    t.after(() => pair.close());
    const stream = await pair.proxy.dial('echo', 'alice');
    const streamClosed = once(stream, 'close');
    const proxyClosed = once(pair.proxy, 'close') as Promise<[TunnelClosedError]>;
    const agentClosed = once(pair.agent, 'close') as Promise<[TunnelClosedError]>;
    const frozenAt = Date.now();
    pair.relay!.freeze();
    const [[proxyReason], [agentReason]] = await Promise.all([proxyClosed, agentClosed]);
    const elapsed = Date.now() - frozenAt;
    assert.equal(proxyReason.reason, 'keepalive-timeout');
    assert.equal(agentReason.reason, 'keepalive-timeout');
    // Deadline: interval + timeout = 400 ms; the slack is for a loaded CI machine.
    assert.ok(elapsed >= 250 && elapsed <= 400 + 1_000, `detected after ${elapsed} ms (deadline 400 ms)`);
    await streamClosed;
  });

  it('notices a SIGKILLed agent process within the keepalive deadline', async (t) => {
    const server = tls.createServer({ cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert, requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['postern-tunnel'] });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const accepted = once(server, 'secureConnection') as Promise<[tls.TLSSocket]>;
    const child = fork(fileURLToPath(new URL('./testdata/agent-child.ts', import.meta.url)), [String((server.address() as net.AddressInfo).port), pki.dir]);
    t.after(() => child.kill('SIGKILL'));
    await once(child, 'message');
    const [socket] = await accepted;
    server.close();
    const proxy = new ProxyTunnel(socket, { keepaliveIntervalMs: 200, keepaliveTimeoutMs: 300 });
    t.after(() => proxy.destroy());
    const stream = await proxy.dial('echo', 'alice');
    stream.write('ping');
    assert.equal(String((await once(stream, 'data'))[0]), 'ping');

    const closed = once(proxy, 'close') as Promise<[TunnelClosedError]>;
    const killedAt = Date.now();
    child.kill('SIGKILL');
    const [reason] = await closed;
    const elapsed = Date.now() - killedAt;
    assert.ok(elapsed < 200 + 300 + 1_000, `detected after ${elapsed} ms (deadline 500 ms, plus slack for a loaded machine)`);
    assert.ok(['closed-by-peer', 'socket-error', 'keepalive-timeout'].includes(reason.reason), reason.reason);
    assert.equal(proxy.closed, true);
  });
});
