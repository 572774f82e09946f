/**
 * One public port for everything: sniff the first bytes, then hand the connection to
 * the matching handler.
 *
 * ```
 * accept ─ sniff ─┬─ TLS ClientHello ── TLS (SNI → context) ── ALPN id ── route handler
 *                 ├─ "SSH-2.0-"      ── ssh handler (raw socket, banner still unread)
 *                 ├─ SSLRequest      ── 'S' ── TLS ── postgres handler
 *                 ├─ GSSENCRequest   ── 'N' ── sniff again (the client follows with SSLRequest)
 *                 └─ anything else   ── destroyed at once; silence: destroyed at the timeout
 * ```
 *
 * Client certificates are requested on every TLS connection and verified against the
 * configured CA, but only routes registered with `requireClientCert` insist on one;
 * what the certificate means is the handler's business.
 */
import diagnostics_channel from 'node:diagnostics_channel';
import type { Socket } from 'node:net';
import tls from 'node:tls';
import { ALPN, isValidAlpnId } from './alpn.ts';
import { ConnectionDroppedError, RouteConfigError, type DropReason } from './errors.ts';
import { sniff } from './sniff.ts';

/** Receives a TLS connection whose handshake finished; owns it from then on. */
export type TlsRouteHandler = (socket: tls.TLSSocket) => void | Promise<void>;
/** Receives a plain connection with its first bytes still unread. */
export type RawRouteHandler = (socket: Socket) => void | Promise<void>;

/** TLS settings shared by every TLS path; ALPN and client-certificate options are the router's. */
export type RouterTlsOptions = Omit<
  tls.TlsOptions,
  'ALPNProtocols' | 'ALPNCallback' | 'requestCert' | 'rejectUnauthorized' | 'handshakeTimeout'
>;

/** Options for {@link PortRouter}. */
export interface PortRouterOptions {
  /** Certificate, key, CA for client certificates; `SNICallback` picks a context per server name. */
  tls: RouterTlsOptions;
  /** Time allowed for the first bytes to identify the protocol. Default 5 s. */
  sniffTimeoutMs?: number;
  /** Time allowed for a TLS handshake. Default 10 s. */
  handshakeTimeoutMs?: number;
  /** Connections allowed in sniffing or handshaking at once; further ones are dropped. Default 1024. */
  maxPending?: number;
  /** ALPN id assumed when a TLS client offers none (e.g. `http/1.1`). Default: drop such clients. */
  defaultAlpn?: string;
}

/** Options for one route. */
export interface RouteOptions {
  /** Drop the connection unless it presented a client certificate that verifies against `tls.ca`. */
  requireClientCert?: boolean;
}

/** Counters a metrics exporter can read at any time. */
export interface PortRouterStats {
  accepted: number;
  /** Connections still sniffing or in their TLS handshake. */
  pending: number;
  /** Handed to a handler, by route (`ssh`, `postgres`, or the ALPN id). */
  routed: Record<string, number>;
  dropped: Record<DropReason, number>;
}

interface _TlsRoute {
  handler: TlsRouteHandler;
  requireClientCert: boolean;
}

const dropChannel = diagnostics_channel.channel('postern:mux:drop');
const routeChannel = diagnostics_channel.channel('postern:mux:route');

const _noop = (): void => {};

function _emptyDrops(): Record<DropReason, number> {
  return {
    'garbage': 0, 'sniff-timeout': 0, 'closed-early': 0, 'too-many-pending': 0, 'tls-handshake': 0,
    'no-route': 0, 'client-cert-required': 0, 'postgres-unsupported': 0, 'handler-error': 0,
    'router-closed': 0,
  };
}

/**
 * Routes connections accepted on one port by their first bytes and, for TLS, by ALPN.
 *
 * @example
 * const router = new PortRouter({ tls: { cert, key, ca } });
 * router.route(ALPN.tunnel, (socket) => tunnels.add(socket), { requireClientCert: true });
 * router.ssh((socket) => sshServer.injectSocket(socket));
 * net.createServer({ allowHalfOpen: true }, router.accept).listen(3080);
 */
export class PortRouter {
  readonly stats: PortRouterStats = { accepted: 0, pending: 0, routed: {}, dropped: _emptyDrops() };
  readonly #routes = new Map<string, _TlsRoute>();
  readonly #sniffing = new Set<Socket>();
  readonly #sniffTimeoutMs: number;
  readonly #maxPending: number;
  readonly #defaultAlpn: string | undefined;
  readonly #tlsServer: tls.Server;
  readonly #pgTlsServer: tls.Server;
  #handshaking = 0;
  #ssh: RawRouteHandler | undefined;
  #postgres: _TlsRoute | undefined;
  #postgresCancel: RawRouteHandler | undefined;
  #closed = false;

  constructor(options: PortRouterOptions) {
    this.#sniffTimeoutMs = options.sniffTimeoutMs ?? 5_000;
    this.#maxPending = options.maxPending ?? 1_024;
    this.#defaultAlpn = options.defaultAlpn;
    const common: tls.TlsOptions = {
      ...options.tls,
      requestCert: true,
      rejectUnauthorized: false,
      handshakeTimeout: options.handshakeTimeoutMs ?? 10_000,
    };
    this.#tlsServer = this.#createTlsServer({
      ...common,
      ALPNCallback: ({ protocols }) => protocols.find((p) => this.#routes.has(p)),
    }, (socket) => this.#routeTls(socket));
    this.#pgTlsServer = this.#createTlsServer({
      ...common,
      ALPNCallback: ({ protocols }) => (protocols.includes(ALPN.postgresql) ? ALPN.postgresql : undefined),
    }, (socket) => this.#routePostgres(socket));
  }

  /** Sends TLS connections that negotiate ALPN `id` to `handler`. */
  route(id: string, handler: TlsRouteHandler, options: RouteOptions = {}): this {
    if (!isValidAlpnId(id)) throw new RouteConfigError(`cannot route ALPN id ${JSON.stringify(id)}: it must be 1-255 printable ASCII bytes`);
    if (this.#routes.has(id)) throw new RouteConfigError(`cannot route ALPN id ${id}: a handler is registered already`);
    this.#routes.set(id, { handler, requireClientCert: options.requireClientCert ?? false });
    return this;
  }

  /** Sends connections that open with an SSH identification string to `handler`. */
  ssh(handler: RawRouteHandler): this {
    this.#ssh = handler;
    return this;
  }

  /** Answers PostgreSQL SSLRequests with 'S' and sends the TLS connection that follows to `handler`. */
  postgres(handler: TlsRouteHandler, options: RouteOptions = {}): this {
    this.#postgres = { handler, requireClientCert: options.requireClientCert ?? false };
    return this;
  }

  /** Sends plain-text PostgreSQL CancelRequests (16 bytes, unread) to `handler`. */
  postgresCancel(handler: RawRouteHandler): this {
    this.#postgresCancel = handler;
    return this;
  }

  /** Takes a freshly accepted connection; pass it to `net.createServer` or a `'connection'` listener. */
  readonly accept = (socket: Socket): void => {
    this.stats.accepted++;
    socket.on('error', _noop); // a reset while we hold the socket must not crash the process
    if (this.#closed) return this.#drop(socket, 'router-closed');
    if (this.#sniffing.size + this.#handshaking >= this.#maxPending) return this.#drop(socket, 'too-many-pending');
    this.#sniffing.add(socket);
    this.#updatePending();
    void this.#dispatch(socket, 0).finally(() => {
      this.#sniffing.delete(socket);
      this.#updatePending();
    });
  };

  /** Stops routing: connections still sniffing are destroyed, and later handshakes are dropped. */
  close(): void {
    this.#closed = true;
    for (const socket of this.#sniffing) this.#drop(socket, 'router-closed');
  }

  #createTlsServer(options: tls.TlsOptions, onSecure: (socket: tls.TLSSocket) => void): tls.Server {
    const server = tls.createServer(options);
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      this.#handshaking--;
      this.#updatePending();
      socket.on('error', _noop);
      onSecure(socket);
    });
    server.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => {
      this.#handshaking--;
      this.#updatePending();
      this.#drop(socket, 'tls-handshake', err);
    });
    return server;
  }

  async #dispatch(socket: Socket, gssencAnswered: number): Promise<void> {
    const { kind, buffered } = await sniff(socket, { timeoutMs: this.#sniffTimeoutMs });
    if (this.#closed || socket.destroyed) return this.#drop(socket, this.#closed ? 'router-closed' : 'closed-early');
    switch (kind) {
      case 'tls':
        return this.#startTls(this.#tlsServer, socket);
      case 'ssh':
        if (this.#ssh === undefined) return this.#drop(socket, 'no-route');
        return this.#hand(socket, 'ssh', this.#ssh);
      case 'postgres-gssenc':
        // No GSSAPI encryption here; libpq then asks for TLS on the same connection.
        if (gssencAnswered > 0 || buffered > 0) return this.#drop(socket, 'garbage');
        socket.write('N');
        return this.#dispatch(socket, gssencAnswered + 1);
      case 'postgres-ssl':
        if (this.#postgres === undefined) return this.#drop(socket, 'postgres-unsupported');
        // Bytes sent before our 'S' were never protected by TLS: refuse them (cf. CVE-2021-23214).
        if (buffered > 0) return this.#drop(socket, 'garbage');
        socket.write('S');
        return this.#startTls(this.#pgTlsServer, socket);
      case 'postgres-cancel':
        // A CancelRequest comes in plain text on its own connection (libpq < 17); the bytes are left for the handler.
        if (this.#postgresCancel === undefined) return this.#drop(socket, 'postgres-unsupported');
        this.#sniffing.delete(socket);
        return this.#hand(socket, 'postgres-cancel', this.#postgresCancel);
      case 'timeout':
        return this.#drop(socket, 'sniff-timeout');
      case 'closed':
        return this.#drop(socket, 'closed-early');
      case 'unknown':
        return this.#drop(socket, 'garbage');
    }
  }

  #startTls(server: tls.Server, socket: Socket): void {
    this.#handshaking++;
    this.#sniffing.delete(socket);
    this.#updatePending();
    server.emit('connection', socket);
  }

  #routeTls(socket: tls.TLSSocket): void {
    const id = socket.alpnProtocol || this.#defaultAlpn;
    const route = id ? this.#routes.get(id) : undefined;
    if (id === undefined || route === undefined) return this.#drop(socket, 'no-route');
    this.#handTls(socket, id, route);
  }

  #routePostgres(socket: tls.TLSSocket): void {
    if (this.#postgres === undefined) return this.#drop(socket, 'postgres-unsupported');
    this.#handTls(socket, 'postgres', this.#postgres);
  }

  #handTls(socket: tls.TLSSocket, id: string, route: _TlsRoute): void {
    if (this.#closed) return this.#drop(socket, 'router-closed');
    if (route.requireClientCert && !socket.authorized) {
      const why = socket.authorizationError ? String(socket.authorizationError) : 'no certificate';
      return this.#drop(socket, 'client-cert-required', new Error(`client certificate required for ${id}: ${why}`));
    }
    this.#hand(socket, id, route.handler as (s: Socket) => void | Promise<void>);
  }

  #hand(socket: Socket, id: string, handler: (socket: Socket) => void | Promise<void>): void {
    this.stats.routed[id] = (this.stats.routed[id] ?? 0) + 1;
    if (routeChannel.hasSubscribers) routeChannel.publish({ route: id, remoteAddress: socket.remoteAddress });
    try {
      const result = handler(socket);
      if (result !== undefined) result.catch((err: unknown) => this.#drop(socket, 'handler-error', err));
    } catch (err) {
      this.#drop(socket, 'handler-error', err);
    }
  }

  #drop(socket: Socket, reason: DropReason, cause?: unknown): void {
    this.stats.dropped[reason]++;
    if (dropChannel.hasSubscribers) {
      const error = new ConnectionDroppedError(reason, `dropped connection from ${socket.remoteAddress ?? 'unknown peer'}: ${reason}`, { cause });
      dropChannel.publish({ reason, error, remoteAddress: socket.remoteAddress });
    }
    socket.destroy();
  }

  #updatePending(): void {
    this.stats.pending = this.#sniffing.size + this.#handshaking;
  }
}
