import type { TLSSocket } from 'node:tls';
import { PosternError } from '../../protocols/errors.ts';
import { ProxyTunnel, type ProxyTunnelOptions } from '../../protocols/tunnel/index.ts';
import { verifyCertificateChain } from '../auth/pki/verify-certificate.ts';
import type { HostIdentity, SystemRole } from '../auth/pki/identity.ts';
import type { Logger } from '../common/logger.ts';
import type { TunnelInfo, TunnelRegistry } from './tunnel-registry.ts';

/** System roles whose hosts may hold a reverse tunnel to the proxy. */
export const tunnelRoles: readonly SystemRole[] = ['node', 'db', 'app', 'kube', 'desktop'];

/** Why a tunnel was refused; also the metrics label. */
export type TunnelRefusal = 'tunnel-no-certificate' | 'tunnel-bad-certificate' | 'tunnel-role';

/** What {@link acceptTunnel} needs. */
export interface TunnelAcceptorOptions {
  registry: TunnelRegistry;
  /** The host CA certificates agents' certificates must chain to (read at each connection). */
  hostCaPems: () => readonly string[];
  logger: Logger;
  /** Called for each refusal: metrics, and an audit event when a certificate was presented. */
  onRefused: (reason: TunnelRefusal, detail: { remoteAddr: string; message: string; presented: boolean }) => void;
  /** Called for each accepted tunnel (metrics, an audit event). */
  onAccepted?: (info: TunnelInfo, socket: TLSSocket) => void;
  tunnel?: ProxyTunnelOptions;
  now?: () => Date;
  /** A certificate that is not from this cluster's host CA (a leaf proxy's): true when the callee took the socket. */
  acceptForeign?: (socket: TLSSocket, certificate: Buffer) => boolean;
}

/**
 * Takes a TLS connection that negotiated ALPN `postern-tunnel`: checks the agent's
 * host certificate against the host CA, then becomes the HTTP/2 client of the agent's
 * reverse tunnel and registers it. Anything short of a current host certificate of
 * this cluster is refused, closed and logged with the reason.
 */
export function acceptTunnel(socket: TLSSocket, options: TunnelAcceptorOptions): void {
  const remoteAddr = `${socket.remoteAddress ?? 'unknown'}:${socket.remotePort ?? 0}`;
  const refuse = (reason: TunnelRefusal, message: string, presented: boolean): void => {
    options.logger.warn({ remoteAddr, reason, why: message }, 'reverse tunnel refused');
    options.onRefused(reason, { remoteAddr, message, presented });
    _closeSoon(socket);
  };
  const raw = socket.getPeerCertificate()?.raw;
  if (raw === undefined) return refuse('tunnel-no-certificate', 'the agent presented no client certificate; it must connect with its host identity', false);
  let identity: HostIdentity;
  try {
    identity = verifyCertificateChain(raw, {
      trustedCaCerts: options.hostCaPems(),
      expectedKind: 'host',
      usage: 'client',
      now: options.now?.(),
    }) as HostIdentity;
  } catch (error) {
    if (options.acceptForeign?.(socket, raw)) return;
    const message = error instanceof PosternError ? error.message : `certificate check failed: ${String(error)}`;
    return refuse('tunnel-bad-certificate', message, true);
  }
  if (!identity.systemRoles.some((role) => tunnelRoles.includes(role))) {
    return refuse('tunnel-role', `host ${identity.hostId} has roles ${identity.systemRoles.join(',')}; a tunnel needs one of ${tunnelRoles.join(', ')}`, true);
  }
  const tunnel = new ProxyTunnel(socket, options.tunnel);
  const info: TunnelInfo = { hostId: identity.hostId, nodeName: identity.nodeName, systemRoles: identity.systemRoles, remoteAddr, connectedAt: new Date() };
  options.registry.add({ ...info, tunnel });
  options.onAccepted?.(info, socket);
  options.logger.info({ hostId: identity.hostId, nodeName: identity.nodeName, remoteAddr }, 'reverse tunnel accepted');
  tunnel.once('close', (reason) => options.logger.info({ hostId: identity.hostId, remoteAddr, reason: reason.reason, why: reason.message }, 'reverse tunnel closed'));
}

/** Ends the TLS session (close_notify) and makes sure the socket goes even if the peer lingers. */
function _closeSoon(socket: TLSSocket): void {
  socket.end();
  socket.resume(); // nothing the peer sends now matters
  setTimeout(() => socket.destroy(), 2_000).unref();
}
