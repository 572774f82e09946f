/**
 * The agent's login to an upstream PostgreSQL server:
 *
 * ```
 * TCP connect -> SSLRequest -> 'S' -> TLS (CA and name checked per tls.mode; the
 * db-client certificate when auth.type is cert) -> StartupMessage -> authentication
 * (none more for cert; cleartext, md5 or SCRAM-SHA-256 for a password) -> AuthenticationOk
 * -> ParameterStatus..., BackendKeyData, ReadyForQuery
 * ```
 *
 * Resolves with the TLS socket and the messages the client must see (from
 * AuthenticationOk to ReadyForQuery, BackendKeyData taken out); an ErrorResponse from
 * the server rejects with an {@link UpstreamRefusedError} carrying it, so the client
 * sees the database's own words.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { encodeStartupMessage, sslRequestCode } from '../../../protocols/postgres/startup.ts';
import {
  MessageSplitter,
  encodePasswordMessage,
  encodeSaslInitialResponse,
  encodeSaslResponse,
  parseErrorFields,
} from '../../../protocols/postgres/messages.ts';
import { ScramClient } from '../../../protocols/postgres/scram.ts';

export interface UpstreamTls {
  mode: 'verify-full' | 'verify-ca' | 'insecure';
  /** Trusted CAs (PEM); the system's when absent. */
  ca?: string;
  serverName?: string;
  /** The db-client certificate and key, for cert auth. */
  cert?: string;
  key?: string;
}

export interface UpstreamLogin {
  host: string;
  port: number;
  tls: UpstreamTls;
  /** Start-up parameters: user, database, application_name, ... */
  parameters: Record<string, string>;
  password?: string;
  timeoutMs?: number;
}

export interface UpstreamSession {
  socket: tls.TLSSocket;
  /** Messages to relay to the client, in order (raw bytes). */
  greeting: Buffer[];
  processId: number;
  secretKey: number;
  /** Bytes received after ReadyForQuery (normally none). */
  rest: Buffer;
}

/** The database itself refused the login; `errorResponse` is its message, to relay as is. */
export class UpstreamRefusedError extends Error {
  readonly errorResponse: Buffer;
  readonly fields: Record<string, string>;
  constructor(errorResponse: Buffer, fields: Record<string, string>) {
    super(`the database refused the login: ${fields.M ?? 'no message'} (SQLSTATE ${fields.C ?? '?'})`);
    this.errorResponse = errorResponse;
    this.fields = fields;
  }
}

/** Opens TLS to the database (SSLRequest first, as PostgreSQL expects). */
export async function connectUpstreamTls(host: string, port: number, options: UpstreamTls, timeoutMs: number): Promise<tls.TLSSocket> {
  const raw = net.connect({ host, port, noDelay: true });
  raw.setTimeout(timeoutMs, () => raw.destroy(new Error(`no answer from ${host}:${port} within ${timeoutMs} ms`)));
  await once(raw, 'connect');
  const request = Buffer.alloc(8);
  request.writeUInt32BE(8, 0);
  request.writeUInt32BE(sslRequestCode, 4);
  raw.write(request);
  const [answer] = (await once(raw, 'data')) as [Buffer];
  if (answer[0] !== 0x53 /* S */) {
    raw.destroy();
    throw new Error(`${host}:${port} does not accept TLS (it answered ${JSON.stringify(String.fromCharCode(answer[0] ?? 0))} to SSLRequest); turn ssl on in postgresql.conf`);
  }
  const verify = options.mode !== 'insecure';
  const socket = tls.connect({
    socket: raw,
    servername: net.isIP(options.serverName ?? host) ? undefined : (options.serverName ?? host),
    ca: options.ca,
    cert: options.cert,
    key: options.key,
    rejectUnauthorized: verify,
    checkServerIdentity: options.mode === 'verify-full'
      ? (_name, cert) => tls.checkServerIdentity(options.serverName ?? host, cert)
      : () => undefined,
  });
  await once(socket, 'secureConnect');
  raw.setTimeout(0);
  socket.setNoDelay(true);
  return socket;
}

/** Logs in; see the module comment. */
export async function loginUpstream(login: UpstreamLogin): Promise<UpstreamSession> {
  const timeoutMs = login.timeoutMs ?? 10_000;
  const socket = await connectUpstreamTls(login.host, login.port, login.tls, timeoutMs);
  try {
    return await _handshake(socket, login, timeoutMs);
  } catch (error) {
    socket.destroy();
    throw error;
  }
}

function _handshake(socket: tls.TLSSocket, login: UpstreamLogin, timeoutMs: number): Promise<UpstreamSession> {
  return new Promise((resolve, reject) => {
    const splitter = new MessageSplitter();
    const greeting: Buffer[] = [];
    let processId = 0;
    let secretKey = 0;
    let scram: ScramClient | undefined;
    const timer = setTimeout(() => done(new Error(`the database did not finish the login within ${timeoutMs} ms`)), timeoutMs);
    const done = (error?: Error, session?: UpstreamSession): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onError);
      socket.pause();
      if (error) reject(error);
      else resolve(session!);
    };
    const needPassword = (): string => {
      if (login.password === undefined) throw new Error('the database asks for a password, and this database is configured for certificate auth; set auth.type: password, or configure the database for cert auth (pctl auth sign --format=db)');
      return login.password;
    };
    const onData = (chunk: Buffer): void => {
      try {
        for (const message of splitter.push(chunk)) {
          switch (message.type) {
            case 'E':
              return done(new UpstreamRefusedError(Buffer.from(message.raw), parseErrorFields(message.body)));
            case 'R':
              _authenticate(message.body);
              break;
            case 'K':
              processId = message.body.readInt32BE(0);
              secretKey = message.body.readInt32BE(4);
              break;
            case 'Z':
              greeting.push(Buffer.from(message.raw));
              return done(undefined, { socket, greeting, processId, secretKey, rest: splitter.rest() });
            default:
              greeting.push(Buffer.from(message.raw));
          }
        }
      } catch (error) {
        done(error as Error);
      }
    };
    const _authenticate = (body: Buffer): void => {
      const code = body.readInt32BE(0);
      switch (code) {
        case 0: // AuthenticationOk
          greeting.push(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0]));
          return;
        case 3: // cleartext
          socket.write(encodePasswordMessage(needPassword()));
          return;
        case 5: { // md5(md5(password + user) + salt)
          const inner = createHash('md5').update(needPassword() + login.parameters.user).digest('hex');
          socket.write(encodePasswordMessage('md5' + createHash('md5').update(Buffer.concat([Buffer.from(inner), body.subarray(4, 8)])).digest('hex')));
          return;
        }
        case 10: { // SASL
          const mechanisms = body.subarray(4).toString('utf8').split('\0').filter(Boolean);
          if (!mechanisms.includes('SCRAM-SHA-256')) throw new Error(`the database offers SASL ${mechanisms.join(', ')}; only SCRAM-SHA-256 is supported`);
          scram = new ScramClient(needPassword());
          socket.write(encodeSaslInitialResponse('SCRAM-SHA-256', scram.first()));
          return;
        }
        case 11: // SASLContinue
          if (!scram) throw new Error('the database sent SASLContinue without SASL');
          socket.write(encodeSaslResponse(scram.final(body.subarray(4).toString('utf8'))));
          return;
        case 12: // SASLFinal
          if (!scram) throw new Error('the database sent SASLFinal without SASL');
          scram.verify(body.subarray(4).toString('utf8'));
          return;
        default:
          throw new Error(`the database asks for authentication method ${code}, which the agent does not speak (supported: certificate, password, md5, SCRAM-SHA-256)`);
      }
    };
    const onClose = (): void => done(new Error('the database closed the connection during the login'));
    const onError = (error: Error): void => done(error);
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.once('error', onError);
    socket.write(encodeStartupMessage(login.parameters));
  });
}
