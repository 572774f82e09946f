import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { Duplex, PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { pipeBidirectional } from './pipe-bidirectional.ts';

/** A client socket and the server's end of it, both allowing half-open. */
async function _socketPair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer({ allowHalfOpen: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
  const [accepted] = (await once(server, 'connection')) as [net.Socket];
  server.close();
  return [client, accepted];
}

async function _readAll(stream: Duplex): Promise<string> {
  let text = '';
  for await (const chunk of stream) text += String(chunk);
  return text;
}

describe('pipeBidirectional', () => {
  it('relays both ways, carries half-close each way, and counts bytes', async () => {
    const [userClient, userServer] = await _socketPair();
    const [targetClient, targetServer] = await _socketPair();
    const piping = pipeBidirectional(userServer, targetClient);

    userClient.end('request body'); // the user is done sending, and still listening
    assert.equal(await _readAll(targetServer), 'request body');
    const reply = _readAll(userClient);
    targetServer.write('response ');
    targetServer.end('after the user half-closed');
    assert.equal(await reply, 'response after the user half-closed');

    const result = await piping;
    assert.deepEqual(result, { bytesAToB: 12, bytesBToA: 35 });
  });

  it('passes a reset on one side on as a reset to the other, and reports it instead of throwing', async () => {
    const [userClient, userServer] = await _socketPair();
    const [targetClient, targetServer] = await _socketPair();
    const userError = once(userClient, 'error');
    const piping = pipeBidirectional(userServer, targetClient);
    userClient.write('partial');
    await once(targetServer, 'data');
    targetServer.resetAndDestroy();
    const result = await piping;
    assert.equal((result.error as NodeJS.ErrnoException).code, 'ECONNRESET');
    assert.equal(userServer.destroyed && targetClient.destroyed, true);
    const [err] = (await userError) as [NodeJS.ErrnoException];
    assert.equal(err.code, 'ECONNRESET', 'the user sees a reset, not a clean end of a truncated transfer');
  });

  it('treats a side that closes without ending as an abort', async () => {
    const a = new PassThrough();
    const b = new PassThrough();
    const piping = pipeBidirectional(a, b);
    b.destroy();
    const result = await piping;
    assert.equal((result.error as NodeJS.ErrnoException).code, 'ERR_STREAM_PREMATURE_CLOSE');
    assert.equal(a.destroyed, true);
  });

  it('pauses the source while the destination is full (bounded buffering)', async () => {
    let accepted = 0;
    let release: (() => void) | undefined;
    const slow = new Duplex({
      highWaterMark: 64 * 1024,
      read() {},
      write(chunk: Buffer, _enc, callback) {
        accepted += chunk.length;
        release = callback; // hold every write until released
      },
    });
    const source = new PassThrough({ highWaterMark: 64 * 1024 });
    void pipeBidirectional(source, slow);
    let offered = 0;
    const chunk = Buffer.alloc(16 * 1024);
    while (source.write(chunk)) offered += chunk.length;
    await new Promise((r) => setTimeout(r, 50));
    const buffered = source.readableLength + source.writableLength + slow.writableLength;
    assert.ok(buffered <= 4 * 64 * 1024, `buffered ${buffered} bytes with a stalled destination`);
    assert.equal(accepted, 16 * 1024, 'only the first write reached the stalled destination');
    release?.();
    assert.ok(offered < 256 * 1024);
  });
});
