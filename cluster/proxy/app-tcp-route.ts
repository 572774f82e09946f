/**
 * ALPN `postern-tcp`: `psh proxy app NAME` carries a local TCP connection to a TCP app.
 * The user's certificate must be routed to the app (`psh apps login NAME`); the proxy
 * dials `app:NAME` with the routed identity and pipes raw bytes. The agent decides.
 * A refusal closes the TLS connection after a log line, a count and (for a certificate
 * holder) an audit event.
 */
import type { TLSSocket } from 'node:tls';
import { pipeBidirectional } from '../../protocols/tunnel/index.ts';
import type { Logger } from '../common/logger.ts';
import type { ServiceDialer } from './service-dialer.ts';
import { certificateDial, peerUser } from './user-certificate.ts';

export interface AppTcpRouteOptions {
  userCaPems: () => readonly string[];
  dialer: Pick<ServiceDialer, 'dial'>;
  logger: Logger;
  onRefused?: (reason: string) => void;
  audit?: (event: { remoteAddr: string; user?: string; roles?: string[]; app?: string; reason: string }) => void;
}

/** Serves one TLS connection that negotiated ALPN `postern-tcp`; never rejects. */
export async function acceptAppTcpRoute(socket: TLSSocket, options: AppTcpRouteOptions): Promise<void> {
  socket.on('error', () => {});
  const remoteAddr = `${socket.remoteAddress ?? 'unknown'}:${socket.remotePort ?? 0}`;
  const refuse = (reason: string, why: string, who?: { user: string; roles: string[]; app?: string }): void => {
    options.logger.warn({ remoteAddr, reason, why, user: who?.user, app: who?.app }, 'tcp app connection refused');
    options.onRefused?.(reason);
    if (who) options.audit?.({ remoteAddr, user: who.user, roles: who.roles, app: who.app, reason: `${reason}: ${why}` });
    socket.destroy();
  };
  const peer = peerUser(socket, options.userCaPems());
  if (peer.kind === 'none') return refuse('app-no-certificate', 'no client certificate; run psh apps login NAME and psh proxy app NAME');
  if (peer.kind === 'bad') return refuse('app-bad-certificate', peer.why);
  const identity = peer.identity;
  const app = identity.routeToApp?.name;
  const who = { user: identity.username, roles: identity.roles, app };
  if (!app) return refuse('app-no-route', 'the certificate is not routed to an app; run psh apps login NAME', who);
  let stream;
  try {
    stream = await options.dialer.dial({ ...certificateDial(identity, peer.pem, remoteAddr), service: `app:${app}` });
  } catch (error) {
    return refuse('app-dial-failed', (error as Error).message, who);
  }
  options.logger.info({ remoteAddr, user: identity.username, app, cluster: identity.routeToCluster }, 'tcp app connection routed');
  await pipeBidirectional(socket, stream);
}
