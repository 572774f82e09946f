import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import type { TLSSocket } from 'node:tls';
import { silentLogger } from '../common/logger.ts';
import { ProtocolHandlers } from './protocol-handlers.ts';

/** A connected TCP pair on loopback: what the handler gets, and the client's end. */
async function socketPair(): Promise<{ server: net.Socket; client: net.Socket; close(): void }> {
  const listener = net.createServer();
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const client = net.connect((listener.address() as net.AddressInfo).port, '127.0.0.1');
  const [server] = (await once(listener, 'connection')) as [net.Socket];
  return { server, client, close: () => listener.close() };
}

test('a protocol without a handler is refused: closed, counted and logged; a registered one is served; a second registration is an error', async () => {
  const refusals: string[] = [];
  const handlers = new ProtocolHandlers(silentLogger(), (reason) => refusals.push(reason));
  const refused = await socketPair();
  void handlers.tls('postern-tcp')(refused.server as unknown as TLSSocket);
  await once(refused.client, 'end');
  assert.deepEqual(refusals, ['no-handler:postern-tcp']);
  refused.client.destroy();
  refused.close();

  handlers.setTls('postern-tcp', (socket) => void socket.pipe(socket));
  assert.throws(() => handlers.setTls('postern-tcp', () => {}), /a handler for postern-tcp is registered already/);
  const served = await socketPair();
  void handlers.tls('postern-tcp')(served.server as unknown as TLSSocket);
  served.client.write('hello');
  const [data] = (await once(served.client, 'data')) as [Buffer];
  assert.equal(data.toString(), 'hello');
  served.client.destroy();
  served.close();
  assert.deepEqual(refusals, ['no-handler:postern-tcp'], 'served connections are not refusals');
});
