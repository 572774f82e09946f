import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, it } from 'node:test';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { pipeBidirectional } from './pipe-bidirectional.ts';
import { createTestPki, type TestPki } from './testdata/test-pki.ts';
import { createTunnelPair } from './testdata/tunnel-pair.ts';

const MB = 1_000_000;
const MiB = 1024 * 1024;
let pki: TestPki;
before(async () => { pki = await createTestPki(); });
after(async () => { await pki.cleanup(); });

/** A TCP target that reads nothing until `resume()`, then counts and answers with the count. */
async function _pausedSink(): Promise<{ port: number; delivered(): number; resume(): void; close(): void }> {
  const sockets: net.Socket[] = [];
  let resumed = false;
  let delivered = 0;
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.push(socket);
    let bytes = 0;
    if (!resumed) socket.pause();
    socket.on('data', (d: Buffer) => { bytes += d.length; delivered += d.length; });
    socket.on('end', () => socket.end(String(bytes)));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    delivered: () => delivered,
    resume: () => { resumed = true; for (const s of sockets) s.resume(); },
    close: () => server.close(),
  };
}

// Collect before each sample, so what is measured is memory held, not garbage V8 has yet
// to collect (it lets up to 64 MB of dead buffers pile up before it must).
v8.setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function _memory(): { rss: number; js: number } {
  gc();
  const m = process.memoryUsage();
  return { rss: m.rss, js: m.heapUsed + m.arrayBuffers };
}

it('a paused reader behind the agent holds a 200 MB writer to bounded memory, end to end', async (t) => {
  const sink = await _pausedSink();
  t.after(() => sink.close());
  const pair = await createTunnelPair(pki, {
    agent: {
      onStream: async ({ stream }) => {
        const target = net.connect({ port: sink.port, host: '127.0.0.1', allowHalfOpen: true });
        await once(target, 'connect');
        void pipeBidirectional(stream, target);
      },
    },
  });
  t.after(() => pair.close());
  const stream = await pair.proxy.dial('slow-sink', 'alice');
  const reply: Buffer[] = [];
  stream.on('data', (d: Buffer) => reply.push(d));
  const replied = once(stream, 'end');

  const base = _memory();
  const peak = { rss: 0, js: 0, inFlight: 0 };
  const sampler = setInterval(() => {
    const now = _memory();
    peak.rss = Math.max(peak.rss, now.rss - base.rss);
    peak.js = Math.max(peak.js, now.js - base.js);
    peak.inFlight = Math.max(peak.inFlight, written - sink.delivered());
  }, 50);
  t.after(() => clearInterval(sampler));

  const total = 200 * MB;
  const chunk = Buffer.alloc(64 * 1024, 7);
  let written = 0;
  const writer = (async () => {
    while (written < total) {
      const piece = chunk.subarray(0, Math.min(chunk.length, total - written));
      written += piece.length;
      if (!stream.write(piece)) await once(stream, 'drain');
    }
    stream.end();
  })();

  await new Promise((r) => setTimeout(r, 1_500));
  const writtenWhilePaused = written;
  assert.ok(peak.rss < 32 * MB && peak.js < 32 * MB, `while paused RSS grew ${(peak.rss / MB).toFixed(1)} MB, heap + buffers ${(peak.js / MB).toFixed(1)} MB`);
  // One 8 MiB stream window, the socket buffers of two loopback connections, stream buffers.
  assert.ok(writtenWhilePaused < 48 * MiB, `writer got ${(writtenWhilePaused / MiB).toFixed(1)} MiB in while the reader was paused`);
  assert.ok(writtenWhilePaused > 1 * MiB, 'the writer made progress up to the window');

  sink.resume();
  await writer;
  await replied;
  clearInterval(sampler);
  assert.equal(String(Buffer.concat(reply)), String(total));
  assert.ok(peak.inFlight < 48 * MiB, `up to ${(peak.inFlight / MiB).toFixed(1)} MiB were written but not yet delivered`);
  assert.ok(peak.rss < 64 * MB, `RSS grew by ${(peak.rss / MB).toFixed(1)} MB`);
  assert.ok(peak.js < 64 * MB, `heap + buffers grew by ${(peak.js / MB).toFixed(1)} MB`);
  console.log(`paused: ${(writtenWhilePaused / MiB).toFixed(1)} MiB accepted; peak in flight ${(peak.inFlight / MiB).toFixed(1)} MiB; peak growth RSS ${(peak.rss / MB).toFixed(1)} MB, heap+buffers ${(peak.js / MB).toFixed(1)} MB`);
});
