import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { BadInputError, NotFoundError } from '../errors.ts';
import type { DialHandler } from './agent-tunnel.ts';
import { TunnelClosedError, TunnelDialError, TunnelDialTimeoutError, TunnelRejectedError } from './errors.ts';
import { pipeBidirectional } from './pipe-bidirectional.ts';
import { createTestPki, type TestPki } from './testdata/test-pki.ts';
import { createTunnelPair, type TunnelPair } from './testdata/tunnel-pair.ts';

const MiB = 1024 * 1024;
let pki: TestPki;
let echoServer: net.Server;
let echoPort: number;
let resetServer: net.Server;
let resetPort: number;

before(async () => {
  pki = await createTestPki();
  echoServer = net.createServer({ allowHalfOpen: true }, (s) => s.on('error', () => {}).pipe(s));
  echoServer.listen(0, '127.0.0.1');
  await once(echoServer, 'listening');
  echoPort = (echoServer.address() as net.AddressInfo).port;
  resetServer = net.createServer((s) => {
    s.on('error', () => {});
    s.write('first half of the answer', () => setTimeout(() => s.resetAndDestroy(), 20));
  });
  resetServer.listen(0, '127.0.0.1');
  await once(resetServer, 'listening');
  resetPort = (resetServer.address() as net.AddressInfo).port;
});
after(async () => {
  echoServer.close();
  resetServer.close();
  await pki.cleanup();
});

const services: DialHandler = async ({ service, identity, headers, stream }) => {
  switch (service) {
    case 'echo': {
      const target = net.connect({ port: echoPort, host: '127.0.0.1', allowHalfOpen: true });
      await once(target, 'connect');
      void pipeBidirectional(stream, target);
      return;
    }
    case 'full-duplex': {
      // Sends as much as it receives, while it receives: bulk data both ways at once.
      const total = Number(headers['postern-bytes']);
      let got = 0;
      stream.on('data', (d: Buffer) => { got += d.length; });
      stream.on('end', () => { received.push(`agent got ${got}`); });
      void _writeBulk(stream, total, 0xa5);
      return;
    }
    case 'whoami':
      stream.end(JSON.stringify({ identity, headers }));
      return;
    case 'count-then-reply': {
      let bytes = 0;
      stream.on('data', (d: Buffer) => { bytes += d.length; });
      stream.on('end', () => stream.end(`got ${bytes} bytes`));
      return;
    }
    case 'speak-first':
      stream.end('hello from agent');
      stream.on('data', (d: Buffer) => { received.push(String(d)); });
      stream.on('end', () => { received.push('<end>'); });
      return;
    case 'reset-after-data': {
      // A target that sends part of an answer, then dies with a TCP reset.
      const target = net.connect({ port: resetPort, host: '127.0.0.1', allowHalfOpen: true });
      await once(target, 'connect');
      void pipeBidirectional(stream, target);
      return;
    }
    case 'denied':
      throw new TunnelRejectedError(403, 'no roles mapped for remote user “bob”');
    case 'missing':
      throw new NotFoundError('no service "missing" on this agent');
    case 'broken':
      throw new Error('connect ECONNREFUSED 127.0.0.1:5432');
    case 'slow':
      await new Promise((r) => setTimeout(r, 2_000));
      return;
    default:
      throw new NotFoundError(`unknown service ${service}`);
  }
};
const received: string[] = [];

/** Resolves at the end of the readable side; rejects if the stream closes first. */
function _ended(stream: Duplex): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.once('end', resolve);
    stream.once('close', () => reject(new Error('the stream closed before its end')));
  });
}

/** Writes `total` bytes of `fill` with backpressure, then ends. */
async function _writeBulk(stream: Duplex, total: number, fill: number): Promise<void> {
  const chunk = Buffer.alloc(256 * 1024, fill);
  for (let sent = 0; sent < total; sent += chunk.length) {
    if (!stream.write(chunk.subarray(0, Math.min(chunk.length, total - sent)))) await once(stream, 'drain');
  }
  stream.end();
}

async function _readAll(stream: Duplex): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function _withPair(fn: (pair: TunnelPair) => Promise<void>, options: Partial<Parameters<typeof createTunnelPair>[1]> = {}): Promise<void> {
  const pair = await createTunnelPair(pki, { agent: { onStream: services }, ...options });
  try {
    await fn(pair);
  } finally {
    await pair.close();
  }
}

describe('ProxyTunnel.dial over mutual TLS to an AgentTunnel', () => {
  it('carries 64 MiB byte-exact both ways through the agent to a TCP echo target', () => _withPair(async ({ proxy }) => {
    const data = randomBytes(64 * MiB);
    const stream = await proxy.dial('echo', 'alice');
    const back = _readAll(stream);
    for (let i = 0; i < data.length; i += 256 * 1024) {
      if (!stream.write(data.subarray(i, i + 256 * 1024))) await once(stream, 'drain');
    }
    stream.end();
    const echoed = await back;
    assert.equal(echoed.length, data.length);
    assert.equal(createHash('sha256').update(echoed).digest('hex'), createHash('sha256').update(data).digest('hex'));
  }));

  it('carries bulk data both ways at once without stalling the tunnel (3 x 96 MiB each way)', () => _withPair(async ({ proxy }) => {
    // Node's Http2Session stops reading while a socket write is in progress; with large
    // windows both ends could block on writes at once. The agent's DecoupledSocket prevents it.
    const total = 96 * MiB;
    for (let round = 0; round < 3; round++) {
      received.length = 0;
      const stream = await proxy.dial('full-duplex', 'alice', { headers: { 'postern-bytes': String(total) } });
      let got = 0;
      stream.on('data', (d: Buffer) => { got += d.length; });
      const ended = _ended(stream);
      await _writeBulk(stream, total, 0x5a);
      await ended;
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(got, total);
      assert.deepEqual(received, [`agent got ${total}`]);
    }
  }, { agent: { onStream: services, keepaliveIntervalMs: 2_000, keepaliveTimeoutMs: 5_000 }, proxy: { keepaliveIntervalMs: 2_000, keepaliveTimeoutMs: 5_000 } }));

  it('carries 2,000 small messages in order, each answered before the next', () => _withPair(async ({ proxy }) => {
    const stream = await proxy.dial('echo', 'alice');
    let pending = Buffer.alloc(0);
    stream.on('data', (d: Buffer) => { pending = Buffer.concat([pending, d]); });
    for (let i = 0; i < 2_000; i++) {
      const message = Buffer.from(`message ${i} `.padEnd(1 + (i * 37) % 900, String.fromCharCode(97 + (i % 26))));
      stream.write(message);
      while (pending.length < message.length) await once(stream, 'data');
      assert.deepEqual(pending, message, `message ${i}`);
      pending = Buffer.alloc(0);
    }
    stream.end();
    await once(stream, 'end');
  }));

  it('runs 200 streams at once, each with its own data', () => _withPair(async ({ proxy, agent }) => {
    let peak = 0;
    const results = await Promise.all(Array.from({ length: 200 }, async (_, i) => {
      const data = randomBytes(32 * 1024 + i);
      const stream = await proxy.dial('echo', `user-${i}`);
      peak = Math.max(peak, agent.activeStreams);
      const back = _readAll(stream);
      stream.end(data);
      return (await back).equals(data);
    }));
    assert.equal(results.filter(Boolean).length, 200);
    assert.ok(peak > 1, `streams overlapped (peak ${peak})`);
  }));

  it('delivers the identity and extra headers verbatim to the agent', () => _withPair(async ({ proxy }) => {
    const stream = await proxy.dial('whoami', 'eyJ1c2VyIjoiYWxpY2UifQ', { headers: { 'postern-target-port': '5432' } });
    const seen = JSON.parse(String(await _readAll(stream)));
    assert.deepEqual(seen, { identity: 'eyJ1c2VyIjoiYWxpY2UifQ', headers: { 'postern-target-port': '5432' } });
  }));

  it('carries half-close both ways: each side can still send after the other ended', () => _withPair(async ({ proxy }) => {
    const up = await proxy.dial('count-then-reply', 'alice');
    up.write(Buffer.alloc(1000));
    up.end(Buffer.alloc(234));
    assert.equal(String(await _readAll(up)), 'got 1234 bytes');

    received.length = 0;
    const down = await proxy.dial('speak-first', 'alice');
    const chunks: Buffer[] = [];
    down.on('data', (d: Buffer) => chunks.push(d));
    await once(down, 'end');
    assert.equal(String(Buffer.concat(chunks)), 'hello from agent');
    down.end('bye from proxy');
    await once(down, 'close');
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(received, ['bye from proxy', '<end>']);
  }));

  it('passes a target’s reset on as an abort, never as a clean end', () => _withPair(async ({ proxy }) => {
    const stream = await proxy.dial('reset-after-data', 'alice');
    const chunks: Buffer[] = [];
    stream.on('data', (d: Buffer) => chunks.push(d));
    await new Promise((resolve) => stream.once('close', resolve));
    assert.equal(String(Buffer.concat(chunks)), 'first half of the answer');
    assert.equal(stream.readableEnded, false, 'no END_STREAM after a reset');
  }));
});

describe('ProxyTunnel.dial failures', () => {
  it('rejects with TunnelRejectedError carrying the status and the agent’s reason', () => _withPair(async ({ proxy }) => {
    await assert.rejects(proxy.dial('denied', 'bob'), (err: unknown) => {
      assert.ok(err instanceof TunnelRejectedError);
      assert.equal(err.code, 'PST_TUNNEL_REJECTED');
      assert.equal(err.status, 403);
      assert.equal(err.reason, 'no roles mapped for remote user “bob”');
      assert.match(err.message, /service denied refused by the agent \(403\)/);
      return true;
    });
    await assert.rejects(proxy.dial('missing', 'bob'), { code: 'PST_TUNNEL_REJECTED', status: 404, reason: 'no service "missing" on this agent' });
    await assert.rejects(proxy.dial('broken', 'bob'), { status: 502, reason: 'the service handler failed: connect ECONNREFUSED 127.0.0.1:5432' });
    // Refusals end streams cleanly: the tunnel stays usable.
    const stream = await proxy.dial('whoami', 'bob');
    assert.match(String(await _readAll(stream)), /bob/);
  }));

  it('times out a dial the agent does not answer, and honours an abort signal', () => _withPair(async ({ proxy }) => {
    let started = Date.now();
    await assert.rejects(proxy.dial('slow', 'alice', { timeoutMs: 200 }), TunnelDialTimeoutError);
    assert.ok(Date.now() - started < 1_000);
    await assert.rejects(proxy.dial('slow', 'alice', { signal: AbortSignal.abort() }), TunnelDialError);
    started = Date.now();
    await assert.rejects(proxy.dial('slow', 'alice', { signal: AbortSignal.timeout(50) }), { code: 'PST_TUNNEL_DIAL_FAILED', message: /aborted by the caller/ });
    assert.ok(Date.now() - started < 1_000, 'the abort ended the dial before the 2 s handler answered');
  }));

  it('refuses malformed service names and headers before sending anything', () => _withPair(async ({ proxy }) => {
    await assert.rejects(proxy.dial('', 'alice'), BadInputError);
    await assert.rejects(proxy.dial('ssh\r\nx: y', 'alice'), BadInputError);
    await assert.rejects(proxy.dial('ssh', 'line\nbreak'), BadInputError);
    await assert.rejects(proxy.dial('ssh', 'alice', { headers: { 'postern-identity': 'forged' } }), BadInputError);
  }));

  it('queues streams beyond the agent’s concurrency limit until one closes or the dial times out', () => _withPair(async ({ proxy }) => {
    const open = await Promise.all([proxy.dial('count-then-reply', 'a'), proxy.dial('count-then-reply', 'b')]);
    await assert.rejects(proxy.dial('whoami', 'c', { timeoutMs: 200 }), TunnelDialTimeoutError);
    let third: Duplex | undefined;
    const queued = proxy.dial('whoami', 'd').then((s) => { third = s; });
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(third, undefined, 'the third stream waits for a free slot');
    open[0]!.end();
    await _readAll(open[0]!);
    await queued;
    assert.match(String(await _readAll(third!)), /"d"/);
    open[1]!.end();
    await _readAll(open[1]!);
  }, { agent: { onStream: services, maxConcurrentStreams: 2 } }));
});

describe('ProxyTunnel lifecycle', () => {
  it('pings, closes gracefully with a reason on each side, and then refuses dials', () => _withPair(async ({ proxy, agent }) => {
    const rtt = await proxy.ping();
    assert.ok(rtt >= 0 && rtt < 1_000);
    assert.ok((await agent.ping()) >= 0);
    const agentClosed = once(agent, 'close') as Promise<[TunnelClosedError]>;
    const proxyClosed = once(proxy, 'close') as Promise<[TunnelClosedError]>;
    await proxy.close();
    const [[proxyReason], [agentReason]] = await Promise.all([proxyClosed, agentClosed]);
    assert.equal(proxyReason.reason, 'closed-locally');
    assert.equal(agentReason.reason, 'closed-by-peer');
    assert.equal(agentReason.code, 'PST_TUNNEL_CLOSED');
    await assert.rejects(proxy.dial('whoami', 'alice'), { code: 'PST_TUNNEL_CLOSED', reason: 'closed-locally' });
    await assert.rejects(agent.ping(), TunnelClosedError);
  }));

  it('resets open streams when the tunnel goes away', () => _withPair(async ({ proxy, agent }) => {
    const stream = await proxy.dial('count-then-reply', 'alice');
    const streamClosed = once(stream, 'close');
    const proxyClosed = once(proxy, 'close') as Promise<[TunnelClosedError]>;
    agent.destroy();
    await streamClosed;
    assert.equal(stream.readableEnded, false, 'the stream was cut, not ended');
    const [reason] = await proxyClosed;
    assert.equal(reason.reason, 'closed-by-peer');
    await assert.rejects(proxy.dial('whoami', 'alice'), TunnelClosedError);
  }));
});
