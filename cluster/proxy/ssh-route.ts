/**
 * ALPN `postern-ssh`: a user's OpenSSH client reaches an agent's SSH service through
 * the proxy, with `psh proxy ssh` as its ProxyCommand.
 *
 * ```
 * psh   -> proxy  TLS, ALPN postern-ssh, the user's X.509 certificate (profile tls.crt)
 * psh   -> proxy  {"node":"web-1","port":22,"login":"alice","cluster":"leaf"}\n  (one JSON line; cluster optional)
 * proxy -> psh    ok\n                                              then raw SSH bytes both ways
 *              |  error <reason>\n                                  then the connection closes
 * proxy -> agent  dialer.dial({ cluster, host: node, service: 'ssh', identity: base64(user certificate PEM) })
 * ```
 *
 * The cluster is the request's `cluster`, else the certificate's route-to-cluster; a
 * leaf is reached through its tunnel (service-dialer.ts). The proxy checks only that
 * the caller holds a current user certificate of this cluster: whether that user may log in as that login on that node is the agent's
 * decision, from the SSH certificate inside the SSH session. The node is named by host
 * id or by node name; a name several hosts share is refused with their ids. The port
 * is informational: an agent serves one SSH service. Refusals are logged and counted,
 * and audited (`access.denied`) when a certificate was presented.
 */
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { PosternError } from '../../protocols/errors.ts';
import { pipeBidirectional } from '../../protocols/tunnel/index.ts';
import { HEADER_CLIENT_ADDRESS } from '../../protocols/tunnel/headers.ts';
import { verifyCertificateChain } from '../auth/pki/verify-certificate.ts';
import type { UserIdentity } from '../auth/pki/identity.ts';
import type { Logger } from '../common/logger.ts';
import { ServiceDialError, type ServiceDialFailure } from './errors.ts';
import type { ServiceDialer } from './service-dialer.ts';

/** The service name agents serve SSH under. */
export const sshService = 'ssh';
/** Longest request line accepted. */
export const maxSshRequestBytes = 4_096;

/** What the client asks for, as its one JSON line. */
export interface SshRouteRequest {
  node: string;
  port?: number;
  login?: string;
  /** A leaf cluster; default the certificate's route-to-cluster. */
  cluster?: string;
}

export type { KnownHost as KnownNode } from './service-dialer.ts';

/** Why a connection was refused; also the metrics label. */
export type SshRefusal =
  | 'ssh-no-certificate' | 'ssh-bad-certificate' | 'ssh-bad-request' | 'ssh-unknown-node' | 'ssh-ambiguous-node' | 'ssh-node-offline' | 'ssh-dial-failed'
  | 'ssh-unknown-cluster' | 'ssh-cluster-offline' | 'ssh-cluster-denied';

export const sshRefusalOf: Record<ServiceDialFailure, SshRefusal> = {
  'unknown-host': 'ssh-unknown-node',
  'ambiguous-host': 'ssh-ambiguous-node',
  'host-offline': 'ssh-node-offline',
  'dial-failed': 'ssh-dial-failed',
  'unknown-cluster': 'ssh-unknown-cluster',
  'cluster-offline': 'ssh-cluster-offline',
  'cluster-denied': 'ssh-cluster-denied',
};

/** A refusal worth an audit event: the caller presented a certificate. */
export interface SshRouteAuditEvent {
  remoteAddr: string;
  user?: string;
  roles?: string[];
  node?: string;
  login?: string;
  cluster?: string;
  reason: string;
}

/** What {@link acceptSshRoute} needs. */
export interface SshRouteOptions {
  dialer: ServiceDialer;
  /** The user CA certificates (read at each connection). */
  userCaPems: () => readonly string[];
  logger: Logger;
  onRefused?: (reason: SshRefusal) => void;
  audit?: (event: SshRouteAuditEvent) => void;
  /** Called once the route is up (metrics). */
  onConnected?: (socket: TLSSocket) => void;
  /** Time for the request line. Default 10 s. */
  requestTimeoutMs?: number;
  now?: () => Date;
}

/** A refused SSH route, with its metrics label (the jump server refuses with it too). */
export class SshRouteRefusal extends Error {
  readonly reason: SshRefusal;
  constructor(reason: SshRefusal, message: string) {
    super(message);
    this.reason = reason;
  }
}

/** Serves one TLS connection that negotiated ALPN `postern-ssh`; never rejects. */
export async function acceptSshRoute(socket: TLSSocket, options: SshRouteOptions): Promise<void> {
  const remoteAddr = `${socket.remoteAddress ?? 'unknown'}:${socket.remotePort ?? 0}`;
  socket.on('error', () => {}); // errors end the pipe or the read below; no crash
  let identity: UserIdentity | undefined;
  let request: SshRouteRequest | undefined;
  try {
    const { identity: checked, pem } = _checkCertificate(socket, options);
    identity = checked;
    request = _parseRequest(await _readLine(socket, options.requestTimeoutMs ?? 10_000));
    const cluster = request.cluster || identity.routeToCluster;
    let stream;
    try {
      stream = await options.dialer.dial({ cluster, host: request.node, service: sshService, identity: Buffer.from(pem).toString('base64'), headers: clientAddressHeader(socket.remoteAddress) });
    } catch (error) {
      if (error instanceof ServiceDialError) throw new SshRouteRefusal(sshRefusalOf[error.reason], error.message);
      throw error;
    }
    socket.write('ok\n');
    options.onConnected?.(socket);
    options.logger.info({ remoteAddr, user: identity.username, node: request.node, cluster, login: request.login }, 'ssh connection routed to a node');
    const result = await pipeBidirectional(socket, stream);
    options.logger.debug({ remoteAddr, user: identity.username, node: request.node, bytesIn: result.bytesAToB, bytesOut: result.bytesBToA, error: result.error?.message }, 'ssh connection closed');
  } catch (error) {
    const refusal = error instanceof SshRouteRefusal ? error : new SshRouteRefusal('ssh-bad-request', error instanceof Error ? error.message : String(error));
    options.logger.warn({ remoteAddr, reason: refusal.reason, why: refusal.message, user: identity?.username, node: request?.node }, 'ssh connection refused');
    options.onRefused?.(refusal.reason);
    if (identity !== undefined || refusal.reason === 'ssh-bad-certificate') {
      options.audit?.({ remoteAddr, user: identity?.username, roles: identity?.roles, node: request?.node, login: request?.login, cluster: request?.cluster || identity?.routeToCluster, reason: `${refusal.reason}: ${refusal.message}` });
    }
    _refuse(socket, refusal.message);
  }
}

function _checkCertificate(socket: TLSSocket, options: SshRouteOptions): { identity: UserIdentity; pem: string } {
  const raw = socket.getPeerCertificate()?.raw;
  if (raw === undefined) throw new SshRouteRefusal('ssh-no-certificate', 'no client certificate was presented; log in with psh login and connect with psh proxy ssh');
  const cas = options.userCaPems();
  if (cas.length === 0) throw new SshRouteRefusal('ssh-bad-certificate', 'this proxy has not loaded the user CA from the auth service yet; try again in a few seconds');
  try {
    const identity = verifyCertificateChain(raw, { trustedCaCerts: cas, expectedKind: 'user', usage: 'client', now: options.now?.() }) as UserIdentity;
    return { identity, pem: new X509Certificate(raw).toString() };
  } catch (error) {
    throw new SshRouteRefusal('ssh-bad-certificate', error instanceof PosternError ? error.message : `certificate check failed: ${String(error)}`);
  }
}

function _parseRequest(line: string): SshRouteRequest {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new SshRouteRefusal('ssh-bad-request', 'the request must be one JSON line like {"node":"NAME","port":22}');
  }
  const request = value as Partial<SshRouteRequest> | null;
  if (typeof request !== 'object' || request === null || typeof request.node !== 'string' || request.node.length === 0 || request.node.length > 253) {
    throw new SshRouteRefusal('ssh-bad-request', 'the request names no node: expected {"node":"NAME or host id","port":22}');
  }
  if (request.port !== undefined && (!Number.isInteger(request.port) || request.port < 0 || request.port > 65_535)) {
    throw new SshRouteRefusal('ssh-bad-request', `port ${JSON.stringify(request.port)} is not a TCP port`);
  }
  if (request.login !== undefined && (typeof request.login !== 'string' || request.login.length > 253)) throw new SshRouteRefusal('ssh-bad-request', 'login must be a short string');
  if (request.cluster !== undefined && (typeof request.cluster !== 'string' || request.cluster.length > 253)) throw new SshRouteRefusal('ssh-bad-request', 'cluster must be a cluster name');
  return { node: request.node, port: request.port, login: request.login, cluster: request.cluster };
}

/** `{ postern-client-address: ip }`, or nothing when the address is unknown. */
export function clientAddressHeader(address: string | undefined): Record<string, string> {
  return address ? { [HEADER_CLIENT_ADDRESS]: address.replace(/^::ffff:/, '') } : {};
}

/** Reads one `\n`-terminated line, then pauses the socket with any further bytes put back. */
function _readLine(socket: TLSSocket, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered: Buffer = Buffer.alloc(0);
    const finish = (error: Error | undefined, line?: string, rest?: Buffer): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.pause();
      if (rest !== undefined && rest.length > 0) socket.unshift(rest);
      if (error) reject(error);
      else resolve(line ?? '');
    };
    const onData = (chunk: Buffer): void => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const newline = buffered.indexOf(0x0a);
      if (newline >= 0 && newline <= maxSshRequestBytes) return finish(undefined, buffered.subarray(0, newline).toString('utf8'), buffered.subarray(newline + 1));
      if (buffered.length > maxSshRequestBytes) finish(new SshRouteRefusal('ssh-bad-request', `the request line is longer than ${maxSshRequestBytes} bytes`));
    };
    const onEnd = (): void => finish(new SshRouteRefusal('ssh-bad-request', 'the client closed the connection before sending its request'));
    const timer = setTimeout(() => finish(new SshRouteRefusal('ssh-bad-request', `no request within ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
  });
}

/** Answers `error <reason>` on one line and closes. */
function _refuse(socket: TLSSocket, message: string): void {
  if (!socket.destroyed && socket.writable) socket.end(`error ${message.replaceAll('\n', ' ')}\n`);
  socket.resume();
  setTimeout(() => socket.destroy(), 2_000).unref();
}
