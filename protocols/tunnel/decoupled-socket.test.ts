import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
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

it('completes writes at once while the peer is not reading, up to the cap, then fails', async () => {
  const [client, peer] = await _pair();
  peer.pause(); // the peer reads nothing
  const wire = new DecoupledSocket(client, { maxQueuedBytes: 32 * 1024 * 1024 });
  const chunk = Buffer.alloc(1024 * 1024);
  let completed = 0;
  const failed = new Promise<Error>((resolve) => wire.once('error', resolve));
  for (let i = 0; i < 64; i++) wire.write(chunk, (err) => { if (!err) completed++; });
  const err = await failed;
  assert.match(err.message, /stopped reading/);
  assert.ok(completed >= 16, `${completed} writes completed without the peer reading`);
  assert.equal(client.destroyed, true);
  peer.destroy();
});

it('passes bytes both ways and ends when the socket ends', async () => {
  const [client, peer] = await _pair();
  const wire = new DecoupledSocket(client, { maxQueuedBytes: 1024 * 1024 });
  wire.write('to peer');
  assert.equal(String((await once(peer, 'data'))[0]), 'to peer');
  peer.end('to wire');
  const chunks: Buffer[] = [];
  for await (const c of wire) chunks.push(c as Buffer);
  assert.equal(String(Buffer.concat(chunks)), 'to wire');
  wire.destroy();
});
