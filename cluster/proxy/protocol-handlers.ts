/**
 * Where the protocol services (SSH jump, databases, Kubernetes, TCP apps) plug into the
 * public port. Until one registers, connections for it are refused: closed cleanly,
 * logged and counted.
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { ALPN } from '../../protocols/mux/alpn.ts';
import { RouteConfigError } from '../../protocols/mux/errors.ts';
import type { Logger } from '../common/logger.ts';

/** ALPN ids served by pluggable protocol handlers. */
export const protocolAlpns = [ALPN.ssh, ALPN.postgres, ALPN.mysql, ALPN.kube, ALPN.tcp] as const;
export type ProtocolAlpn = (typeof protocolAlpns)[number];

/** Handles TLS connections of one protocol ALPN. */
export type TlsProtocolHandler = (socket: TLSSocket) => void | Promise<void>;
/** Handles a raw connection that opened with `SSH-2.0-` (banner unread). */
export type SshHandler = (socket: Socket) => void | Promise<void>;

/**
 * The protocol handlers of one proxy; later services register here.
 *
 * @example
 * proxy.handlers.setTls('postern-ssh', (socket) => sshJump.accept(socket));
 * proxy.handlers.setSsh((socket) => sshJump.acceptRaw(socket));
 */
export class ProtocolHandlers {
  readonly #tls = new Map<string, TlsProtocolHandler>();
  #ssh: SshHandler | undefined;
  #postgres: TlsProtocolHandler | undefined;
  #postgresCancel: SshHandler | undefined;
  readonly #logger: Logger;
  readonly #onRefused: (reason: string) => void;

  constructor(logger: Logger, onRefused: (reason: string) => void) {
    this.#logger = logger;
    this.#onRefused = onRefused;
  }

  /** Registers the handler for one protocol ALPN. */
  setTls(alpn: ProtocolAlpn, handler: TlsProtocolHandler): void {
    if (this.#tls.has(alpn)) throw new RouteConfigError(`a handler for ${alpn} is registered already`);
    this.#tls.set(alpn, handler);
  }

  /** Registers the handler for plain SSH connections. */
  setSsh(handler: SshHandler): void {
    this.#ssh = handler;
  }

  /** Registers the handler for PostgreSQL connections after the SSLRequest and TLS. */
  setPostgres(handler: TlsProtocolHandler): void {
    this.#postgres = handler;
  }

  /** Registers the handler for plain-text PostgreSQL CancelRequests (16 bytes, unread). */
  setPostgresCancel(handler: (socket: Socket) => void | Promise<void>): void {
    this.#postgresCancel = handler;
  }

  /** Dispatches a plain-text PostgreSQL CancelRequest, or refuses it. */
  readonly postgresCancel = (socket: Socket): void | Promise<void> => {
    if (this.#postgresCancel === undefined) return this.refuse(socket, 'postgres');
    return this.#postgresCancel(socket);
  };

  /** True when a PostgreSQL handler is registered (the port answers SSLRequests only then). */
  get hasPostgres(): boolean {
    return this.#postgres !== undefined;
  }

  /** Dispatches a TLS connection for `alpn`, or refuses it. */
  readonly tls = (alpn: string) => (socket: TLSSocket): void | Promise<void> => {
    const handler = this.#tls.get(alpn);
    if (handler === undefined) return this.refuse(socket, alpn);
    return handler(socket);
  };

  /** Dispatches a plain SSH connection, or refuses it. */
  readonly ssh = (socket: Socket): void | Promise<void> => {
    if (this.#ssh === undefined) return this.refuse(socket, 'ssh');
    return this.#ssh(socket);
  };

  /** Dispatches a PostgreSQL connection, or refuses it. */
  readonly postgres = (socket: TLSSocket): void | Promise<void> => {
    if (this.#postgres === undefined) return this.refuse(socket, 'postgres');
    return this.#postgres(socket);
  };

  /** Closes a connection no service takes yet, with a log line and a count. */
  refuse(socket: Socket, protocol: string): void {
    this.#logger.info({ protocol, remoteAddr: socket.remoteAddress }, `${protocol} connection refused: no ${protocol} service runs on this proxy yet`);
    this.#onRefused(`no-handler:${protocol}`);
    socket.end();
    socket.resume();
    setTimeout(() => socket.destroy(), 2_000).unref();
  }
}
