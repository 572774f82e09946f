/**
 * Test-only: an agent and a proxy tunnel end joined by real mutual TLS on 127.0.0.1,
 * optionally through a {@link Relay} that can be frozen to play a hung network.
 */
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { connectAgentSocket } from '../agent-socket.ts';
import { AgentTunnel, type AgentTunnelOptions } from '../agent-tunnel.ts';
import { ProxyTunnel, type ProxyTunnelOptions } from '../proxy-tunnel.ts';
import type { TestPki } from './test-pki.ts';

/** A TCP relay; `freeze()` keeps both connections open but drops every byte from then on. */
export interface Relay {
  port: number;
  freeze(): void;
  close(): void;
}

/** Starts a relay on 127.0.0.1 towards `targetPort`. */
export async function startRelay(targetPort: number): Promise<Relay> {
  let frozen = false;
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket): void => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  };
  const server = net.createServer((inbound) => {
    const outbound = net.connect(targetPort, '127.0.0.1');
    track(inbound);
    track(outbound);
    inbound.on('data', (d: Buffer) => { if (!frozen) outbound.write(d); });
    outbound.on('data', (d: Buffer) => { if (!frozen) inbound.write(d); });
    inbound.on('close', () => outbound.destroy());
    outbound.on('close', () => inbound.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    freeze: () => { frozen = true; },
    close: () => {
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}

/** Both ends of one tunnel and the means to tear them down. */
export interface TunnelPair {
  agent: AgentTunnel;
  proxy: ProxyTunnel;
  relay?: Relay;
  close(): Promise<void>;
}

/** Listens as the proxy would (ALPN postern-tunnel, client certificate required) and dials as the agent. */
export async function createTunnelPair(
  pki: TestPki,
  options: { agent: AgentTunnelOptions; proxy?: ProxyTunnelOptions; relay?: boolean },
): Promise<TunnelPair> {
  const server = tls.createServer({
    cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert,
    requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['postern-tunnel'],
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const listenPort = (server.address() as net.AddressInfo).port;
  const relay = options.relay ? await startRelay(listenPort) : undefined;
  const accepted = once(server, 'secureConnection') as Promise<[tls.TLSSocket]>;
  const socket = connectAgentSocket({
    host: '127.0.0.1', port: relay?.port ?? listenPort, servername: 'localhost',
    ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key, ALPNProtocols: ['postern-tunnel'],
  });
  await once(socket, 'secureConnect');
  const [proxySocket] = await accepted;
  server.close();
  const agent = new AgentTunnel(socket, options.agent);
  const proxy = new ProxyTunnel(proxySocket, options.proxy);
  return {
    agent, proxy, relay,
    close: async () => {
      proxy.destroy();
      agent.destroy();
      relay?.close();
    },
  };
}
