import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { PassThrough } from 'node:stream';
import { it } from 'node:test';
import { DecoupledSocket } from './decoupled-socket.ts';

async function _pair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  const [accepted] = (await once(server, 'connection')) as [net.Socket];
  server.close();
  return [client, accepted];
}

function _collect(wire: DecoupledSocket): { chunks: Buffer[]; ended: Promise<void> } {
  const chunks: Buffer[] = [];
  // Copied, as the session does: a connected wire hands over views of a buffer it reuses.
  wire.on('data', (chunk: Buffer) => chunks.push(Buffer.from(chunk)));
  return { chunks, ended: new Promise((resolve) => wire.once('end', () => resolve())) };
}

it('completes writes at once while the peer is not reading, up to the cap, then fails', async () => {
  const [client, peer] = await _pair();
  peer.pause(); // the peer reads nothing
  const wire = new DecoupledSocket(client, { maxQueuedBytes: 32 * 1024 * 1024 });
  const chunk = Buffer.alloc(1024 * 1024);
  let completed = 0;
  let failedWrites = 0;
  const failed = new Promise<Error>((resolve) => wire.once('error', resolve));
  for (let i = 0; i < 64; i++) wire.write(chunk, (err) => { if (err) failedWrites++; else completed++; });
  const err = await failed;
  assert.match(err.message, /stopped reading/);
  assert.ok(completed >= 16, `${completed} writes completed without the peer reading`);
  assert.equal(completed + failedWrites, 64, 'every write was answered, synchronously');
  await once(client, 'close');
  assert.equal(client.destroyed, true);
  peer.destroy();
});

it('passes bytes both ways and ends when the socket ends', async () => {
  const [client, peer] = await _pair();
  const wire = new DecoupledSocket(client, { maxQueuedBytes: 1024 * 1024 });
  const { chunks, ended } = _collect(wire);
  wire.cork();
  wire.write(Buffer.from('to '));
  wire.write(Buffer.from('peer'));
  wire.uncork();
  assert.equal(String((await once(peer, 'data'))[0]), 'to peer');
  peer.end('to wire');
  await ended;
  assert.equal(String(Buffer.concat(chunks)), 'to wire');
  wire.destroy();
});

it('frees the copies written inside a cork once the socket has sent them, and leaves views of larger buffers alone', async (t) => {
  const [client, peer] = await _pair();
  t.after(() => { client.destroy(); peer.destroy(); }); // also when an assertion fails
  if (client.connecting) await once(client, 'connect'); // writes before that are queued, not sent
  const wire = new DecoupledSocket(client, { maxQueuedBytes: 64 * 1024 * 1024 });
  const received: Buffer[] = [];
  let receivedBytes = 0;
  let expected = Infinity;
  let allReceived: () => void = () => {};
  const done = new Promise<void>((resolve) => { allReceived = resolve; });
  peer.on('data', (chunk: Buffer) => {
    received.push(chunk);
    receivedBytes += chunk.length;
    if (receivedBytes >= expected) allReceived();
  });
  const own = Buffer.alloc(64 * 1024, 1); // its own ArrayBuffer, as JSStreamSocket's copies are
  const small = Buffer.alloc(100, 4); // small copies are left to the GC
  const backing = Buffer.alloc(32 * 1024, 2);
  const view = backing.subarray(2, 16 * 1024 + 2);
  wire.cork();
  wire.write(own);
  wire.write(view);
  wire.write(small);
  wire.uncork();
  assert.equal(client.writableLength, 0, 'loopback takes 64 KiB at once');
  assert.equal(own.buffer.detached, true, 'sent, so freed');
  assert.equal(view.buffer.detached, false, 'a view into a larger buffer is not the wire\'s to free');
  assert.equal(small.buffer.detached, false);
  assert.equal(backing.length, 32 * 1024);

  // Under backpressure: kept until the socket has nothing queued, then freed.
  peer.pause();
  const queued: Buffer<ArrayBuffer>[] = [];
  while (client.writableLength === 0) {
    const chunk = Buffer.alloc(1024 * 1024, 3);
    queued.push(chunk);
    wire.cork();
    wire.write(chunk);
    wire.uncork();
  }
  const last = queued[queued.length - 1]!;
  assert.equal(last.buffer.detached, false, 'still queued: libuv may point into it');
  peer.resume();
  await once(client, 'drain');
  assert.equal(queued.every((chunk) => chunk.buffer.detached), true, 'all freed once sent');
  const total = 64 * 1024 + 16 * 1024 + 100 + queued.length * 1024 * 1024;
  expected = total;
  if (receivedBytes >= total) allReceived();
  await done;
  const bytes = Buffer.concat(received);
  assert.equal(bytes.length, total);
  assert.equal(bytes[0], 1);
  assert.equal(bytes.subarray(64 * 1024, 80 * 1024).every((b) => b === 2), true);
  assert.equal(bytes.subarray(80 * 1024, 80 * 1024 + 100).every((b) => b === 4), true);
  assert.equal(bytes[total - 1], 3, 'the bytes were sent before their memory was freed');
  wire.destroy();
  peer.destroy();
});

it('holds what arrives while paused and hands it over, in order and before the end, once resumed', async () => {
  const socket = new PassThrough();
  const wire = new DecoupledSocket(socket, { maxQueuedBytes: 1024 * 1024 });
  const { chunks, ended } = _collect(wire);
  socket.write('one ');
  assert.equal(String(Buffer.concat(chunks)), 'one ');
  wire.pause();
  socket.write('two ');
  socket.end('three');
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(String(Buffer.concat(chunks)), 'one ', 'nothing is handed over while paused');
  let endedYet = false;
  void ended.then(() => { endedYet = true; });
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(endedYet, false, 'the end waits for the held bytes');
  wire.resume();
  await ended;
  assert.equal(String(Buffer.concat(chunks)), 'one two three');
});

it('pauses the socket when a paused session lets more than 1 MiB pile up, and resumes it after', async () => {
  const socket = new PassThrough({ highWaterMark: 64 * 1024 });
  const wire = new DecoupledSocket(socket, { maxQueuedBytes: 1024 * 1024 });
  const { chunks } = _collect(wire);
  wire.pause();
  for (let i = 0; i < 40; i++) socket.write(Buffer.alloc(64 * 1024, i));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(socket.isPaused(), true, 'the socket was paused');
  const held = chunks.length;
  assert.equal(held, 0);
  wire.resume();
  await new Promise((resolve) => setTimeout(resolve, 20));
  const got = Buffer.concat(chunks);
  assert.equal(got.length, 40 * 64 * 1024);
  for (let i = 0; i < 40; i++) assert.equal(got[i * 64 * 1024], i, `chunk ${i} in order`);
});

it('hands the full TLS records of one read to the session in one piece', async () => {
  const socket = new PassThrough();
  const wire = new DecoupledSocket(socket, { maxQueuedBytes: 1024 * 1024 });
  const { chunks } = _collect(wire);
  // What a TLS socket emits for one socket read: full 16 KiB records, then a short one.
  socket.write(Buffer.alloc(16 * 1024, 1));
  socket.write(Buffer.alloc(16 * 1024, 2));
  socket.write(Buffer.alloc(100, 3));
  assert.equal(chunks.length, 1);
  assert.equal(chunks[0]!.length, 32 * 1024 + 100);
  // Full records with no short one after them go on the next tick.
  socket.write(Buffer.alloc(16 * 1024, 4));
  assert.equal(chunks.length, 1);
  await new Promise((resolve) => process.nextTick(resolve));
  assert.equal(chunks.length, 2);
  // A small message alone is handed over at once.
  socket.write(Buffer.from('small'));
  assert.equal(String(chunks[2]), 'small');
});

/** A DecoupledSocket connected over loopback, and the server's end of that connection. */
async function _connectedPair(): Promise<{ wire: DecoupledSocket; peer: net.Socket }> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const wire = DecoupledSocket.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port }, { maxQueuedBytes: 1024 * 1024 });
  const [peer] = (await once(server, 'connection')) as [net.Socket];
  server.close();
  return { wire, peer };
}

it('connected: reads into one reused buffer, yet what it holds while paused arrives intact and in order', async () => {
  const { wire, peer } = await _connectedPair();
  const { chunks, ended } = _collect(wire);
  wire.pause();
  // 40 x 64 KiB, each filled with its index: the socket is paused after the first read held.
  for (let i = 0; i < 40; i++) peer.write(Buffer.alloc(64 * 1024, i));
  peer.end();
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(chunks.length, 0, 'nothing is handed over while paused');
  wire.resume();
  await ended;
  const got = Buffer.concat(chunks);
  assert.equal(got.length, 40 * 64 * 1024);
  for (let i = 0; i < 40; i++) assert.ok(got.subarray(i * 64 * 1024, (i + 1) * 64 * 1024).every((b) => b === i), `chunk ${i} intact and in order`);
  wire.destroy();
});

it('connected: hands reads over at once while not paused, and writes complete synchronously', async () => {
  const { wire, peer } = await _connectedPair();
  const { chunks } = _collect(wire);
  let completed = false;
  wire.write(Buffer.from('ping'), () => { completed = true; });
  assert.equal(completed, true);
  assert.equal(String((await once(peer, 'data'))[0]), 'ping');
  peer.write('pong');
  await once(wire, 'data');
  assert.equal(String(Buffer.concat(chunks)), 'pong');
  peer.destroy();
  wire.destroy();
});
