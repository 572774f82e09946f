/**
 * The agent process of bench/tunnel.ts: dials the proxy's port and serves tunnel
 * streams (`sink`, `source`, `noop`, and `tcp-sink`, forwarded to the target process),
 * and runs the direct-TLS sink and source the tunnel is compared with.
 * Started by bench/tunnel.ts with `fork`; talks to it over IPC.
 */
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { connectAgentSocket } from '../protocols/tunnel/agent-socket.ts';
import { AgentTunnel } from '../protocols/tunnel/agent-tunnel.ts';
import { pipeBidirectional } from '../protocols/tunnel/pipe-bidirectional.ts';

/** Writes `total` bytes with backpressure once the peer has ended its side, then ends. */
function _source(stream: Duplex, total: number): void {
  const chunk = Buffer.alloc(64 * 1024, 0x6b);
  stream.resume();
  stream.once('end', async () => {
    for (let sent = 0; sent < total; sent += chunk.length) {
      if (!stream.write(chunk)) await once(stream, 'drain');
    }
    stream.end();
  });
}

/** Counts what arrives; when the writer ends, answers with the count and ends. */
function _sink(stream: Duplex): void {
  let bytes = 0;
  stream.on('data', (chunk: Buffer) => { bytes += chunk.length; });
  stream.on('end', () => stream.end(String(bytes)));
}

async function _listen(server: net.Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

async function main(): Promise<void> {
  const [proxyPort, targetPort, pkiDir, windowArg, totalArg] = process.argv.slice(2);
  const total = Number(totalArg);
  const read = (name: string): Promise<string> => readFile(`${pkiDir}/${name}`, 'utf8');
  const [ca, serverCert, serverKey, clientCert, clientKey] = await Promise.all(
    ['ca.crt', 'server.crt', 'server.key', 'client.crt', 'client.key'].map(read),
  );
  const directPort = await _listen(tls.createServer({ cert: serverCert, key: serverKey, allowHalfOpen: true }, _sink));
  const directSourcePort = await _listen(tls.createServer({ cert: serverCert, key: serverKey, allowHalfOpen: true }, (s) => _source(s, total)));

  const socket = connectAgentSocket({
    host: '127.0.0.1', port: Number(proxyPort), servername: 'localhost', ca, cert: clientCert, key: clientKey,
    ALPNProtocols: ['postern-tunnel'],
  });
  await once(socket, 'secureConnect');
  const tunnel = new AgentTunnel(socket, {
    windowSize: windowArg ? Number(windowArg) : undefined,
    onStream: ({ service, stream }) => {
      if (service === 'sink') return _sink(stream);
      if (service === 'source') return _source(stream, total);
      if (service === 'noop') return void stream.end();
      if (service === 'tcp-sink') {
        const target = net.connect({ port: Number(targetPort), host: '127.0.0.1', allowHalfOpen: true, noDelay: true });
        return once(target, 'connect').then(() => void pipeBidirectional(stream, target));
      }
      throw new Error(`no service ${service}`);
    },
  });
  tunnel.on('close', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
  process.on('message', (msg: { type: string }) => {
    if (msg.type === 'cpu') process.send!({ type: 'cpu', usage: process.cpuUsage() });
  });
  process.send!({ type: 'ready', directPort, directSourcePort });
}

await main();
