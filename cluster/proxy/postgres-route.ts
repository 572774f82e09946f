/**
 * PostgreSQL clients through the proxy, on the single port (SSLRequest -> 'S' -> TLS,
 * psql with `sslcert=` the user's certificate) and by ALPN `postern-postgres` (`psh
 * proxy db`). The connection is TLS already; here:
 *
 * ```
 * first packet  CancelRequest -> the session it names (cancel keys handed out here)
 *               StartupMessage -> user certificate (user CA) -> its routeToDatabase
 *                 -> the host serving db:SERVICE -> dial with the certificate as identity
 *                    and a fresh cancel key (header postern-db-cancel), send the
 *                    StartupMessage, then relay both ways
 * ```
 *
 * RBAC (db_labels, db_users, db_names) is the agent's decision, with the database's
 * labels at hand. Refusals here are ErrorResponses (SQLSTATE 28000 when access is
 * the matter, 08P01 for a malformed packet) that psql prints, logged, counted and
 * audited when a certificate was presented.
 *
 * Cancel keys live in this proxy's memory: a CancelRequest must reach the proxy that
 * served the session (true for a single proxy, or clients that keep their address).
 */
import { X509Certificate, randomInt, timingSafeEqual } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { PosternError } from '../../protocols/errors.ts';
import { pipeBidirectional, TunnelDialTimeoutError, TunnelRejectedError } from '../../protocols/tunnel/index.ts';
import { readStartupPacket, type StartupPacket } from '../../protocols/postgres/startup.ts';
import { encodeErrorResponse } from '../../protocols/postgres/messages.ts';
import { verifyCertificateChain } from '../auth/pki/verify-certificate.ts';
import type { UserIdentity } from '../auth/pki/identity.ts';
import type { Logger } from '../common/logger.ts';
import { ServiceDialError } from './errors.ts';
import type { DialedService, ServiceDialRequest } from './service-dialer.ts';

/** Dials the agent serving `db:SERVICE` in the certificate's route-to-cluster (for a cancel, the same host): ServiceDialer.open. */
export type DatabaseDialer = (request: ServiceDialRequest) => Promise<DialedService>;

export type DbRefusal = 'db-no-certificate' | 'db-bad-certificate' | 'db-no-route' | 'db-bad-packet' | 'db-unknown' | 'db-dial-failed';

export interface DbRouteAuditEvent {
  remoteAddr: string;
  user?: string;
  roles?: string[];
  database?: string;
  reason: string;
}

/** Cancel keys handed to clients, by process id. */
/** A session's cancel key and where it runs (hostId absent in a leaf: the leaf proxy picks). */
interface _CancelEntry {
  secretKey: number;
  service: string;
  cluster: string;
  hostId?: string;
  identity: string;
}

export class PostgresCancelKeys {
  readonly #keys = new Map<number, _CancelEntry>();

  /** A fresh key for a session (process ids are unique among the open ones). */
  issue(): { processId: number; secretKey: number } {
    for (;;) {
      const processId = randomInt(1, 2 ** 31 - 1);
      if (!this.#keys.has(processId)) return { processId, secretKey: randomInt(-(2 ** 31), 2 ** 31 - 1) };
    }
  }

  set(processId: number, entry: _CancelEntry): void {
    this.#keys.set(processId, entry);
  }

  delete(processId: number): void {
    this.#keys.delete(processId);
  }

  /** The session a CancelRequest names, when its secret matches (constant time). */
  find(processId: number, secretKey: number): _CancelEntry | undefined {
    const entry = this.#keys.get(processId);
    const given = Buffer.alloc(4);
    given.writeInt32BE(secretKey);
    const expected = Buffer.alloc(4);
    expected.writeInt32BE(entry?.secretKey ?? 0);
    return entry && timingSafeEqual(given, expected) ? entry : undefined;
  }

  get size(): number {
    return this.#keys.size;
  }
}

export interface PostgresRouteOptions {
  userCaPems: () => readonly string[];
  dial: DatabaseDialer;
  cancelKeys: PostgresCancelKeys;
  logger: Logger;
  onRefused?: (reason: DbRefusal) => void;
  audit?: (event: DbRouteAuditEvent) => void;
  onConnected?: (socket: TLSSocket) => void;
  startupTimeoutMs?: number;
  now?: () => Date;
}

/** A refused database connection; `reason` is the metrics label. */
export class DbRouteRefusal extends Error {
  readonly reason: DbRefusal;
  constructor(reason: DbRefusal, message: string) {
    super(message);
    this.reason = reason;
  }
}

/** Serves one TLS connection from a PostgreSQL client; never rejects. */
export async function acceptPostgresRoute(socket: TLSSocket, options: PostgresRouteOptions): Promise<void> {
  socket.on('error', () => {});
  socket.setNoDelay(true);
  const remoteAddr = `${socket.remoteAddress ?? 'unknown'}:${socket.remotePort ?? 0}`;
  let identity: UserIdentity | undefined;
  let packet: { packet: Buffer; parsed: StartupPacket };
  try {
    packet = await readStartupPacket(socket, options.startupTimeoutMs ?? 10_000);
  } catch (error) {
    return _refuse(socket, new DbRouteRefusal('db-bad-packet', (error as Error).message), options, { remoteAddr });
  }
  if (packet.parsed.kind === 'cancel') return acceptPostgresCancel(socket, packet.parsed, options);
  try {
    if (packet.parsed.kind !== 'startup') throw new DbRouteRefusal('db-bad-packet', `a ${packet.parsed.kind === 'ssl' ? 'second SSLRequest' : 'GSSENCRequest'} inside TLS is not supported`);
    identity = checkDbCertificate(socket, options);
    const route = identity.routeToDatabase;
    if (!route) throw new DbRouteRefusal('db-no-route', `the certificate of ${identity.username} routes to no database; run psh db login DATABASE and connect with the certificate it writes (psh db connect does both)`);
    const pem = new X509Certificate(socket.getPeerCertificate().raw).toString();
    const identityHeader = Buffer.from(pem).toString('base64');
    const key = options.cancelKeys.issue();
    const service = `db:${route.service}`;
    const cluster = identity.routeToCluster;
    let dialed: DialedService;
    try {
      dialed = await options.dial({ cluster, service, identity: identityHeader, headers: { 'postern-db-op': 'connect', 'postern-db-cancel': `${key.processId}:${key.secretKey}` } });
    } catch (error) {
      throw error instanceof DbRouteRefusal ? error : new DbRouteRefusal('db-dial-failed', dbDialMessage(route.service, error));
    }
    options.cancelKeys.set(key.processId, { secretKey: key.secretKey, service, cluster, hostId: dialed.hostId, identity: identityHeader });
    dialed.stream.write(packet.packet);
    options.onConnected?.(socket);
    options.logger.info({ remoteAddr, user: identity.username, database: route.service, cluster, hostId: dialed.hostId }, 'postgres connection routed to a database');
    const result = await pipeBidirectional(socket, dialed.stream);
    options.cancelKeys.delete(key.processId);
    options.logger.debug({ remoteAddr, user: identity.username, bytesIn: result.bytesAToB, bytesOut: result.bytesBToA, error: result.error?.message }, 'postgres connection closed');
  } catch (error) {
    const refusal = error instanceof DbRouteRefusal ? error : new DbRouteRefusal('db-bad-packet', error instanceof Error ? error.message : String(error));
    _refuse(socket, refusal, options, { remoteAddr, identity });
  }
}

/** A CancelRequest (on the single port in plain text, or inside TLS): forwarded to the session's agent, no answer. */
export async function acceptPostgresCancel(socket: Duplex, request: { processId: number; secretKey: number }, options: PostgresRouteOptions): Promise<void> {
  socket.on('error', () => {});
  socket.end();
  socket.resume();
  const entry = options.cancelKeys.find(request.processId, request.secretKey);
  if (!entry) {
    options.logger.info('postgres cancel request for an unknown session ignored');
    return;
  }
  try {
    const { stream } = await options.dial({ cluster: entry.cluster, host: entry.hostId, service: entry.service, identity: entry.identity, headers: { 'postern-db-op': 'cancel', 'postern-db-cancel': `${request.processId}:${request.secretKey}` } });
    stream.on('error', () => {});
    stream.resume();
    stream.end();
    options.logger.info({ service: entry.service, hostId: entry.hostId }, 'postgres cancel request forwarded');
  } catch (error) {
    options.logger.warn({ err: error, service: entry.service }, 'cannot forward a postgres cancel request');
  }
}

/** The user identity of the client certificate on `socket`, or a refusal naming what is wrong. */
export function checkDbCertificate(socket: TLSSocket, options: Pick<PostgresRouteOptions, 'userCaPems' | 'now'>): UserIdentity {
  const raw = socket.getPeerCertificate()?.raw;
  if (raw === undefined) throw new DbRouteRefusal('db-no-certificate', 'no client certificate was presented; run psh db login DATABASE, then connect with psh db connect (or psql with sslcert= and sslkey= from psh db login)');
  const cas = options.userCaPems();
  if (cas.length === 0) throw new DbRouteRefusal('db-bad-certificate', 'this proxy has not loaded the user CA from the auth service yet; try again in a few seconds');
  try {
    return verifyCertificateChain(raw, { trustedCaCerts: cas, expectedKind: 'user', usage: 'client', now: options.now?.() }) as UserIdentity;
  } catch (error) {
    throw new DbRouteRefusal('db-bad-certificate', error instanceof PosternError ? error.message : `certificate check failed: ${String(error)}`);
  }
}

export function dbDialMessage(service: string, error: unknown): string {
  if (error instanceof ServiceDialError) {
    if (error.cause instanceof TunnelRejectedError || error.cause instanceof TunnelDialTimeoutError) return dbDialMessage(service, error.cause);
    return error.message;
  }
  if (error instanceof TunnelRejectedError) return `the agent serving database "${service}" refused the connection: ${error.message}`;
  if (error instanceof TunnelDialTimeoutError) return `the agent serving database "${service}" did not answer in time`;
  if (error instanceof PosternError && error.code === 'PST_NOT_FOUND') return error.message;
  return `cannot reach database "${service}": ${error instanceof Error ? error.message : String(error)}`;
}

function _refuse(socket: Duplex, refusal: DbRouteRefusal, options: PostgresRouteOptions, details: { remoteAddr: string; identity?: UserIdentity }): void {
  options.logger.warn({ remoteAddr: details.remoteAddr, reason: refusal.reason, why: refusal.message, user: details.identity?.username }, 'postgres connection refused');
  options.onRefused?.(refusal.reason);
  if (details.identity !== undefined || refusal.reason === 'db-bad-certificate') {
    options.audit?.({ remoteAddr: details.remoteAddr, user: details.identity?.username, roles: details.identity?.roles, database: details.identity?.routeToDatabase?.service, reason: `${refusal.reason}: ${refusal.message}` });
  }
  const code = refusal.reason === 'db-bad-packet' ? '08P01' : refusal.reason === 'db-dial-failed' || refusal.reason === 'db-unknown' ? '08001' : '28000';
  if (!socket.destroyed && socket.writable) socket.end(encodeErrorResponse({ severity: 'FATAL', code, message: refusal.message }));
  socket.resume();
  setTimeout(() => socket.destroy(), 2_000).unref();
}

