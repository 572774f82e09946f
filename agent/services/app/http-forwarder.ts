/**
 * Forwards the HTTP/1.1 requests of one tunnel stream to an upstream with Node's HTTP
 * server and client, for callers that need every request parsed (the Kubernetes
 * service: impersonation headers and a per-request audit). HTTP apps use the lighter
 * AppStreamForwarder (app-stream-forwarder.ts), which passes bodies and answers as bytes.
 *
 * The proxy opens one stream per keep-alive connection; the stream's caller was checked
 * when it was dialed, so every request on it carries that caller's headers. Each
 * request: hop-by-hop headers and any client-sent `Postern-Jwt-Assertion` are dropped,
 * the configured rewrite headers set, the caller's headers added; bodies stream both
 * ways (large uploads, watches); an Upgrade (exec, port-forward) becomes a raw byte pipe
 * once the upstream answers 101, which a caller's tap may watch but never changes (the
 * Kubernetes exec recorder; a tap that throws is cut off, the pipe goes on).
 */
import http, { type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import { withBufferWritev } from '../../../protocols/tunnel/index.ts';

/** The header the upstream reads the signed identity from. */
export const jwtAssertionHeader = 'postern-jwt-assertion';

const hopByHop = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-authenticate']);

/** What one forwarded stream knows about its caller. */
export interface StreamCaller {
  addr: string;
  /** Sets the caller's headers on each request to the upstream (after the client's were filtered). */
  decorate(out: OutgoingHttpHeaders, req: IncomingMessage): void;
  /** Called for each request (audit). */
  onRequest?(req: IncomingMessage): void;
  /** Called when the upstream accepted an upgrade; a tap returned sees the bytes both ways (never changes them). */
  onUpgrade?(req: IncomingMessage, res: IncomingMessage): UpgradeTap | undefined;
}

/** An observer of an upgraded connection's bytes (the Kubernetes exec recorder). */
export interface UpgradeTap {
  /** Bytes from the client, in order, from the first after the request head. */
  fromClient(chunk: Buffer): void;
  /** Bytes from the upstream, in order, from the first after its 101 head. */
  fromUpstream(chunk: Buffer): void;
  /** The connection is over (called once, when either side closes). */
  end(): void;
}

export interface HttpForwarderOptions {
  upstream: URL;
  rewriteHeaders: Record<string, string>;
  insecureSkipVerify: boolean;
  /** Client headers never passed on (lower case), besides hop-by-hop ones. */
  dropHeaders?: (name: string) => boolean;
  /** TLS to the upstream: CA and client certificate. */
  tls?: { ca?: string; cert?: string; key?: string };
  onError: (error: Error, request: { method?: string; url?: string }) => void;
}

/** Serves forwarded HTTP streams for one app. */
export class HttpForwarder {
  readonly #options: HttpForwarderOptions;
  readonly #server: http.Server;
  readonly #agent: http.Agent;
  readonly #callers = new WeakMap<object, StreamCaller>();

  constructor(options: HttpForwarderOptions) {
    this.#options = options;
    const tls = options.upstream.protocol === 'https:';
    this.#agent = tls ? new https.Agent({ keepAlive: true, maxSockets: 256, rejectUnauthorized: !options.insecureSkipVerify, ...options.tls }) : new http.Agent({ keepAlive: true, maxSockets: 256 });
    this.#server = http.createServer({ requestTimeout: 0, headersTimeout: 60_000, keepAliveTimeout: 60_000, maxHeaderSize: 32_768 }, (req, res) => this.#forward(req, res));
    this.#server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#upgrade(req, socket, head));
    this.#server.on('clientError', (error: Error & { rawPacket?: Buffer }, socket: Duplex) => {
      options.onError(error, { method: 'clientError', url: error.rawPacket?.subarray(0, 200).toString('latin1') });
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    });
  }

  /** Serves one tunnel stream for `caller`. */
  serve(stream: Duplex, caller: StreamCaller): void {
    this.#callers.set(stream, caller);
    this.#server.emit('connection', withBufferWritev(stream));
  }

  close(): void {
    this.#server.close();
    this.#agent.destroy();
  }

  #caller(req: IncomingMessage): StreamCaller | undefined {
    return this.#callers.get(req.socket);
  }

  #headers(req: IncomingMessage, caller: StreamCaller): OutgoingHttpHeaders {
    const out: OutgoingHttpHeaders = {};
    const connectionListed = new Set(String(req.headers.connection ?? '').toLowerCase().split(',').map((t) => t.trim()));
    const rewrite = new Set(Object.keys(this.#options.rewriteHeaders).map((k) => k.toLowerCase()));
    for (const [name, value] of Object.entries(req.headers as IncomingHttpHeaders)) {
      if (value === undefined || hopByHop.has(name) || connectionListed.has(name) || rewrite.has(name)) continue;
      if (name === jwtAssertionHeader || name === 'host' || name.startsWith('x-forwarded-') || this.#options.dropHeaders?.(name)) continue;
      out[name] = value;
    }
    for (const [name, value] of Object.entries(this.#options.rewriteHeaders)) out[name.toLowerCase()] = value;
    caller.decorate(out, req);
    out.host = this.#options.upstream.host;
    out['x-forwarded-for'] = caller.addr.replace(/:\d+$/, '');
    out['x-forwarded-proto'] = 'https';
    out['x-forwarded-host'] = req.headers.host ?? '';
    return out;
  }

  #request(req: IncomingMessage, headers: OutgoingHttpHeaders): http.ClientRequest {
    const upstream = this.#options.upstream;
    const basePath = upstream.pathname === '/' ? '' : upstream.pathname.replace(/\/$/, '');
    const client = upstream.protocol === 'https:' ? https : http;
    return client.request({
      host: upstream.hostname,
      port: upstream.port || (upstream.protocol === 'https:' ? 443 : 80),
      method: req.method,
      path: basePath + (req.url ?? '/'),
      headers,
      agent: this.#agent,
    });
  }

  #forward(req: IncomingMessage, res: http.ServerResponse): void {
    const caller = this.#caller(req);
    if (!caller) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end('stream without a caller\n');
      return;
    }
    caller.onRequest?.(req);
    const upstreamReq = this.#request(req, this.#headers(req, caller));
    upstreamReq.on('response', (upstreamRes) => {
      const headers: OutgoingHttpHeaders = {};
      for (const [name, value] of Object.entries(upstreamRes.headers)) if (value !== undefined && !hopByHop.has(name)) headers[name] = value;
      res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.statusMessage, headers);
      // Streaming answers (SSE, watches: no content-length) must reach the client before the body
      // ends; others leave the head to go out with the first body bytes: one tunnel write, not two.
      if (upstreamRes.headers['content-length'] === undefined) res.flushHeaders();
      upstreamRes.pipe(res);
      upstreamRes.on('error', () => res.destroy());
    });
    upstreamReq.on('error', (error) => {
      this.#options.onError(error, req);
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain; charset=utf-8' }).end(`the app's upstream ${this.#options.upstream.host} cannot be reached: ${error.message}\n`);
      else res.destroy();
    });
    req.on('error', () => upstreamReq.destroy());
    res.on('close', () => {
      if (!res.writableFinished) upstreamReq.destroy();
    });
    req.pipe(upstreamReq);
  }

  /** The caller's tap, wrapped so that nothing it throws reaches the byte pipe. */
  #tap(caller: StreamCaller, req: IncomingMessage, res: IncomingMessage): UpgradeTap | undefined {
    let inner: UpgradeTap | undefined;
    try {
      inner = caller.onUpgrade?.(req, res);
    } catch (error) {
      this.#options.onError(error as Error, req);
    }
    if (!inner) return undefined;
    const tap = inner;
    let broken = false;
    const guard = (run: () => void) => {
      if (broken) return;
      try {
        run();
      } catch (error) {
        broken = true;
        this.#options.onError(error as Error, req);
      }
    };
    return {
      fromClient: (chunk) => guard(() => tap.fromClient(chunk)),
      fromUpstream: (chunk) => guard(() => tap.fromUpstream(chunk)),
      end: () => {
        try {
          tap.end();
        } catch (error) {
          this.#options.onError(error as Error, req);
        }
      },
    };
  }

  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => {});
    const caller = this.#caller(req);
    if (!caller) return void socket.destroy();
    caller.onRequest?.(req);
    const headers = this.#headers(req, caller);
    headers.connection = 'Upgrade';
    headers.upgrade = req.headers.upgrade ?? '';
    const upstreamReq = this.#request(req, headers);
    upstreamReq.on('upgrade', (upstreamRes, upstreamSocket, upstreamHead) => {
      upstreamSocket.on('error', () => socket.destroy());
      const lines = [`HTTP/1.1 ${upstreamRes.statusCode ?? 101} ${upstreamRes.statusMessage ?? 'Switching Protocols'}`];
      for (let i = 0; i < upstreamRes.rawHeaders.length; i += 2) lines.push(`${upstreamRes.rawHeaders[i]}: ${upstreamRes.rawHeaders[i + 1]}`);
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (upstreamHead.length) socket.write(upstreamHead);
      if (head.length) upstreamSocket.write(head);
      const tap = this.#tap(caller, req, upstreamRes);
      if (tap) {
        // Extra 'data' listeners see the same chunks the pipes forward, in order; they change nothing.
        if (head.length) tap.fromClient(head);
        if (upstreamHead.length) tap.fromUpstream(upstreamHead);
        socket.on('data', (chunk: Buffer) => tap.fromClient(chunk));
        upstreamSocket.on('data', (chunk: Buffer) => tap.fromUpstream(chunk));
        let ended = false;
        const end = () => {
          if (ended) return;
          ended = true;
          tap.end();
        };
        socket.once('close', end);
        upstreamSocket.once('close', end);
      }
      upstreamSocket.pipe(socket);
      socket.pipe(upstreamSocket);
      // A side that ended cleanly lets the pipe finish writing (then end) the other; a reset tears both down.
      socket.on('close', () => { if (!socket.readableEnded) upstreamSocket.destroy(); });
      upstreamSocket.on('close', () => { if (!upstreamSocket.readableEnded) socket.destroy(); });
    });
    upstreamReq.on('response', (upstreamRes) => {
      // The upstream refused the upgrade: pass its answer on and close.
      const lines = [`HTTP/1.1 ${upstreamRes.statusCode ?? 502} ${upstreamRes.statusMessage ?? ''}`, 'connection: close'];
      for (let i = 0; i < upstreamRes.rawHeaders.length; i += 2) if (!hopByHop.has(String(upstreamRes.rawHeaders[i]).toLowerCase())) lines.push(`${upstreamRes.rawHeaders[i]}: ${upstreamRes.rawHeaders[i + 1]}`);
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
      upstreamRes.pipe(socket);
    });
    upstreamReq.on('error', (error) => {
      this.#options.onError(error, req);
      socket.end('HTTP/1.1 502 Bad Gateway\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    });
    upstreamReq.end();
  }
}
