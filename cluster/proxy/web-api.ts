/**
 * The proxy's web API on TLS connections the port router hands over: HTTP/1.1 for ALPN
 * `http/1.1` and `postern-join` (and clients offering no ALPN), HTTP/2 for `h2`. Both
 * servers are never bound to a port; connections are injected with `emit('connection')`.
 */
import http from 'node:http';
import http2 from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { NotFoundError, PosternError } from '../../protocols/errors.ts';
import type { Logger } from '../common/logger.ts';
import { sendError, statusOf, type WebRequest, type WebResponse } from './http-json.ts';
import { webRoutes, type RequestContext, type WebRoute, type WebRouteDeps } from './web-routes.ts';
import type { WebUi } from './web-ui.ts';

/** Options for {@link WebApi}. */
export interface WebApiOptions extends WebRouteDeps {
  logger: Logger;
  /** The browser UI: files at /, its API at /v1/webapi/, terminal websockets. */
  ui?: WebUi;
}

/** Serves the web API on TLS sockets handed to {@link WebApi.accept}. */
export class WebApi {
  readonly #routes: Record<string, WebRoute>;
  readonly #logger: Logger;
  readonly #http1: http.Server;
  readonly #http2: http2.Http2Server;
  readonly #sockets = new Set<TLSSocket>();
  readonly #ui: WebUi | undefined;

  constructor(options: WebApiOptions) {
    this.#routes = webRoutes(options);
    this.#ui = options.ui;
    this.#logger = options.logger;
    const handler = (req: WebRequest, res: WebResponse): void => void this.#serve(req, res);
    this.#http1 = http.createServer({ requestTimeout: 30_000, headersTimeout: 10_000, keepAliveTimeout: 5_000, maxHeaderSize: 16_384 }, handler);
    this.#http2 = http2.createServer({ maxSessionMemory: 10, settings: { maxConcurrentStreams: 100 } }, handler);
    this.#http2.on('sessionError', () => {}); // a broken client session must not surface as an unhandled error
    // Websockets (HTTP/1.1 upgrades: browsers open them on their own HTTP/1.1 connection).
    this.#http1.on('upgrade', (req: http.IncomingMessage, socket: import('node:stream').Duplex, head: Buffer) => {
      if (this.#ui) void this.#ui.upgrade(req, socket, head);
      else socket.destroy();
    });
  }

  /** Takes a TLS socket whose ALPN is `h2`, `http/1.1`, `postern-join` or none. */
  readonly accept = (socket: TLSSocket): void => {
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
    if (socket.alpnProtocol === 'h2') this.#http2.emit('connection', socket);
    else this.#http1.emit('connection', socket);
  };

  /** Drops every connection and stops serving. */
  close(): void {
    for (const socket of this.#sockets) socket.destroy();
    this.#http1.close();
    this.#http2.close();
    this.#ui?.close();
  }

  async #serve(req: WebRequest, res: WebResponse): Promise<void> {
    const started = performance.now();
    const [path = '/', search = ''] = (req.url ?? '/').split('?', 2);
    const ctx: RequestContext = { clientIp: req.socket?.remoteAddress ?? 'unknown', log: {} };
    try {
      // Named endpoints (the API, /.well-known/jwks.json) win; every other GET is the UI's.
      if (this.#ui && this.#routes[path] === undefined && !path.startsWith('/v1/') && (req.method === 'GET' || req.method === 'HEAD')) {
        this.#ui.assets.serve(req, res, path);
        return;
      }
      if (this.#ui && path.startsWith('/v1/webapi/')) {
        await this.#ui.routes.handle(req, res, ctx, path, new URLSearchParams(search));
        this.#logger.info({ ...ctx.log, clientIp: ctx.clientIp, method: req.method, path: path.slice(0, 128), status: 200, ms: Math.round(performance.now() - started) }, 'web API request');
        return;
      }
      const route = this.#routes[path];
      if (route === undefined) throw new NotFoundError(`no such endpoint ${req.method} ${path.slice(0, 128)}`);
      if (req.method !== route.method) throw new PosternError('PST_METHOD_NOT_ALLOWED', `${path} takes ${route.method}, not ${req.method}`);
      await route.handle(req, res, ctx);
      this.#logger.info({ ...ctx.log, clientIp: ctx.clientIp, method: req.method, path, status: 200, ms: Math.round(performance.now() - started) }, 'web API request');
    } catch (error) {
      const status = statusOf(error);
      const fields = { ...ctx.log, clientIp: ctx.clientIp, method: req.method, path: path.slice(0, 128), status };
      if (status >= 500 && !(error instanceof PosternError)) this.#logger.error({ ...fields, err: error }, 'web API request failed unexpectedly');
      else this.#logger.warn({ ...fields, code: (error as PosternError).code, why: (error as Error).message }, 'web API request refused');
      sendError(res, error);
    }
  }
}
