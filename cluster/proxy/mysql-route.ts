/**
 * MySQL / MariaDB clients through the proxy, by ALPN `postern-mysql` (`psh proxy db
 * --tunnel` carries each local connection here with the user's database certificate).
 * MySQL's server speaks first, so nothing is read here: the certificate's
 * routeToDatabase names the database, the agent serving it is dialled with the
 * certificate as identity, and the agent greets the client (agent/services/db/mysql-session.ts).
 * Refusals are an ERR packet in place of the greeting, which the client prints.
 */
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { pipeBidirectional } from '../../protocols/tunnel/index.ts';
import { encodeErrPacket, encodePacket } from '../../protocols/mysql/packets.ts';
import { checkDbCertificate, dbDialMessage, DbRouteRefusal, type PostgresRouteOptions } from './postgres-route.ts';

export type MysqlRouteOptions = Omit<PostgresRouteOptions, 'cancelKeys' | 'startupTimeoutMs'>;

/** Serves one TLS connection that negotiated ALPN `postern-mysql` (or the MySQL listener's upgraded one); never rejects. */
export async function acceptMysqlRoute(socket: TLSSocket, options: MysqlRouteOptions & { headers?: Record<string, string>; refusalSequence?: number }): Promise<void> {
  socket.on('error', () => {});
  socket.setNoDelay(true);
  const remoteAddr = `${socket.remoteAddress ?? 'unknown'}:${socket.remotePort ?? 0}`;
  let identity;
  try {
    identity = checkDbCertificate(socket, options);
    const route = identity.routeToDatabase;
    if (!route) throw new DbRouteRefusal('db-no-route', `the certificate of ${identity.username} routes to no database; run psh db login DATABASE first`);
    const pem = new X509Certificate(socket.getPeerCertificate().raw).toString();
    let dialed;
    try {
      dialed = await options.dial({ cluster: identity.routeToCluster, service: `db:${route.service}`, identity: Buffer.from(pem).toString('base64'), headers: { 'postern-db-op': 'connect', ...options.headers } });
    } catch (error) {
      throw new DbRouteRefusal('db-dial-failed', dbDialMessage(route.service, error));
    }
    options.onConnected?.(socket);
    options.logger.info({ remoteAddr, user: identity.username, database: route.service, hostId: dialed.hostId }, 'mysql connection routed to a database');
    await pipeBidirectional(socket, dialed.stream);
  } catch (error) {
    const refusal = error instanceof DbRouteRefusal ? error : new DbRouteRefusal('db-bad-packet', error instanceof Error ? error.message : String(error));
    options.logger.warn({ remoteAddr, reason: refusal.reason, why: refusal.message, user: identity?.username }, 'mysql connection refused');
    options.onRefused?.(refusal.reason);
    if (identity !== undefined || refusal.reason === 'db-bad-certificate') {
      options.audit?.({ remoteAddr, user: identity?.username, roles: identity?.roles, database: identity?.routeToDatabase?.service, reason: `${refusal.reason}: ${refusal.message}` });
    }
    const code = refusal.reason === 'db-dial-failed' ? 2003 : 1045;
    if (!socket.destroyed && socket.writable) socket.end(encodePacket(options.refusalSequence ?? 0, encodeErrPacket(code, code === 1045 ? '28000' : 'HY000', refusal.message)));
    socket.resume();
    setTimeout(() => socket.destroy(), 2_000).unref();
  }
}
