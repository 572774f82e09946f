/**
 * The optional dedicated MySQL listener (`proxy.mysql_listen_addr`): plain MySQL and
 * MariaDB clients connect with TLS and the database certificate of `psh db login`
 * (`mariadb --ssl --ssl-cert=DB.crt --ssl-key=DB.key --ssl-ca=cluster-ca.pem`), no psh
 * in between. MySQL's server speaks first and upgrades to TLS inside its protocol, so
 * the proxy greets, takes the SSLRequest, does the TLS handshake asking for the client
 * certificate, then dials the agent with header `postern-db-mysql-greeted: 1`; the
 * agent reads the client's handshake response from there on (mysql-session.ts).
 *
 * The greeting offers what MySQL 5.7+/8 and MariaDB 10+ servers all support, so the
 * client's choices hold for the upstream too.
 */
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import type { Logger } from '../common/logger.ts';
import { CAP, encodeErrPacket, encodeGreeting, encodePacket, isSslRequest } from '../../protocols/mysql/packets.ts';
import { acceptMysqlRoute, type MysqlRouteOptions } from './mysql-route.ts';

/** Capabilities the proxy's greeting offers. */
const offered = (CAP.longPassword | 0x4 /* LONG_FLAG */ | CAP.connectWithDb | CAP.protocol41 | 0x2000 /* TRANSACTIONS */ | CAP.ssl
  | CAP.secureConnection | 0x10000 /* MULTI_STATEMENTS */ | 0x20000 /* MULTI_RESULTS */ | 0x40000 /* PS_MULTI_RESULTS */
  | CAP.pluginAuth | CAP.connectAttrs | CAP.pluginAuthLenencData) >>> 0;

export interface MysqlListenerOptions extends MysqlRouteOptions {
  /** TLS settings for the upgrade (server certificate, CAs for client certificates). */
  tls: () => tls.SecureContextOptions;
  logger: Logger;
}

/** Starts the listener; resolves with the bound server. */
export async function startMysqlListener(address: string, options: MysqlListenerOptions): Promise<net.Server> {
  const server = net.createServer({ noDelay: true }, (socket) => void _accept(socket, options));
  const colon = address.lastIndexOf(':');
  server.listen(Number(address.slice(colon + 1)), address.slice(0, colon).replace(/^\[|\]$/g, ''));
  await once(server, 'listening');
  return server;
}

async function _accept(socket: net.Socket, options: MysqlListenerOptions): Promise<void> {
  socket.on('error', () => {});
  const scramble = Buffer.from(randomBytes(20).map((b) => (b % 94) + 33));
  socket.write(encodePacket(0, encodeGreeting({
    serverVersion: '8.0.36-Postern', connectionId: randomBytes(4).readUInt32LE() & 0x7fffffff, scramble, capabilities: offered,
    charset: 45 /* utf8mb4_general_ci */, status: 2 /* autocommit */, reserved: Buffer.alloc(10), authPlugin: 'mysql_native_password',
  })));
  const refuse = (sequence: number, message: string): void => {
    options.onRefused?.('db-bad-packet');
    options.logger.info({ remoteAddr: socket.remoteAddress, why: message }, 'mysql connection refused');
    socket.end(encodePacket(sequence, encodeErrPacket(1045, '28000', message)));
    setTimeout(() => socket.destroy(), 2_000).unref();
  };
  let first: { sequence: number; payload: Buffer };
  try {
    first = await _firstPacket(socket);
  } catch (error) {
    return refuse(2, (error as Error).message);
  }
  if (!isSslRequest(first.payload)) {
    return refuse(first.sequence + 1, 'Postern needs TLS with your database certificate: run psh db connect DB, or mariadb --ssl --ssl-cert=DB.crt --ssl-key=DB.key --ssl-ca=cluster-ca.pem (files from psh db login)');
  }
  const secure = new tls.TLSSocket(socket, { isServer: true, secureContext: tls.createSecureContext(options.tls()), requestCert: true, rejectUnauthorized: false });
  secure.on('error', () => {});
  try {
    await once(secure, 'secure');
  } catch {
    socket.destroy();
    return;
  }
  await acceptMysqlRoute(secure, { ...options, headers: { 'postern-db-mysql-greeted': '1' }, refusalSequence: first.sequence + 2 });
}

/** Reads exactly one packet (what follows, the TLS ClientHello, stays in the socket). */
function _firstPacket(socket: net.Socket): Promise<{ sequence: number; payload: Buffer }> {
  return new Promise((resolve, reject) => {
    let buffered: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => done(new Error('no handshake within 10 s')), 10_000);
    const done = (error?: Error, length?: number): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.pause();
      if (error) return reject(error);
      const rest = buffered.subarray(4 + length!);
      if (rest.length > 0) socket.unshift(rest);
      resolve({ sequence: buffered[3]!, payload: Buffer.from(buffered.subarray(4, 4 + length!)) });
    };
    const onData = (chunk: Buffer): void => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      if (buffered.length < 4) return;
      const length = buffered.readUIntLE(0, 3);
      if (length > 1024) return done(new Error(`a first packet of ${length} bytes; expected an SSLRequest or a handshake response`));
      if (buffered.length >= 4 + length) done(undefined, length);
    };
    const onEnd = (): void => done(new Error('the client closed the connection'));
    socket.on('data', onData);
    socket.once('end', onEnd);
  });
}
