/**
 * One PostgreSQL client session through a tunnel stream (`db:NAME`, op `connect`):
 *
 * ```
 * proxy -> agent   headers: postern-identity = base64(user certificate PEM)
 *                           postern-db-cancel = "PID:SECRET" (the key the client will see)
 *                  stream:  StartupMessage, then the client's messages
 * agent            verify the certificate (user CA) -> route (service, user, database)
 *                  -> RBAC checkDatabase -> upstream login (db-client cert or password)
 * agent -> client  AuthenticationOk, ParameterStatus..., BackendKeyData(proxy key), ReadyForQuery
 *                  then both ways: client->db watched by FrontendAudit, db->client untouched
 * ```
 *
 * A refusal is an ErrorResponse (SQLSTATE 28000, FATAL) the client prints, and an
 * audit event. Op `cancel` forwards a CancelRequest for a session this agent serves.
 */
import { timingSafeEqual } from 'node:crypto';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { IncomingDial } from '../../../protocols/tunnel/index.ts';
import { pipeBidirectional } from '../../../protocols/tunnel/index.ts';
import { encodeCancelRequest, readStartupPacket, PostgresProtocolError } from '../../../protocols/postgres/startup.ts';
import { encodeBackendKeyData, encodeErrorResponse } from '../../../protocols/postgres/messages.ts';
import { FrontendAudit, type FrontendEvent } from '../../../protocols/postgres/frontend-audit.ts';
import type { UserIdentity } from '../../../cluster/api/user-certificate.ts';
import type { DatabaseConfig } from '../../../cluster/common/config.ts';
import type { Logger } from '../../../cluster/common/logger.ts';
import type { DbAuditEvent, DbClusterAccess } from './db-cluster-access.ts';
import type { Caller } from '../access/cluster-access.ts';
import { authorizeDatabase, checkDatabaseIdentity, DbAccessRefusal } from './db-authorize.ts';
import { loginUpstream, UpstreamRefusedError, type UpstreamTls } from './postgres-upstream.ts';

/** Longest statement text kept in an audit event. */
export const maxAuditedStatementChars = 4_096;

/** The upstream backend behind a key the client was given. */
interface CancelTarget {
  secretKey: number;
  upstream: { processId: number; secretKey: number };
}

export interface PostgresSessionContext {
  db: DatabaseConfig;
  access: DbClusterAccess;
  cluster: () => string;
  labels: () => Record<string, string>;
  /** Password for upstream password auth, read at each login. */
  password: () => Promise<string | undefined>;
  /** CA file contents for the upstream TLS, if configured. */
  upstreamCa: () => Promise<string | undefined>;
  cancelKeys: Map<number, CancelTarget>;
  logger: Logger;
}

/** Serves one dial; never throws (refusals go to the client in-band). */
export async function servePostgresDial(dial: IncomingDial, context: PostgresSessionContext): Promise<void> {
  const { stream } = dial;
  stream.on('error', () => {});
  if (dial.headers['postern-db-op'] === 'cancel') return _cancel(dial, context);
  const log = context.logger;
  let identity: UserIdentity | undefined;
  let caller: Pick<Caller, 'remote' | 'cluster'> | undefined;
  let refusedWho: { user?: string; roles?: string[] } | undefined;
  let parameters: Record<string, string> | undefined;
  const audit = (event: Omit<DbAuditEvent, 'identity' | 'resource'>): void => context.access.audit({
    ...event,
    identity: identity ? { user: identity.username.slice(0, 253), roles: identity.roles.slice(0, 256) } : refusedWho ?? {},
    resource: { kind: 'db', name: context.db.name },
    fields: { protocol: 'postgres', db_user: parameters?.user?.slice(0, 253), db_name: (parameters?.database ?? parameters?.user)?.slice(0, 253), ...event.fields },
  }, caller);
  try {
    try {
      ({ identity, caller } = await checkDatabaseIdentity(dial.identity, context));
    } catch (error) {
      if (error instanceof DbAccessRefusal) {
        refusedWho = error.who;
        caller = error.about;
      }
      throw error;
    }
    const startup = await readStartupPacket(stream, 10_000);
    if (startup.parsed.kind !== 'startup') throw new DbAccessRefusal(`expected a StartupMessage, got a ${startup.parsed.kind} request`);
    parameters = startup.parsed.parameters;
    const dbUser = parameters.user!;
    const dbName = parameters.database || dbUser;
    await authorizeDatabase(identity, dbUser, dbName, context);
    const key = _cancelKey(dial);
    const session = await _login(context, parameters, dbUser);
    const sessionId = `${key.processId}`;
    audit({ type: 'db.session.start', outcome: 'allow', fields: { session_id: sessionId } });
    log.info({ user: identity.username, db: context.db.name, dbUser, dbName }, 'database session started');
    for (const message of session.greeting) {
      if (message[0] === 0x5a /* Z */) stream.write(encodeBackendKeyData(key.processId, key.secretKey));
      stream.write(message);
    }
    if (session.rest.length > 0) stream.write(session.rest);
    context.cancelKeys.set(key.processId, { secretKey: key.secretKey, upstream: { processId: session.processId, secretKey: session.secretKey } });
    const watcher = new FrontendAudit((event) => _auditStatement(event, audit, sessionId));
    stream.on('data', (chunk: Buffer) => watcher.push(chunk));
    const started = Date.now();
    const result = await pipeBidirectional(stream, session.socket);
    context.cancelKeys.delete(key.processId);
    audit({ type: 'db.session.end', outcome: 'success', fields: { session_id: sessionId, duration_ms: Date.now() - started, bytes_in: result.bytesAToB, bytes_out: result.bytesBToA } });
  } catch (error) {
    _refuse(stream, error, { identity, parameters, context, audit });
  }
}

function _cancelKey(dial: IncomingDial): { processId: number; secretKey: number } {
  const match = /^(-?\d{1,10}):(-?\d{1,10})$/.exec(dial.headers['postern-db-cancel'] ?? '');
  if (!match) throw new DbAccessRefusal('the proxy sent no cancel key for this session');
  return { processId: Number(match[1]) | 0, secretKey: Number(match[2]) | 0 };
}

async function _login(context: PostgresSessionContext, parameters: Record<string, string>, dbUser: string) {
  const { db } = context;
  const [host, portText] = _splitHostPort(db.uri);
  const tlsOptions: UpstreamTls = { mode: db.tls.mode, ca: await context.upstreamCa(), serverName: db.tls.server_name };
  let password: string | undefined;
  const upstreamParameters = { ...parameters };
  if (db.auth.type === 'cert') {
    const cert = await context.access.clientCertificate(dbUser, db.name);
    tlsOptions.cert = cert.certPem;
    tlsOptions.key = cert.keyPem;
  } else {
    password = await context.password();
    if (db.auth.user) upstreamParameters.user = db.auth.user;
  }
  try {
    return await loginUpstream({ host, port: Number(portText), tls: tlsOptions, parameters: upstreamParameters, password });
  } catch (error) {
    if (error instanceof UpstreamRefusedError) throw error;
    throw new Error(`cannot log in to database "${db.name}" at ${db.uri}: ${(error as Error).message}`);
  }
}

function _auditStatement(event: FrontendEvent, audit: (event: Omit<DbAuditEvent, 'identity' | 'resource'>) => void, sessionId: string): void {
  const cut = (sql: string, truncated: boolean): { statement: string; statement_truncated?: true } =>
    sql.length > maxAuditedStatementChars || truncated ? { statement: sql.slice(0, maxAuditedStatementChars), statement_truncated: true } : { statement: sql };
  switch (event.kind) {
    case 'query':
      return audit({ type: 'db.query', outcome: 'success', fields: { session_id: sessionId, message: 'query', ...cut(event.sql, event.truncated) } });
    case 'parse':
      return audit({ type: 'db.statement.parse', outcome: 'success', fields: { session_id: sessionId, message: 'parse', statement_name: event.statement.slice(0, 253), parameter_types: event.parameterTypes, ...cut(event.sql, event.truncated) } });
    case 'bind':
      return audit({ type: 'db.statement.bind', outcome: 'success', fields: { session_id: sessionId, message: 'bind', statement_name: event.statement.slice(0, 253), portal: event.portal.slice(0, 253), parameters: event.parameters } });
    case 'execute':
      return audit({ type: 'db.statement.execute', outcome: 'success', fields: { session_id: sessionId, message: 'execute', portal: event.portal.slice(0, 253) } });
    case 'terminate':
      return;
  }
}

function _refuse(
  stream: Duplex,
  error: unknown,
  details: { identity?: UserIdentity; parameters?: Record<string, string>; context: PostgresSessionContext; audit: (event: Omit<DbAuditEvent, 'identity' | 'resource'>) => void },
): void {
  const { context } = details;
  let response: Buffer;
  let reason: string;
  if (error instanceof UpstreamRefusedError) {
    response = error.errorResponse;
    reason = error.message;
  } else {
    const denied = error instanceof DbAccessRefusal || error instanceof PostgresProtocolError;
    reason = error instanceof Error ? error.message : String(error);
    response = encodeErrorResponse(denied
      ? { severity: 'FATAL', code: error instanceof PostgresProtocolError ? '08P01' : '28000', message: `access to database "${context.db.name}" denied: ${reason}` }
      : { severity: 'FATAL', code: '08006', message: `Postern: ${reason}` });
  }
  context.logger.warn({ user: details.identity?.username, db: context.db.name, dbUser: details.parameters?.user, reason }, 'database session refused');
  details.audit({ type: error instanceof DbAccessRefusal ? 'access.denied' : 'db.session.failed', outcome: error instanceof DbAccessRefusal ? 'deny' : 'failure', reason: reason.slice(0, 1024), fields: {} });
  if (!stream.destroyed && stream.writable) stream.end(response);
  stream.resume();
  setTimeout(() => stream.destroy(), 2_000).unref();
}

/** Forwards a CancelRequest for one of this agent's sessions; unknown keys are ignored, as PostgreSQL does. */
function _cancel(dial: IncomingDial, context: PostgresSessionContext): void {
  const { stream } = dial;
  stream.resume();
  stream.end();
  const match = /^(-?\d{1,10}):(-?\d{1,10})$/.exec(dial.headers['postern-db-cancel'] ?? '');
  if (!match) return;
  const target = context.cancelKeys.get(Number(match[1]) | 0);
  const given = Buffer.alloc(4);
  given.writeInt32BE(Number(match[2]) | 0);
  const expected = Buffer.alloc(4);
  expected.writeInt32BE(target?.secretKey ?? 0);
  if (!target || !timingSafeEqual(given, expected)) {
    context.logger.info({ db: context.db.name }, 'cancel request for an unknown session ignored');
    return;
  }
  const [host, port] = _splitHostPort(context.db.uri);
  const socket = net.connect({ host, port: Number(port) }, () => socket.end(encodeCancelRequest(target.upstream.processId, target.upstream.secretKey)));
  socket.on('error', (error) => context.logger.warn({ err: error, db: context.db.name }, 'cannot forward a cancel request to the database'));
  socket.resume();
  context.logger.info({ db: context.db.name }, 'cancel request forwarded to the database');
}

function _splitHostPort(uri: string): [string, string] {
  const colon = uri.lastIndexOf(':');
  return [uri.slice(0, colon).replace(/^\[|\]$/g, ''), uri.slice(colon + 1)];
}
