/** TunnelStreamPool with stream pairs in place of tunnel streams. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { duplexPair, type Duplex } from 'node:stream';
import { TunnelStreamPool, type PooledTunnelStream } from './tunnel-stream-pool.ts';

function pool(options: { idleMs?: number; maxAgeMs?: number; maxIdlePerKey?: number; fail?: boolean } = {}) {
  const agentSides: Duplex[] = [];
  const p = new TunnelStreamPool({
    dial: async (request) => {
      if (options.fail) throw new Error(`cannot dial ${request.service}`);
      const [proxySide, agentSide] = duplexPair();
      agentSide.on('error', () => {});
      // The agent ends its side when the proxy does, as app-stream-forwarder.ts does.
      agentSide.on('end', () => agentSide.end());
      agentSide.resume();
      agentSides.push(agentSide);
      return proxySide;
    },
    ...options,
  });
  return { p, agentSides };
}

const dial = { service: 'app:web', identity: 'x' };
/** Resolves once `stream` has closed and every 'close' listener has run. */
const closed = (stream: Duplex) => new Promise((resolve) => (stream.closed ? setTimeout(resolve, 5) : stream.once('close', () => setImmediate(resolve))));

test('a released stream is taken again at once, by its key only; a discarded one is destroyed', async () => {
  const { p, agentSides } = pool();
  try {
    const first = await p.take('alice', dial);
    p.release(first);
    assert.equal(p.take('alice', dial), first, 'an idle stream comes back without a dial');
    const bob = await p.take('bob', dial);
    assert.notEqual(bob, first);
    p.discard(bob);
    await closed(bob.stream);
    assert.equal(agentSides.length, 2);
    assert.deepEqual(p.size, { live: 1, idle: 0 });
  } finally {
    p.close();
  }
});

test('more idle streams than maxIdlePerKey are ended; the most recently used is taken first', async () => {
  const { p } = pool({ maxIdlePerKey: 2 });
  try {
    const streams: PooledTunnelStream[] = await Promise.all([p.take('k', dial), p.take('k', dial), p.take('k', dial)] as Array<Promise<PooledTunnelStream>>);
    for (const s of streams) p.release(s);
    await closed(streams[2]!.stream);
    assert.equal(p.take('k', dial), streams[1]);
    assert.equal(p.take('k', dial), streams[0]);
  } finally {
    p.close();
  }
});

test('an idle stream the agent ends is dropped; a failed dial rejects; close() destroys everything', async () => {
  const { p, agentSides } = pool();
  const s = await p.take('k', dial);
  p.release(s);
  agentSides[0]!.end();
  await closed(s.stream);
  assert.deepEqual(p.size, { live: 0, idle: 0 });
  const busy = await p.take('k', dial);
  const idle = await p.take('k', dial);
  p.release(idle);
  p.close();
  await Promise.all([closed(busy.stream), closed(idle.stream)]);
  const failing = pool({ fail: true });
  await assert.rejects(Promise.resolve(failing.p.take('k', dial)), /cannot dial app:web/);
  failing.p.close();
});
