/**
 * The proxy's one public port. Every connection is peeked before anything answers it:
 *
 * ```
 * accept ─ peek ─┬─ TLS, SNI auth.postern ── raw bytes to the auth gRPC API (no termination)
 *                ├─ TLS, other SNI ───────── PortRouter: terminate, route by ALPN
 *                ├─ SSH-2.0- ─────────────── PortRouter ─ SSH handler (or refused)
 *                ├─ PostgreSQL request ───── PortRouter ─ 'S', TLS, Postgres handler (or refused here)
 *                └─ garbage, malformed ClientHello, silence ── closed, counted by reason
 * ```
 */
import { once } from 'node:events';
import net, { type AddressInfo, type Socket } from 'node:net';
import type { PortRouter } from '../../protocols/mux/port-router.ts';
import { splitHostPort } from '../common/diag-server.ts';
import type { Logger } from '../common/logger.ts';
import { passThrough } from './auth-passthrough.ts';
import { peekOpening, type Opening } from './peek-opening.ts';
import type { ProtocolHandlers } from './protocol-handlers.ts';
import type { ProxyMetrics } from './proxy-metrics.ts';

/** Options for {@link PublicListener}. */
export interface PublicListenerOptions {
  /** The router for everything not passed through; read per connection (it is rebuilt on renewal). */
  router: () => PortRouter;
  handlers: ProtocolHandlers;
  /** SNI names whose connections go to `passthroughTarget` untouched. */
  passthroughNames: ReadonlySet<string>;
  passthroughTarget: string;
  metrics: ProxyMetrics;
  logger: Logger;
  /** Time for the opening bytes (a whole ClientHello) to arrive. Default 5 s. */
  peekTimeoutMs?: number;
  /** Connections allowed to be still peeking at once. Default 8192: a restarted proxy meets the whole fleet reconnecting. */
  maxPending?: number;
}

const _noop = (): void => {};

/** Accepts connections on the public port and sends each where its first bytes say. */
export class PublicListener {
  readonly #options: PublicListenerOptions;
  readonly #server: net.Server;
  readonly #sockets = new Set<Socket>();
  #pending = 0;

  constructor(options: PublicListenerOptions) {
    this.#options = options;
    this.#server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => void this.#accept(socket));
  }

  /** Binds `host:port`; resolves with the bound address. */
  async listen(address: string): Promise<AddressInfo> {
    const [host, port] = splitHostPort(address);
    // A restarted proxy meets every agent of the fleet at once: a deep accept queue keeps
    // the kernel from dropping their SYNs (bounded by net.core.somaxconn).
    this.#server.listen({ port, host, backlog: 4_096 });
    await Promise.race([once(this.#server, 'listening'), once(this.#server, 'error').then(([error]) => Promise.reject(error as Error))]);
    return this.#server.address() as AddressInfo;
  }

  /** Stops accepting and drops every connection still open. */
  async close(): Promise<void> {
    const closed = new Promise((resolve) => this.#server.close(resolve));
    for (const socket of this.#sockets) socket.destroy();
    await closed;
  }

  async #accept(socket: Socket): Promise<void> {
    socket.on('error', _noop); // resets while peeking must not crash the process
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
    if (this.#pending >= (this.#options.maxPending ?? 8_192)) return this.#drop(socket, 'too-many-pending');
    this.#pending++;
    let opening: Opening;
    try {
      opening = await peekOpening(socket, { timeoutMs: this.#options.peekTimeoutMs ?? 5_000 });
    } finally {
      this.#pending--;
    }
    if (socket.destroyed) return this.#drop(socket, 'closed-early');
    this.#dispatch(socket, opening);
  }

  #dispatch(socket: Socket, opening: Opening): void {
    switch (opening.kind) {
      case 'tls':
        if (opening.hello.serverName !== undefined && this.#options.passthroughNames.has(opening.hello.serverName)) {
          // Raw bytes both ways: a half-close must carry over, so the socket stays half-open.
          return passThrough(socket, { target: this.#options.passthroughTarget, logger: this.#options.logger, metrics: this.#options.metrics });
        }
        return this.#toRouter(socket);
      case 'ssh':
        return this.#toRouter(socket);
      case 'postgres-ssl':
      case 'postgres-gssenc':
      case 'postgres-cancel':
        if (!this.#options.handlers.hasPostgres) return this.#options.handlers.refuse(socket, 'postgres');
        return this.#toRouter(socket);
      case 'malformed-client-hello':
        this.#options.logger.debug({ remoteAddr: socket.remoteAddress, why: opening.error.message }, 'dropped a connection with a malformed ClientHello');
        return this.#drop(socket, opening.kind);
      case 'garbage':
      case 'timeout':
      case 'closed':
        return this.#drop(socket, opening.kind === 'timeout' ? 'sniff-timeout' : opening.kind === 'closed' ? 'closed-early' : 'garbage');
    }
  }

  #toRouter(socket: Socket): void {
    // Terminated connections close when the peer's FIN arrives. Left half-open, a TLS
    // socket under an HTTP/2 tunnel with a stream still open never closes its session
    // when the agent goes away (found by tunnel.test.ts), and waits for the keepalive.
    socket.allowHalfOpen = false;
    this.#options.router().accept(socket);
  }

  #drop(socket: Socket, reason: string): void {
    this.#options.metrics.reject(reason);
    this.#options.logger.debug({ remoteAddr: socket.remoteAddress, reason }, 'dropped a connection on the public port');
    socket.destroy();
  }
}
