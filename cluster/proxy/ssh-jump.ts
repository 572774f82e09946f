/**
 * The proxy's SSH jump server: plain OpenSSH `ssh -J user@proxy:PORT login@node` works.
 * The public port sniffs `SSH-2.0-` and hands the socket here.
 *
 * ```
 * ssh -J  --SSH (proxy host certificate; user certificate)--> proxy (this file)
 *   direct-tcpip "node:port"  --> dialer.dial({host: node, service: 'ssh'}) in this cluster
 *                             --> agent's SSH service
 *   the client then runs its own SSH session to the node inside that channel
 * ```
 *
 * The proxy presents its SSH host certificate (host CA; principals: its host id, host
 * name and public addresses), so `@cert-authority` known_hosts checking works for both
 * hops. A user logs in with a Postern user certificate (user CA of this cluster, valid,
 * source-address honoured, signed by the key); the name given for the proxy hop is not
 * checked, since the login is the node's decision. Only direct-tcpip channels are
 * served: a session (shell, exec) is refused with a message saying to use `-J`.
 * Every refusal by a certificate holder is audited; all are logged and counted.
 */
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import ssh2 from 'ssh2';
import type { AuthContext, Connection, ServerChannel, Session, TcpipRequestInfo } from 'ssh2';
import { PosternError } from '../../protocols/errors.ts';
import { parseCertificate } from '../../protocols/ssh/certificate.ts';
import { certifiedHostKey } from '../../protocols/ssh/host-key.ts';
import { parseAuthorizedKey } from '../../protocols/ssh/public-key.ts';
import { verifyCertificate, verifyCertificateUserSignature } from '../../protocols/ssh/verify-certificate.ts';
import { pipeBidirectional } from '../../protocols/tunnel/index.ts';
import { sshUserIdentityFromCertificate, type SshUserIdentity } from '../api/ssh-identity.ts';
import type { Logger } from '../common/logger.ts';
import { clientAddressHeader, sshRefusalOf, sshService, SshRouteRefusal, type SshRouteAuditEvent } from './ssh-route.ts';
import type { ServiceDialer } from './service-dialer.ts';
import { ServiceDialError } from './errors.ts';

const CERT_SUFFIX = '-cert-v01@openssh.com';
const MAX_AUTH_ATTEMPTS = 6;
const LOGIN_GRACE_MS = 30_000;
const OPEN_PROHIBITED = 1;
const OPEN_CONNECT_FAILED = 2;

export interface SshJumpOptions {
  /** The proxy's SSH host key and certificate (from its identity); undefined: the jump server is off. */
  hostKey: () => { keyPem: string; certificate: string } | undefined;
  /** The user CA's SSH public keys (authorized_keys lines). */
  userCaKeys: () => readonly string[];
  /** This cluster's name: certificates must route to it. */
  clusterName: () => string;
  /** The jump stays in this cluster (an SSH certificate names no route); the dialer resolves the node. */
  dialer: Pick<ServiceDialer, 'dial'>;
  logger: Logger;
  onRefused?: (reason: string) => void;
  audit?: (event: SshRouteAuditEvent) => void;
  onConnected?: (socket: Socket) => void;
  now?: () => Date;
}

interface JumpConnection {
  id: string;
  remoteAddress: string;
  attempts: number;
  identity?: SshUserIdentity;
  keyId?: string;
}

export class SshJumpServer {
  readonly #options: SshJumpOptions;
  #server: { certificate: string; server: InstanceType<typeof ssh2.Server> } | undefined;
  readonly #remote = new WeakMap<Duplex, string>();

  constructor(options: SshJumpOptions) {
    this.#options = options;
  }

  /** Serves one raw connection that opened with `SSH-2.0-`; never throws. */
  readonly handle = (socket: Socket): void => {
    socket.on('error', () => {});
    const server = this.#currentServer();
    if (!server) {
      this.#options.logger.warn({ remoteAddr: socket.remoteAddress }, 'ssh jump connection refused: this proxy has no SSH host certificate yet (it gets one with its next identity)');
      this.#options.onRefused?.('ssh-jump-no-host-key');
      socket.end('SSH-2.0-Postern\r\n');
      socket.destroy();
      return;
    }
    this.#remote.set(socket, socket.remoteAddress ?? 'unknown');
    const grace = setTimeout(() => {
      if (!authenticated.has(socket)) socket.destroy();
    }, LOGIN_GRACE_MS);
    grace.unref();
    socket.once('close', () => clearTimeout(grace));
    this.#options.onConnected?.(socket);
    server.injectSocket(socket as never);
  };

  #currentServer(): InstanceType<typeof ssh2.Server> | undefined {
    const material = this.#options.hostKey();
    if (!material) return undefined;
    if (this.#server?.certificate === material.certificate) return this.#server.server;
    try {
      const { key } = certifiedHostKey(material.keyPem, material.certificate);
      const server = new ssh2.Server({ hostKeys: [{ key }], ident: 'Postern-proxy' }, (client) => this.#onConnection(client));
      this.#server = { certificate: material.certificate, server };
      return server;
    } catch (error) {
      this.#options.logger.error({ err: error }, 'the proxy SSH host certificate cannot be used; ssh -J is refused');
      return undefined;
    }
  }

  #onConnection(client: Connection): void {
    const socket = (client as unknown as { _sock?: Duplex })._sock;
    const state: JumpConnection = { id: randomUUID(), remoteAddress: (socket && this.#remote.get(socket)) ?? 'unknown', attempts: 0 };
    client.on('error', (error) => this.#options.logger.debug({ err: error, remoteAddr: state.remoteAddress }, 'ssh jump connection error'));
    client.on('authentication', (ctx) => {
      try {
        this.#authenticate(state, client, ctx);
      } catch (error) {
        this.#options.logger.error({ err: error }, 'ssh jump authentication failed unexpectedly');
        ctx.reject(['publickey']);
      }
    });
    client.on('ready', () => {
      if (socket) authenticated.add(socket);
      client.on('tcpip', (accept, reject, info) => void this.#forward(state, accept, reject, info));
      client.on('session', (accept) => refuseSession(accept()));
      client.on('request', (_accept, reject, name) => {
        this.#refuse(state, 'ssh-jump-request', `${name} is not served by the proxy; it only forwards to nodes (ssh -J)`);
        reject?.();
      });
    });
  }

  #authenticate(state: JumpConnection, client: Connection, ctx: AuthContext): void {
    if (ctx.method !== 'publickey') {
      ctx.reject(['publickey']);
      return;
    }
    const deny = (reason: string, audited: boolean): void => {
      this.#refuse(state, 'ssh-jump-auth', reason, audited);
      ctx.reject(['publickey']);
      if (++state.attempts >= MAX_AUTH_ATTEMPTS) client.end();
    };
    if (!ctx.key.algo.endsWith(CERT_SUFFIX)) {
      deny(`a plain ${ctx.key.algo} key was offered; the proxy accepts only Postern user certificates: run psh login and use the certificate (psh config)`, false);
      return;
    }
    let identity: SshUserIdentity;
    try {
      const parsed = parseCertificate(ctx.key.data);
      if (parsed.algorithm !== ctx.key.algo) throw new PosternError('PST_BAD_INPUT', `the offered key is named ${ctx.key.algo} but holds a ${parsed.algorithm} certificate`);
      const cas = this.#options.userCaKeys().map((line) => Buffer.from(parseAuthorizedKey(line).publicKey.blob));
      if (cas.length === 0) throw new PosternError('PST_UNAVAILABLE', 'this proxy has not loaded the user CA from the auth service yet; try again in a few seconds');
      const certificate = verifyCertificate(parsed, {
        now: this.#options.now?.() ?? new Date(),
        trustedCAs: cas,
        expectedType: 'user',
        sourceAddress: state.remoteAddress.replace(/^::ffff:/, ''),
      });
      state.keyId = certificate.keyId;
      if (ctx.signature === undefined || ctx.blob === undefined) {
        ctx.accept();
        return;
      }
      verifyCertificateUserSignature(certificate, { signature: ctx.signature, signedData: ctx.blob, keyAlgorithm: ctx.key.algo });
      identity = sshUserIdentityFromCertificate(certificate);
    } catch (error) {
      if (!(error instanceof PosternError)) throw error;
      deny(error.message, true);
      return;
    }
    const cluster = this.#options.clusterName();
    if (identity.cluster !== cluster) {
      state.identity = identity;
      deny(`the certificate was issued by cluster "${identity.cluster}", and this proxy serves "${cluster}"`, true);
      return;
    }
    state.identity = identity;
    this.#options.logger.info({ remoteAddr: state.remoteAddress, user: identity.username, keyId: state.keyId }, 'ssh jump login');
    ctx.accept();
  }

  async #forward(state: JumpConnection, accept: () => ServerChannel, reject: () => void, info: TcpipRequestInfo): Promise<void> {
    const node = info.destIP;
    let stream: Duplex;
    try {
      stream = await this.#options.dialer.dial({ host: node, service: sshService, identity: Buffer.from(state.identity?.username ?? '').toString('base64'), headers: clientAddressHeader(state.remoteAddress) });
    } catch (error) {
      const refusal = error instanceof ServiceDialError ? new SshRouteRefusal(sshRefusalOf[error.reason], error.message) : new SshRouteRefusal('ssh-dial-failed', String(error));
      this.#refuse(state, refusal.reason, refusal.message, true, node);
      (reject as (code: number, description: string) => void)(refusal.reason === 'ssh-dial-failed' ? OPEN_CONNECT_FAILED : OPEN_PROHIBITED, refusal.message);
      return;
    }
    const channel = accept();
    if (!channel) {
      stream.destroy();
      return;
    }
    this.#options.logger.info({ remoteAddr: state.remoteAddress, user: state.identity?.username, node, port: info.destPort }, 'ssh jump forwarded to a node');
    const result = await pipeBidirectional(channel, stream);
    this.#options.logger.debug({ remoteAddr: state.remoteAddress, node, bytesIn: result.bytesAToB, bytesOut: result.bytesBToA }, 'ssh jump channel closed');
  }

  #refuse(state: JumpConnection, reason: string, message: string, audited = true, node?: string): void {
    this.#options.logger.warn({ remoteAddr: state.remoteAddress, reason, why: message, user: state.identity?.username, node }, 'ssh jump refused');
    this.#options.onRefused?.(reason);
    if (audited) {
      this.#options.audit?.({
        remoteAddr: state.remoteAddress,
        ...(state.identity ? { user: state.identity.username, roles: state.identity.roles } : {}),
        ...(node !== undefined ? { node } : {}),
        reason: `${reason}: ${message}`,
      });
    }
  }
}

/** Streams that finished logging in (no grace-period drop). */
const authenticated = new WeakSet<Duplex>();

/** A session on the proxy itself: say what the proxy is for, then end it. */
function refuseSession(s: Session): void {
  const message = 'this is the Postern proxy: it does not run shells or commands; reach a node through it with ssh -J USER@PROXY:PORT LOGIN@NODE (psh config --jump)\r\n';
  const finish = (accept: (() => ServerChannel) | undefined): void => {
    const channel = accept?.();
    if (!channel) return;
    channel.stderr.write(message);
    channel.exit(1);
    channel.end();
  };
  s.on('pty', (accept) => accept?.());
  s.on('env', (accept) => accept?.());
  s.on('shell', (accept) => finish(accept));
  s.on('exec', (accept) => finish(accept));
  s.on('subsystem', (accept) => finish(accept));
}
