/**
 * HTTP over tunnel streams, for the proxy's app and Kubernetes routes: an http.Agent
 * whose connections are streams dialed through an agent's tunnel (kept alive and
 * reused), and the raw pipe an Upgrade (websocket, SPDY) becomes.
 */
import http, { type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { withBufferWritev } from '../../protocols/tunnel/index.ts';
import type { ServiceDialRequest } from './service-dialer.ts';

/** An http.Agent whose connections are tunnel streams; keep-alive reuses them. */
export class TunnelAgent extends http.Agent {
  readonly #open: () => Promise<Duplex>;

  constructor(open: () => Promise<Duplex>) {
    super({ keepAlive: true, maxSockets: 64, maxFreeSockets: 64, timeout: 30_000 });
    this.#open = open;
  }

  override createConnection(_options: unknown, callback?: (error: Error | null, socket: Duplex) => void): undefined {
    this.#open().then((stream) => callback?.(null, _socketLike(stream)), (error: Error) => callback?.(error, undefined as never));
    return undefined;
  }
}

/**
 * Keep-alive pools of tunnel streams, one per service, caller and client address (the
 * agent audits both), closed after `idleMs` without use.
 */
export class TunnelAgentPool {
  readonly #dial: (request: ServiceDialRequest) => Promise<Duplex>;
  readonly #idleMs: number;
  readonly #agents = new Map<string, { agent: TunnelAgent; used: number }>();
  readonly #sweeper: NodeJS.Timeout;

  constructor(dial: (request: ServiceDialRequest) => Promise<Duplex>, options: { idleMs: number }) {
    this.#dial = dial;
    this.#idleMs = options.idleMs;
    this.#sweeper = setInterval(() => this.#sweep(), 30_000);
    this.#sweeper.unref();
  }

  /** The pool for `request` (its service, cluster, identity and headers). */
  get(request: ServiceDialRequest): TunnelAgent {
    const key = `${request.service}\0${request.cluster ?? ''}\0${request.identity}\0${JSON.stringify(request.headers ?? {})}`;
    let entry = this.#agents.get(key);
    if (!entry) {
      entry = { agent: new TunnelAgent(() => this.#dial(request)), used: Date.now() };
      this.#agents.set(key, entry);
    }
    entry.used = Date.now();
    return entry.agent;
  }

  close(): void {
    clearInterval(this.#sweeper);
    for (const { agent } of this.#agents.values()) agent.destroy();
    this.#agents.clear();
  }

  #sweep(): void {
    const idle = Date.now() - this.#idleMs;
    for (const [key, entry] of this.#agents) {
      if (entry.used < idle) {
        entry.agent.destroy();
        this.#agents.delete(key);
      }
    }
  }
}

/**
 * Tunnel streams are not TCP sockets: http.Agent's keep-alive bookkeeping calls
 * setKeepAlive, ref and unref on them. No-ops keep its own clean-up intact (overriding
 * reuseSocket instead leaked one 'error' listener per request).
 */
function _socketLike(stream: Duplex): Duplex {
  const socket = stream as Duplex & { setKeepAlive?: () => void; ref?: () => void; unref?: () => void; setNoDelay?: () => void };
  socket.setKeepAlive ??= () => {};
  socket.ref ??= () => {};
  socket.unref ??= () => {};
  socket.setNoDelay ??= () => {};
  return withBufferWritev(socket);
}

/** Replays an upgrade request onto a fresh tunnel stream and pipes both ways; the agent answers the 101. */
export function pipeUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, stream: Duplex): void {
  const lines = [`${req.method} ${req.url} HTTP/1.1`];
  for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
  stream.write(`${lines.join('\r\n')}\r\n\r\n`);
  if (head.length) stream.write(head);
  stream.on('error', () => socket.destroy());
  stream.pipe(socket);
  socket.pipe(stream);
  // A side that ended cleanly lets the pipe finish writing (then end) the other; a reset tears both down.
  socket.on('close', () => { if (!socket.readableEnded) stream.destroy(); });
  stream.on('close', () => { if (!stream.readableEnded) socket.destroy(); });
}
