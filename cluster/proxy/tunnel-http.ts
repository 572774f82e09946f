/**
 * HTTP over tunnel streams, for the proxy's app and Kubernetes routes: an http.Agent
 * whose connections are streams dialed through an agent's tunnel (kept alive and
 * reused), and the raw pipe an Upgrade (websocket, SPDY) becomes.
 */
import http, { type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { withBufferWritev } from '../../protocols/tunnel/index.ts';

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
