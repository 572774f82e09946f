import { EventEmitter } from 'node:events';
import type { Http2Session } from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TunnelClosedError, TunnelPingError, type TunnelCloseReason } from './errors.ts';
import { startKeepalive } from './keepalive.ts';
import { DEFAULT_KEEPALIVE_INTERVAL_MS, DEFAULT_KEEPALIVE_TIMEOUT_MS, applyConnectionWindow, type TunnelOptions } from './settings.ts';

/** Events of both tunnel ends. */
export interface TunnelEvents {
  /** Emitted once, when the tunnel is gone, with why. */
  close: [reason: TunnelClosedError];
}

/**
 * What both ends of a tunnel share: one HTTP/2 session on one socket, keepalive PINGs
 * with a deadline, a single 'close' event that says why, `ping()` and `close()`.
 */
export class TunnelSession extends EventEmitter<TunnelEvents> {
  protected readonly session: Http2Session;
  readonly #socket: Duplex;
  readonly #stopKeepalive: () => void;
  #reason: TunnelClosedError | undefined;
  #emitted = false;

  constructor(session: Http2Session, socket: Duplex, options: TunnelOptions) {
    super();
    this.session = session;
    this.#socket = socket;
    (socket as Partial<Socket>).setNoDelay?.(true); // stream opens are small frames; Nagle would delay them
    applyConnectionWindow(session, options);
    this.#stopKeepalive = startKeepalive(session, socket, {
      intervalMs: options.keepaliveIntervalMs ?? DEFAULT_KEEPALIVE_INTERVAL_MS,
      timeoutMs: options.keepaliveTimeoutMs ?? DEFAULT_KEEPALIVE_TIMEOUT_MS,
    }, () => this.#end('keepalive-timeout', 'the peer did not answer a keepalive PING in time; it is hung or the network dropped'));
    session.on('goaway', (code: number) => {
      if (code === 0) this.#record('closed-by-peer', 'the peer closed the tunnel (GOAWAY)');
      else this.#record('protocol-error', `the peer closed the tunnel with HTTP/2 error code ${code}`);
    });
    session.on('error', (err: Error & { code?: string }) => {
      const kind = err.code?.startsWith('ERR_HTTP2') ? 'protocol-error' : 'socket-error';
      this.#record(kind, `the tunnel failed: ${err.message}`, err);
    });
    session.once('close', () => this.#finish());
  }

  /** True once the tunnel is closing or closed; dials fail from then on. */
  get closed(): boolean {
    return this.#reason !== undefined || this.session.closed || this.session.destroyed;
  }

  /** Why the tunnel closed, once it has. */
  get closeReason(): TunnelClosedError | undefined {
    return this.#reason;
  }

  /** Round-trip time of one HTTP/2 PING, in milliseconds. */
  ping(): Promise<number> {
    if (this.closed) return Promise.reject(this.closedError());
    return new Promise((resolve, reject) => {
      const sent = this.session.ping((err, duration) => (err ? reject(this.closedError()) : resolve(duration)));
      if (!sent) reject(new TunnelPingError('cannot ping the tunnel peer: too many pings are unanswered; the peer may be stalled'));
    });
  }

  /** Closes gracefully: no new streams, open ones may finish; resolves when the tunnel is gone. */
  close(): Promise<void> {
    this.#record('closed-locally', 'the tunnel was closed by this side');
    if (this.#emitted) return Promise.resolve();
    const done = new Promise<void>((resolve) => this.once('close', () => resolve()));
    this.session.close();
    return done;
  }

  /** Closes at once, resetting open streams. */
  destroy(reason?: Error): void {
    this.#end('closed-locally', reason ? `the tunnel was destroyed by this side: ${reason.message}` : 'the tunnel was destroyed by this side', reason);
  }

  /** The error that dials and pings fail with once the tunnel is closed. */
  protected closedError(): TunnelClosedError {
    return this.#reason ?? new TunnelClosedError('closed-by-peer', 'the tunnel is closed');
  }

  #record(reason: TunnelCloseReason, message: string, cause?: unknown): void {
    this.#reason ??= new TunnelClosedError(reason, message, { cause });
  }

  #end(reason: TunnelCloseReason, message: string, cause?: unknown): void {
    this.#record(reason, message, cause);
    this.session.destroy();
    this.#socket.destroy();
  }

  #finish(): void {
    if (this.#emitted) return;
    this.#emitted = true;
    this.#stopKeepalive();
    this.#record('closed-by-peer', 'the tunnel connection closed');
    if (!this.#socket.destroyed) this.#socket.destroy();
    this.emit('close', this.#reason!);
  }
}
