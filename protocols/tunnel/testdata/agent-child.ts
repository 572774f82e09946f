/**
 * Test-only: an agent in its own process, so a test can SIGKILL it. Dials
 * 127.0.0.1:<port> with the client certificate in <pki dir>, serves `echo`, and says
 * 'ready' over IPC once the tunnel is up.
 */
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { connectAgentSocket } from '../agent-socket.ts';
import { AgentTunnel } from '../agent-tunnel.ts';

const [port, pkiDir] = process.argv.slice(2);
const read = (name: string): Promise<string> => readFile(`${pkiDir}/${name}`, 'utf8');
const socket = connectAgentSocket({
  host: '127.0.0.1', port: Number(port), servername: 'localhost',
  ca: await read('ca.crt'), cert: await read('client.crt'), key: await read('client.key'), ALPNProtocols: ['postern-tunnel'],
});
await once(socket, 'secureConnect');
const tunnel = new AgentTunnel(socket, {
  keepaliveIntervalMs: 200,
  keepaliveTimeoutMs: 300,
  onStream: ({ stream }) => void stream.pipe(stream),
});
tunnel.on('close', () => process.exit(0));
process.send!('ready');
