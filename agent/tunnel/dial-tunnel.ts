/**
 * Opens one reverse tunnel: TLS to the proxy with ALPN `postern-tunnel`, presenting the
 * host certificate and trusting only the cluster's host CA and a proxy certificate
 * (proxy-peer.ts); then this agent is the HTTP/2 server on that socket (AgentTunnel).
 */
import type tls from 'node:tls';
import type { IdentityFile } from '../../cluster/api/identity-file.ts';
import { ALPN } from '../../protocols/mux/alpn.ts';
import { AgentTunnel, connectAgentSocket, type DialHandler, type TunnelOptions } from '../../protocols/tunnel/index.ts';
import { ProxyIdentityError } from '../proxy/errors.ts';
import { proxyPeerOf, proxyTlsOptions, type ProxyPeer } from '../proxy/proxy-peer.ts';
import { TunnelConnectError } from './errors.ts';

/** Options for {@link dialTunnel}. */
export interface DialTunnelOptions extends TunnelOptions {
  onStream: DialHandler;
  /** Time allowed for TCP and TLS. Default 10 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** A tunnel that is up, and the proxy at its other end. */
export interface OpenTunnel {
  tunnel: AgentTunnel;
  proxy: ProxyPeer;
}

/** The parts of an identity a tunnel needs. */
export type TunnelIdentity = Pick<IdentityFile, 'ca_pems' | 'cert_pem' | 'key_pem'>;

/** Dials the proxy at `address` ("host:port") and resolves once the tunnel is up. */
export async function dialTunnel(address: string, identity: TunnelIdentity, options: DialTunnelOptions): Promise<OpenTunnel> {
  const socket = await _connect(address, identity, options);
  try {
    if (socket.alpnProtocol !== ALPN.tunnel) {
      throw new TunnelConnectError(address, `the server did not accept ALPN ${ALPN.tunnel}; is this a Postern proxy's public port?`);
    }
    const proxy = proxyPeerOf(socket, identity.ca_pems, address);
    const { onStream, windowSize, keepaliveIntervalMs, keepaliveTimeoutMs } = options;
    return { tunnel: new AgentTunnel(socket, { onStream, windowSize, keepaliveIntervalMs, keepaliveTimeoutMs }), proxy };
  } catch (error) {
    socket.destroy();
    throw error;
  }
}

function _connect(address: string, identity: TunnelIdentity, options: DialTunnelOptions): Promise<tls.TLSSocket> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) return reject(new TunnelConnectError(address, 'cancelled'));
    // TLS over a decoupled TCP wire, so the tunnel's HTTP/2 session runs natively (agent-socket.ts).
    const socket = connectAgentSocket(proxyTlsOptions(address, { caPems: identity.ca_pems, certPem: identity.cert_pem, keyPem: identity.key_pem }, [ALPN.tunnel]));
    const settle = (error?: Error): void => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      socket.off('secureConnect', onSecure).off('error', onError);
      if (error) {
        socket.on('error', () => {}).destroy();
        reject(error instanceof ProxyIdentityError || error instanceof TunnelConnectError ? error : new TunnelConnectError(address, error.message, { cause: error }));
      } else {
        resolve(socket);
      }
    };
    const onSecure = (): void => settle();
    const onError = (error: Error): void => settle(error);
    const onAbort = (): void => settle(new TunnelConnectError(address, 'cancelled'));
    const timer = setTimeout(() => settle(new TunnelConnectError(address, `no TLS handshake within ${timeoutMs} ms`)), timeoutMs);
    socket.once('secureConnect', onSecure).once('error', onError);
    options.signal?.addEventListener('abort', onAbort, { once: true });
  });
}
