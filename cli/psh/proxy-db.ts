/**
 * `psh proxy db DB --port P [--tunnel]`: a local listener on 127.0.0.1:P for a
 * logged-in database (`psh db login DB` first).
 *
 * - `--tunnel`: psh authenticates for the client. Each local connection is carried over
 *   TLS to the proxy with ALPN `postern-postgres` and the database certificate; the
 *   client speaks plain PostgreSQL to 127.0.0.1:P (an SSLRequest is answered `N`), so
 *   any client or ORM connects without certificates. CancelRequests travel the same way.
 * - without it: bytes are forwarded to the proxy's port unchanged, and the client
 *   brings TLS and the certificate itself (`psh db connect` prints nothing of this; use
 *   the sslcert/sslkey of `psh db login`).
 */
import net from 'node:net';
import tls from 'node:tls';
import { readFile } from 'node:fs/promises';
import { once } from 'node:events';
import { UsageError, stringOption, type Invocation } from '../command.ts';
import { parseProxyAddress } from '../../cluster/api/web-client.ts';
import { pipeBidirectional } from '../../protocols/tunnel/index.ts';
import { readStartupPacket } from '../../protocols/postgres/startup.ts';
import { encodeErrorResponse } from '../../protocols/postgres/messages.ts';
import { loadProfile, type Profile } from './profile.ts';
import { loadDbLogin, type DbLogin } from './db-login-files.ts';

export async function proxyDb(invocation: Invocation): Promise<number> {
  const [name] = invocation.positionals;
  if (!name || invocation.positionals.length > 1) throw new UsageError('expected one database name: psh proxy db DB --port PORT [--tunnel]');
  const portText = stringOption(invocation, 'port') ?? '0';
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new UsageError(`--port ${portText} is not a TCP port`);
  const profile = await loadProfile(stringOption(invocation, 'proxy'));
  const tunnel = invocation.options.tunnel === true;
  const { server, port: bound, login } = await startDbListener(profile, name, { port, tunnel });
  const open = new Set<net.Socket>();
  server.on('connection', (socket: net.Socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
  });
  process.stdout.write(!tunnel
    ? `Listening on 127.0.0.1:${bound} for database ${name}; clients bring TLS and the certificate from psh db login\n`
    : login.protocol === 'mysql'
      ? `Listening on 127.0.0.1:${bound} for database ${name}; connect without certificates, e.g.\n  mariadb --host 127.0.0.1 --port ${bound} --user ${login.db_user}${login.db_name ? ` ${login.db_name}` : ''}\n`
      : `Listening on 127.0.0.1:${bound} for database ${name}; connect without certificates, e.g.\n  psql "host=127.0.0.1 port=${bound} user=${login.db_user} dbname=${login.db_name ?? login.db_user} sslmode=disable"\n`);
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      server.close(() => resolve());
      // Open sessions end now: a socket still piping while Node exits can hold its exit up
      // (seen: a process spinning in exit clean-up after SIGTERM).
      for (const socket of open) socket.destroy();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  return 0;
}

/** Listens on 127.0.0.1:`port` (0: a free one) for a logged-in database. */
export async function startDbListener(profile: Profile, name: string, options: { port: number; tunnel: boolean }): Promise<{ server: net.Server; port: number; login: DbLogin }> {
  const files = await loadDbLogin(profile, name);
  const mysql = files.login.protocol === 'mysql';
  if (mysql && !options.tunnel) throw new UsageError(`database "${name}" speaks mysql, whose clients cannot bring the certificate themselves: add --tunnel`);
  const [cert, key, ca] = await Promise.all([files.certFile, files.keyFile, files.caFile].map((f) => readFile(f, 'utf8')));
  const address = parseProxyAddress(profile.proxy);
  const target = { host: address.host, port: address.port, cert: cert!, key: key!, ca: ca! };
  const server = net.createServer((local) => {
    local.on('error', () => {});
    local.setNoDelay(true);
    const serve = !options.tunnel ? _forward(local, address) : mysql ? _tunnelMysql(local, target) : _tunnelConnection(local, target);
    serve.catch((error: unknown) => process.stderr.write(`psh: ${error instanceof Error ? error.message : String(error)}\n`));
  });
  server.listen(options.port, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as net.AddressInfo).port, login: files.login };
}

/** MySQL: the server (the agent) speaks first, so the TLS connection is opened at once and bytes flow both ways. */
async function _tunnelMysql(local: net.Socket, target: { host: string; port: number; cert: string; key: string; ca: string }): Promise<void> {
  const remote = _connectProxy(target, 'postern-mysql');
  try {
    await once(remote, 'secureConnect');
  } catch (error) {
    local.destroy();
    throw new Error(`cannot reach the proxy ${target.host}:${target.port}: ${(error as Error).message}`);
  }
  remote.setNoDelay(true);
  await pipeBidirectional(local, remote);
}

function _connectProxy(target: { host: string; port: number; cert: string; key: string; ca: string }, alpn: string): tls.TLSSocket {
  const remote = tls.connect({
    host: target.host,
    port: target.port,
    cert: target.cert,
    key: target.key,
    ca: target.ca,
    ALPNProtocols: [alpn],
    servername: net.isIP(target.host) ? undefined : target.host,
  });
  remote.on('error', () => {});
  return remote;
}

async function _forward(local: net.Socket, address: { host: string; port: number }): Promise<void> {
  const remote = net.connect({ host: address.host, port: address.port, noDelay: true });
  remote.on('error', () => {});
  await pipeBidirectional(local, remote);
}

async function _tunnelConnection(local: net.Socket, target: { host: string; port: number; cert: string; key: string; ca: string }): Promise<void> {
  let first = await readStartupPacket(local, 30_000);
  // The client asks for TLS (or GSS encryption) first: this hop is local and plain.
  for (let i = 0; i < 2 && (first.parsed.kind === 'ssl' || first.parsed.kind === 'gssenc'); i++) {
    local.write('N');
    first = await readStartupPacket(local, 30_000);
  }
  if (first.parsed.kind === 'ssl' || first.parsed.kind === 'gssenc') throw new Error('the client keeps asking for encryption');
  const remote = _connectProxy(target, 'postern-postgres');
  try {
    await once(remote, 'secureConnect');
  } catch (error) {
    local.end(encodeErrorResponse({ severity: 'FATAL', code: '08001', message: `psh cannot reach the proxy ${target.host}:${target.port}: ${(error as Error).message}` }));
    return;
  }
  remote.setNoDelay(true);
  remote.write(first.packet);
  if (first.parsed.kind === 'cancel') {
    remote.end();
    local.end();
    return;
  }
  await pipeBidirectional(local, remote);
}
