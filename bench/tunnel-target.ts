/**
 * The target process of bench/tunnel.ts: a TCP sink that counts what arrives and, when
 * the writer ends, answers with the count. Sends its port over IPC.
 */
import { once } from 'node:events';
import net from 'node:net';

const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
  let bytes = 0;
  socket.on('data', (chunk: Buffer) => { bytes += chunk.length; });
  socket.on('end', () => socket.end(String(bytes)));
});
server.listen(0, '127.0.0.1');
await once(server, 'listening');
process.send!({ type: 'ready', port: (server.address() as net.AddressInfo).port });
process.on('disconnect', () => process.exit(0));
