/**
 * One MySQL / MariaDB client session through a tunnel stream (`db:NAME`):
 *
 * ```
 * agent -> db      TCP; read the server's greeting (version, capabilities, scramble)
 * agent -> client  that greeting, without TLS and compression, with our own scramble
 * client -> agent  HandshakeResponse41: user, database (its password is not used: the
 *                  caller is the Postern identity the proxy forwarded)
 * agent            route + RBAC (db-authorize.ts); refusal = ERR 1045 (28000)
 * agent -> db      SSLRequest, TLS (db-client certificate for cert auth), the client's
 *                  response with our user and auth token; auth switch to
 *                  mysql_native_password or caching_sha2_password (fast or full over TLS)
 * agent -> client  OK, then both ways: client->db watched by MysqlCommandAudit
 * ```
 *
 * The client's capabilities are a subset of the greeting's, which are the server's, so
 * after the handshake client and server agree on every packet format and bytes are
 * relayed unchanged.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import type { IncomingDial } from '../../../protocols/tunnel/index.ts';
import { pipeBidirectional } from '../../../protocols/tunnel/index.ts';
import {
  CAP,
  MysqlProtocolError,
  PacketSplitter,
  cachingSha2Token,
  encodeErrPacket,
  encodeGreeting,
  encodeHandshakeResponse,
  encodeOkPacket,
  encodePacket,
  encodeSslRequest,
  isSslRequest,
  nativePasswordToken,
  parseErrPacket,
  parseGreeting,
  parseHandshakeResponse,
  type Greeting,
  type HandshakeResponse,
  type Packet,
} from '../../../protocols/mysql/packets.ts';
import { MysqlCommandAudit, type MysqlCommandEvent } from '../../../protocols/mysql/command-audit.ts';
import type { UserIdentity } from '../../../cluster/api/user-certificate.ts';
import type { Caller } from '../access/cluster-access.ts';
import { authorizeDatabase, checkDatabaseIdentity, DbAccessRefusal } from './db-authorize.ts';
import type { DbAuditEvent } from './db-cluster-access.ts';
import type { PostgresSessionContext } from './postgres-session.ts';

/** The same context as PostgreSQL sessions (MySQL cancels with KILL QUERY, so cancelKeys goes unused). */
export type MysqlSessionContext = PostgresSessionContext;

/** The upstream refused the login: its ERR packet payload, relayed to the client. */
class _UpstreamRefused extends Error {
  readonly payload: Buffer;
  constructor(payload: Buffer) {
    const err = parseErrPacket(payload);
    super(`the database refused the login: ${err.message} (${err.code}, ${err.sqlState})`);
    this.payload = payload;
  }
}

/** Reads whole packets from a socket, one at a time, with a deadline. */
class _PacketReader {
  readonly #socket: Duplex;
  readonly #splitter = new PacketSplitter();
  readonly #queue: Packet[] = [];
  #waiting: { resolve: (p: Packet) => void; reject: (e: Error) => void } | undefined;
  #error: Error | undefined;
  readonly #onData = (chunk: Buffer): void => {
    try {
      this.#queue.push(...this.#splitter.push(chunk));
    } catch (error) {
      this.#fail(error as Error);
      return;
    }
    this.#deliver();
  };
  readonly #onEnd = (): void => this.#fail(new MysqlProtocolError('the connection closed during the handshake'));

  constructor(socket: Duplex) {
    this.#socket = socket;
    socket.on('data', this.#onData);
    socket.once('end', this.#onEnd);
    socket.once('close', this.#onEnd);
    socket.once('error', this.#onEnd);
  }

  next(timeoutMs = 10_000): Promise<Packet> {
    if (this.#queue.length > 0) return Promise.resolve(this.#queue.shift()!);
    if (this.#error) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.#fail(new MysqlProtocolError(`no answer within ${timeoutMs} ms during the handshake`)), timeoutMs);
      timer.unref();
      this.#waiting = { resolve: (p) => { clearTimeout(timer); resolve(p); }, reject: (e) => { clearTimeout(timer); reject(e); } };
    });
  }

  /** Stops reading; returns bytes received beyond the last packet. */
  detach(): Buffer {
    this.#socket.off('data', this.#onData);
    this.#socket.off('end', this.#onEnd);
    this.#socket.off('close', this.#onEnd);
    this.#socket.off('error', this.#onEnd);
    this.#socket.pause();
    return this.#splitter.rest();
  }

  #deliver(): void {
    if (this.#waiting && this.#queue.length > 0) {
      const waiting = this.#waiting;
      this.#waiting = undefined;
      waiting.resolve(this.#queue.shift()!);
    }
  }

  #fail(error: Error): void {
    this.#error ??= error;
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.reject(this.#error);
  }
}

/** Serves one dial; never throws (refusals are ERR packets). */
export async function serveMysqlDial(dial: IncomingDial, context: MysqlSessionContext): Promise<void> {
  const { stream } = dial;
  stream.on('error', () => {});
  let identity: UserIdentity | undefined;
  let caller: Pick<Caller, 'remote' | 'cluster'> | undefined;
  let refusedWho: { user?: string; roles?: string[] } | undefined;
  let response: HandshakeResponse | undefined;
  let upstream: net.Socket | tls.TLSSocket | undefined;
  // The sequence number an answer to the client carries: 0 instead of a greeting, then one past the client's last packet.
  let answerSequence = dial.headers['postern-db-mysql-greeted'] === '1' ? 3 : 0;
  const audit = (event: Omit<DbAuditEvent, 'identity' | 'resource'>): void => context.access.audit({
    ...event,
    identity: identity ? { user: identity.username.slice(0, 253), roles: identity.roles.slice(0, 256) } : refusedWho ?? {},
    resource: { kind: 'db', name: context.db.name },
    fields: { protocol: 'mysql', db_user: response?.user.slice(0, 253), db_name: response?.database?.slice(0, 253), ...event.fields },
  }, caller);
  const client = new _PacketReader(stream);
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
    const [host, port] = _splitHostPort(context.db.uri);
    const raw = net.connect({ host, port: Number(port), noDelay: true });
    raw.on('error', () => {});
    upstream = raw;
    await once(raw, 'connect').catch((error: Error) => {
      throw new Error(`cannot reach database "${context.db.name}" at ${context.db.uri}: ${error.message}`);
    });
    let server = new _PacketReader(raw);
    const greeting = parseGreeting((await server.next()).payload);
    const scramble = Buffer.from(randomBytes(20).map((b) => (b % 94) + 33));
    const offered = (greeting.capabilities & ~(CAP.ssl | CAP.compress)) >>> 0;
    // The proxy's MySQL listener greets the client itself (and did the TLS upgrade); then the response comes first.
    const greeted = dial.headers['postern-db-mysql-greeted'] === '1';
    if (!greeted) {
      stream.write(encodePacket(0, encodeGreeting({ ...greeting, scramble, capabilities: offered, authPlugin: 'mysql_native_password' })));
      answerSequence = 2;
    }
    const first = await client.next();
    answerSequence = (first.sequence + 1) & 0xff;
    if (isSslRequest(first.payload)) throw new MysqlProtocolError('this hop does not do TLS (psh proxy db carries the connection over TLS); connect without SSL, e.g. mariadb --skip-ssl');
    response = parseHandshakeResponse(first.payload);
    // A client that names no schema (mysqlslap, many drivers) starts in the one the certificate is routed to.
    const routed = identity.routeToDatabase?.database;
    if (response.database === undefined && routed) response = { ...response, database: routed, capabilities: (response.capabilities | CAP.connectWithDb) >>> 0 };
    await authorizeDatabase(identity, response.user, response.database, context);
    const login = await _loginUpstream(raw, server, greeting, response, context);
    upstream = login.socket;
    server = login.reader;
    const leftover = server.detach();
    const rest = client.detach();
    stream.write(encodePacket(first.sequence + 1, encodeOkPacket(greeting.status)));
    audit({ type: 'db.session.start', outcome: 'allow', fields: {} });
    context.logger.info({ user: identity.username, db: context.db.name, dbUser: response.user, dbName: response.database }, 'database session started');
    if (leftover.length > 0) stream.write(leftover);
    const watcher = new MysqlCommandAudit((event) => _auditCommand(event, audit));
    if (rest.length > 0) {
      watcher.push(rest);
      upstream.write(rest);
    }
    stream.on('data', (chunk: Buffer) => watcher.push(chunk));
    const started = Date.now();
    const result = await pipeBidirectional(stream, upstream);
    audit({ type: 'db.session.end', outcome: 'success', fields: { duration_ms: Date.now() - started, bytes_in: result.bytesAToB, bytes_out: result.bytesBToA } });
  } catch (error) {
    upstream?.destroy();
    client.detach();
    _refuse(stream, error, { identity, response, answerSequence, context, audit });
  }
}

async function _loginUpstream(raw: net.Socket, reader: _PacketReader, greeting: Greeting, client: HandshakeResponse, context: MysqlSessionContext): Promise<{ socket: net.Socket | tls.TLSSocket; reader: _PacketReader }> {
  const { db } = context;
  let sequence = 1;
  let socket: net.Socket | tls.TLSSocket = raw;
  const capabilities = ((client.capabilities & greeting.capabilities & ~CAP.compress) | CAP.pluginAuth | CAP.secureConnection) >>> 0;
  let password: string | undefined;
  let cert: { certPem: string; keyPem: string } | undefined;
  const user = db.auth.type === 'password' && db.auth.user ? db.auth.user : client.user;
  if (db.auth.type === 'cert') cert = await context.access.clientCertificate(client.user, db.name);
  else password = await context.password();
  let tlsOn = false;
  if (greeting.capabilities & CAP.ssl) {
    raw.write(encodePacket(sequence++, encodeSslRequest({ capabilities, maxPacketSize: client.maxPacketSize, charset: client.charset, filler: client.filler })));
    reader.detach();
    const [host] = _splitHostPort(db.uri);
    const name = db.tls.server_name ?? host;
    const secure = tls.connect({
      socket: raw,
      servername: net.isIP(name) ? undefined : name,
      ca: await context.upstreamCa(),
      cert: cert?.certPem,
      key: cert?.keyPem,
      rejectUnauthorized: db.tls.mode !== 'insecure',
      checkServerIdentity: db.tls.mode === 'verify-full' ? (_n, c) => tls.checkServerIdentity(name, c) : () => undefined,
    });
    secure.on('error', () => {});
    await once(secure, 'secureConnect');
    secure.setNoDelay(true);
    socket = secure;
    reader = new _PacketReader(secure);
    tlsOn = true;
  } else if (db.tls.mode !== 'insecure' || cert) {
    throw new Error(`database "${db.name}" at ${db.uri} does not offer TLS; turn on ssl in the server (ssl_cert, ssl_key), or set tls.mode: insecure with password auth`);
  }
  const token = (plugin: string, scramble: Buffer): Buffer => {
    if (password === undefined) return Buffer.alloc(0);
    if (plugin === 'mysql_native_password') return nativePasswordToken(password, scramble);
    if (plugin === 'caching_sha2_password') return cachingSha2Token(password, scramble);
    if (plugin === 'mysql_clear_password' && tlsOn) return Buffer.from(password + '\0');
    throw new Error(`the database asks for authentication plugin ${plugin}; the agent speaks mysql_native_password and caching_sha2_password`);
  };
  socket.write(encodePacket(sequence++, encodeHandshakeResponse({
    ...client,
    capabilities,
    user,
    authResponse: token(greeting.authPlugin, greeting.scramble),
    authPlugin: greeting.authPlugin,
    ...(client.database ? { database: client.database } : {}),
  })));
  for (let round = 0; round < 8; round++) {
    const packet = await reader.next();
    sequence = packet.sequence + 1;
    const kind = packet.payload[0];
    if (kind === 0x00) return { socket, reader };
    if (kind === 0xff) throw new _UpstreamRefused(packet.payload);
    if (kind === 0xfe) { // AuthSwitchRequest: plugin name, then its data
      const end = packet.payload.indexOf(0, 1);
      const plugin = packet.payload.subarray(1, end < 0 ? undefined : end).toString('latin1');
      const data = end < 0 ? Buffer.alloc(0) : packet.payload.subarray(end + 1);
      socket.write(encodePacket(sequence, token(plugin, data[data.length - 1] === 0 ? data.subarray(0, -1) : data)));
      continue;
    }
    if (kind === 0x01) { // AuthMoreData (caching_sha2_password): 3 fast path done, 4 full authentication
      if (packet.payload[1] === 3) continue;
      if (packet.payload[1] === 4) {
        if (!tlsOn || password === undefined) throw new Error('the database asks for full caching_sha2_password authentication, which the agent does only over TLS with a password');
        socket.write(encodePacket(sequence, Buffer.from(password + '\0')));
        continue;
      }
    }
    throw new MysqlProtocolError(`unexpected packet 0x${(kind ?? 0).toString(16)} during the database login`);
  }
  throw new MysqlProtocolError('the database login did not finish after 8 exchanges');
}

function _auditCommand(event: MysqlCommandEvent, audit: (event: Omit<DbAuditEvent, 'identity' | 'resource'>) => void): void {
  const cut = (sql: string, truncated: boolean): { statement: string; statement_truncated?: true } =>
    sql.length > 4_096 || truncated ? { statement: sql.slice(0, 4_096), statement_truncated: true } : { statement: sql };
  if (event.kind === 'query') audit({ type: 'db.query', outcome: 'success', fields: { message: 'COM_QUERY', ...cut(event.sql, event.truncated) } });
  else if (event.kind === 'prepare') audit({ type: 'db.statement.parse', outcome: 'success', fields: { message: 'COM_STMT_PREPARE', ...cut(event.sql, event.truncated) } });
  else audit({ type: 'db.statement.execute', outcome: 'success', fields: { message: 'COM_STMT_EXECUTE', statement_id: event.statementId } });
}

function _refuse(
  stream: Duplex,
  error: unknown,
  details: { identity?: UserIdentity; response?: HandshakeResponse; answerSequence: number; context: MysqlSessionContext; audit: (event: Omit<DbAuditEvent, 'identity' | 'resource'>) => void },
): void {
  const { context } = details;
  const reason = error instanceof Error ? error.message : String(error);
  let payload: Buffer;
  if (error instanceof _UpstreamRefused) payload = error.payload;
  else if (error instanceof DbAccessRefusal) payload = encodeErrPacket(1045, '28000', `Access to database "${context.db.name}" denied: ${reason}`);
  else if (error instanceof MysqlProtocolError) payload = encodeErrPacket(1043, '08S01', `Bad handshake: ${reason}`);
  else payload = encodeErrPacket(2013, 'HY000', `Postern: ${reason}`);
  context.logger.warn({ user: details.identity?.username, db: context.db.name, dbUser: details.response?.user, reason }, 'database session refused');
  details.audit({ type: error instanceof DbAccessRefusal ? 'access.denied' : 'db.session.failed', outcome: error instanceof DbAccessRefusal ? 'deny' : 'failure', reason: reason.slice(0, 1024), fields: {} });
  if (!stream.destroyed && stream.writable) stream.end(encodePacket(details.answerSequence, payload));
  stream.resume();
  setTimeout(() => stream.destroy(), 2_000).unref();
}

function _splitHostPort(uri: string): [string, string] {
  const colon = uri.lastIndexOf(':');
  return [uri.slice(0, colon).replace(/^\[|\]$/g, ''), uri.slice(colon + 1)];
}
