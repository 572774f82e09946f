/**
 * HTTP apps on `APP.<app domain>`, on the proxy's one port: TLS connections whose SNI
 * names an app come here instead of the web API.
 *
 * ```
 * request ─ Host must equal the SNI name (421 otherwise: no Host trick reaches another app)
 *         ─ who: a user certificate routed to this app (psh apps login)       -> via certificate
 *                | else the app session cookie (stored at auth; see app-sessions.ts) -> via app-session
 *                | else browsers go to the proxy's login page, other clients get 401
 *         ─ forward over a keep-alive tunnel stream per (user, app): dial app:NAME with the
 *           certificate (to its route-to-cluster) or, for a session of this cluster, the
 *           routed identity; the agent decides (checkApp), adds the JWT assertion, forwards
 * ```
 *
 * Ordinary authorized requests take a fast path: HTTP/1.1 connections in
 * app-http1-connection.ts, HTTP/2 streams in app-http2-forwarder.ts; the checks for both
 * are here. Node's HTTP servers (and its HTTP client, in #serve) handle the rest: login
 * pages, refusals, redirects, upgrades, anything unusual.
 */
import http, { type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import http2, { type Http2Session, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../common/logger.ts';
import type { UserIdentity } from '../auth/pki/identity.ts';
import { ServiceDialError } from './errors.ts';
import { dialStatus, type ServiceDialer, type ServiceDialRequest } from './service-dialer.ts';
import { certificateDial, peerUser, routedHeader, type PeerUser } from './user-certificate.ts';
import { withoutSessionCookie } from './app-session-cookie.ts';
import { TunnelAgentPool, pipeUpgrade } from './tunnel-http.ts';
import { isContentLength, isFieldValue, isRequestTarget, isToken, serializeRequestHead, type HeaderField, type MessageHead } from '../../protocols/http1/index.ts';
import { AppHttp1Connection, type FastPathDecision } from './app-http1-connection.ts';
import { AppHttp2Forwarder, type Http2ForwardRequest } from './app-http2-forwarder.ts';
import { TunnelStreamPool } from './tunnel-stream-pool.ts';

const appLabel = /^[a-z0-9][a-z0-9-]{0,62}$/;
const hopByHop = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-authenticate', 'host']);
const { NGHTTP2_FLAG_END_STREAM } = http2.constants;

/** A user authenticated for one request, and how. */
export interface AppCaller {
  identity: Pick<UserIdentity, 'username' | 'roles' | 'traits' | 'cluster' | 'expires'>;
  via: 'certificate' | 'app-session';
  /**
   * The certificate (PEM) and the cluster it routes to: the client's when via is
   * certificate; an app session's when it is routed to a leaf (app-sessions.ts sessionCaller).
   */
  certificate?: { pem: string; routeToCluster: string };
}

/** Resolves the app session cookie of a request (app-sessions.ts); undefined when none is valid. */
export type SessionLookup = (req: Pick<IncomingMessage, 'headers'>, app: string) => Promise<AppCaller | undefined>;

export interface AppWebOptions {
  /** The domain apps live under; undefined turns app routing off. */
  appDomain: () => string | undefined;
  userCaPems: () => readonly string[];
  dialer: Pick<ServiceDialer, 'dial'>;
  sessions?: SessionLookup;
  /** The session lookup's cached answer, without waiting: 'miss' when only `sessions` can tell. */
  sessionsCached?: (req: Pick<IncomingMessage, 'headers'>, app: string) => AppCaller | undefined | 'miss';
  /** Paths under the app host the session layer answers itself (`/.postern/...`); true when handled. */
  sessionRoutes?: (req: IncomingMessage, res: ServerResponse, app: string) => Promise<boolean>;
  /** Where a browser without a session is sent (the request's cookies may name the cluster it logs in to). */
  loginUrl?: (req: Pick<IncomingMessage, 'headers'>, path: string) => string;
  /** Serve authorized requests on the fast paths (app-http1-connection.ts, app-http2-forwarder.ts). Default true. */
  fastPath?: boolean;
  /** An HTTP/2 session with no frames either way for this long is closed (GOAWAY; open streams finish). Default 120 s, the HTTP/1.1 fast path's idle limit. */
  http2IdleMs?: number;
  logger: Logger;
  onRefused?: (reason: string) => void;
}

/** The app name an SNI or Host names under `domain`, if any. */
export function appNameOf(host: string | undefined, domain: string | undefined): string | undefined {
  if (!host || !domain) return undefined;
  const name = host.toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '');
  const suffix = `.${domain.toLowerCase()}`;
  if (!name.endsWith(suffix)) return undefined;
  const label = name.slice(0, -suffix.length);
  return appLabel.test(label) ? label : undefined;
}

/** Serves app requests on TLS sockets whose SNI names an app. */
export class AppWeb {
  readonly #options: AppWebOptions;
  readonly #http1: http.Server;
  readonly #http2: http2.Http2Server;
  readonly #peers = new WeakMap<object, PeerUser>();
  readonly #fastStates = new WeakMap<TLSSocket, _FastState>();
  readonly #h2States = new WeakMap<Http2Session, _Http2State>();
  /** The dials of each caller (and their pool keys) by app and client address, so neither is computed per request. */
  readonly #dials = new WeakMap<AppCaller['identity'], Map<string, _CallerDialCache>>();
  readonly #agents: TunnelAgentPool;
  readonly #streams: TunnelStreamPool;
  readonly #h2Forwarder: AppHttp2Forwarder;
  /** Node's HTTP/2 compatibility layer ('stream' -> 'request'), for what the fast path does not serve. */
  readonly #h2Compat: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, rawHeaders: string[]) => void;
  /** The TLS socket whose HTTP/2 session is being created (the 'session' event names only the session). */
  #h2Socket: TLSSocket | undefined;

  constructor(options: AppWebOptions) {
    this.#options = options;
    const handler = (req: IncomingMessage, res: ServerResponse): void => void this.#serve(req, res);
    this.#http1 = http.createServer({ requestTimeout: 0, headersTimeout: 30_000, keepAliveTimeout: 30_000, maxHeaderSize: 32_768 }, handler);
    this.#http1.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => void this.#upgrade(req, socket, head));
    this.#http2 = http2.createServer({ settings: { maxConcurrentStreams: 256 } }, handler as never);
    this.#http2.on('sessionError', () => {});
    // Without a timeout Node keeps an idle session (and its TLS socket) open for ever.
    this.#http2.setTimeout(options.http2IdleMs ?? 120_000);
    this.#http2.on('timeout', (session: Http2Session) => session.close());
    // The compatibility layer is a 'stream' listener that creates a request and response
    // object per stream and emits 'request'. It is taken off and called only for the
    // streams the fast path does not serve: listening on 'request' would build those
    // objects for every stream (~15% of the proxy's CPU per HTTP/2 request).
    const compat = this.#http2.listeners('stream') as Array<(...args: unknown[]) => void>;
    if (compat.length !== 1) throw new Error(`Cannot set up the HTTP/2 fast path: expected Node's HTTP/2 compatibility 'stream' listener, found ${compat.length}`);
    this.#http2.removeAllListeners('stream');
    this.#h2Compat = (stream, headers, flags, rawHeaders) => compat[0]!.call(this.#http2, stream, headers, flags, rawHeaders);
    this.#http2.on('stream', this.#onHttp2Stream);
    this.#http2.on('session', (session: Http2Session) => {
      const socket = this.#h2Socket;
      if (socket) this.#h2States.set(session, { socket, addr: `${socket.remoteAddress ?? 'unknown'}:${socket.remotePort ?? 0}`, host: undefined, app: '', cookie: undefined, strippedCookie: undefined, routed: undefined });
    });
    this.#agents = new TunnelAgentPool((request) => options.dialer.dial(request), { idleMs: 60_000 });
    this.#streams = new TunnelStreamPool({ dial: (request) => options.dialer.dial(request), idleMs: 60_000, maxAgeMs: 60_000 });
    this.#h2Forwarder = new AppHttp2Forwarder({ pool: this.#streams, refuse: (stream, status, why, reason) => this.#refuseStream(stream, status, why, reason) });
  }

  /** True when this socket's SNI names an app. */
  owns(socket: TLSSocket): boolean {
    return appNameOf(socket.servername || undefined, this.#options.appDomain()) !== undefined;
  }

  /** Takes a TLS socket (ALPN h2, http/1.1 or none) whose SNI names an app. */
  readonly accept = (socket: TLSSocket): void => {
    if (socket.alpnProtocol === 'h2') {
      // The session is created (and 'session' emitted) while 'connection' is handled.
      this.#h2Socket = socket;
      try {
        this.#http2.emit('connection', socket);
      } finally {
        this.#h2Socket = undefined;
      }
    } else if (this.#options.fastPath === false) this.#http1.emit('connection', socket);
    else new AppHttp1Connection(socket, { check: this.#fastCheck, dial: (request) => this.#options.dialer.dial(request), handOff: (s) => this.#http1.emit('connection', s) });
  };

  close(): void {
    this.#agents.close();
    this.#streams.close();
    this.#http1.close();
    this.#http2.close();
  }

  #tlsOf(req: IncomingMessage): TLSSocket {
    return req.socket as TLSSocket;
  }

  /** The app of a request, after checking that Host names the same app as SNI. */
  #appOf(req: IncomingMessage): { app: string } | { status: number; why: string } {
    return this.#appOfRequest(this.#tlsOf(req), req.headers.host ?? (req.headers[':authority'] as string | undefined), req.url);
  }

  #appOfRequest(socket: TLSSocket, host: string | undefined, url: string | undefined): { app: string } | { status: number; why: string } {
    const domain = this.#options.appDomain();
    const sni = socket.servername || undefined;
    const app = appNameOf(sni, domain);
    if (app === undefined) return { status: 421, why: 'this connection does not name an app (TLS server name)' };
    if (appNameOf(host, domain) !== app || host!.toLowerCase().replace(/:\d+$/, '') !== sni!.toLowerCase()) {
      return { status: 421, why: `the Host header (${String(host).slice(0, 128)}) does not match the TLS server name ${sni}; one connection reaches one app` };
    }
    if (!(url ?? '/').startsWith('/')) return { status: 400, why: 'the request target must be a path' };
    return { app };
  }

  async #caller(req: IncomingMessage, app: string): Promise<AppCaller | { status: number; why: string } | undefined> {
    const key = 'stream' in req ? (req as unknown as { stream: { session: object } }).stream.session : req.socket;
    return this.#callerOf(key, this.#tlsOf(req), req, app);
  }

  /** Who sends a request: the connection's user certificate, else its session cookie. */
  async #callerOf(key: object, socket: TLSSocket, req: Pick<IncomingMessage, 'headers'>, app: string): Promise<AppCaller | { status: number; why: string } | undefined> {
    const known = this.#certificateCaller(key, socket, app);
    if (known !== 'no-certificate') return known;
    return this.#options.sessions?.(req, app);
  }

  /** The caller by the connection's certificate; 'no-certificate' when the connection has none (the cookie decides). */
  #certificateCaller(key: object, socket: TLSSocket, app: string): AppCaller | { status: number; why: string } | 'no-certificate' {
    let peer = this.#peers.get(key);
    if (!peer) {
      peer = peerUser(socket, this.#options.userCaPems());
      this.#peers.set(key, peer);
    }
    if (peer.kind === 'bad') return { status: 401, why: `the client certificate was refused: ${peer.why}` };
    if (peer.kind === 'user') {
      if (peer.identity.expires <= new Date()) return { status: 401, why: 'the client certificate has expired; run psh login and psh apps login again' };
      const routed = peer.identity.routeToApp?.name;
      if (routed !== app) return { status: 403, why: routed ? `this certificate is for app "${routed}", not "${app}"; run psh apps login ${app}` : `this certificate is not routed to an app; run psh apps login ${app}` };
      return { identity: peer.identity, via: 'certificate', certificate: { pem: peer.pem, routeToCluster: peer.identity.routeToCluster } };
    }
    return 'no-certificate';
  }

  /**
   * The fast path's check of one HTTP/1.1 request head: the same Host, path and caller
   * checks as #serve; anything it does not forward as is (no or bad credentials, login
   * pages, upgrades, HTTP/1.0, Connection options) goes to #serve through Node's server.
   */
  readonly #fastCheck = (socket: TLSSocket, head: MessageHead): FastPathDecision | Promise<FastPathDecision> => {
    if (head.version !== 'HTTP/1.1' || head.upgrade || !head.keepAlive || (head.connection.size > 0 && !(head.connection.size === 1 && head.connection.has('keep-alive')))) return { forward: false };
    if (head.target.startsWith('/.postern/')) return { forward: false };
    // One pass over the fields: Host and Cookie out, the rest kept unless hop-by-hop.
    let host: string | undefined;
    let hosts = 0;
    let cookie: string | undefined;
    const out: HeaderField[] = [];
    for (const field of head.headers) {
      const lower = field[0].toLowerCase();
      if (lower === 'host') {
        host = field[1];
        hosts++;
      } else if (lower === 'cookie') {
        cookie = cookie === undefined ? field[1] : `${cookie}; ${field[1]}`;
        continue;
      } else if (hopByHop.has(lower)) continue;
      out.push(field);
    }
    if (hosts !== 1) return { forward: false };
    const state = this.#fastState(socket);
    // Host and SNI are compared once per distinct Host value on a connection (SNI cannot change).
    if (host !== state.host) {
      const where = this.#appOfRequest(socket, host, head.target);
      if ('status' in where) return { forward: false };
      state.host = host;
      state.app = where.app;
    } else if (!head.target.startsWith('/')) return { forward: false };
    const app = state.app;
    // Answered at once when the certificate or the session cache decides (the common case): no event-loop turn.
    let caller = this.#certificateCaller(socket, socket, app);
    const req = { headers: { cookie } };
    if (caller === 'no-certificate') {
      const cached = this.#options.sessionsCached?.(req, app) ?? 'miss';
      if (cached === 'miss') return (this.#options.sessions?.(req, app) ?? Promise.resolve(undefined)).then((found) => this.#fastDecision(socket, head, app, cookie, out, found));
      caller = cached;
    }
    return this.#fastDecision(socket, head, app, cookie, out, caller);
  };

  #fastState(socket: TLSSocket): _FastState {
    let state = this.#fastStates.get(socket);
    if (!state) {
      state = { host: undefined, app: '', cookie: undefined, strippedCookie: undefined, routed: undefined };
      this.#fastStates.set(socket, state);
    }
    return state;
  }

  #fastDecision(socket: TLSSocket, head: MessageHead, app: string, cookie: string | undefined, out: HeaderField[], caller: AppCaller | { status: number; why: string } | undefined): FastPathDecision {
    if (caller === undefined || 'status' in caller) return { forward: false };
    const state = this.#fastState(socket);
    // The routed identity (JSON, base64) is the same for every request of one caller on one connection.
    let routed = state.routed;
    if (!routed || routed.identity !== caller.identity || routed.app !== app || routed.via !== caller.via) {
      const { dial, key } = this.#dialFor(caller, `${socket.remoteAddress ?? 'unknown'}:${socket.remotePort ?? 0}`, app);
      routed = { identity: caller.identity, app, via: caller.via, dial, key };
      state.routed = routed;
    }
    // The session cookie is Postern's, never the app's.
    if (cookie !== state.cookie) {
      state.cookie = cookie;
      state.strippedCookie = withoutSessionCookie(cookie);
    }
    if (state.strippedCookie !== undefined) out.push(['cookie', state.strippedCookie]);
    if (head.framing.kind === 'chunked') out.push(['transfer-encoding', 'chunked']);
    return { forward: true, key: routed.key, dial: routed.dial, head: Buffer.from(serializeRequestHead(head.method, head.target, out), 'latin1') };
  }

  /**
   * Each HTTP/2 stream: the fast path (app-http2-forwarder.ts) when #http2Check forwards
   * it, else Node's compatibility layer and #serve, which answer everything else.
   */
  readonly #onHttp2Stream = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, rawHeaders: string[]): void => {
    // A stream reset while its caller is looked up must not throw for want of a listener.
    stream.on('error', _noop);
    let decision: Http2ForwardRequest | undefined | Promise<Http2ForwardRequest | undefined>;
    try {
      decision = this.#options.fastPath === false ? undefined : this.#http2Check(stream, headers, flags, rawHeaders);
    } catch {
      decision = undefined;
    }
    if (decision instanceof Promise) {
      decision.catch(() => undefined).then((found) => {
        if (!stream.destroyed && !stream.closed) this.#serveHttp2(stream, headers, flags, rawHeaders, found);
      });
    } else this.#serveHttp2(stream, headers, flags, rawHeaders, decision);
  };

  #serveHttp2(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, rawHeaders: string[], decision: Http2ForwardRequest | undefined): void {
    try {
      if (decision) this.#h2Forwarder.forward(stream, decision);
      else this.#h2Compat(stream, headers, flags, rawHeaders);
    } catch (error) {
      // A throw here would reach the HTTP/2 session's event loop and end the process.
      this.#options.logger.warn({ err: error }, 'app request failed');
      stream.destroy();
    }
  }

  /**
   * The HTTP/2 fast path's check of one request: the same Host, path and caller checks as
   * the HTTP/1.1 one (#fastCheck), and a method, path and fields that make a valid
   * HTTP/1.1 request; undefined sends the stream to #serve.
   */
  #http2Check(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, raw: string[]): Http2ForwardRequest | undefined | Promise<Http2ForwardRequest | undefined> {
    const session = stream.session;
    const state = session && this.#h2States.get(session);
    if (!session || !state) return undefined;
    const method = headers[':method'];
    const target = headers[':path'];
    if (typeof method !== 'string' || typeof target !== 'string' || method === 'CONNECT' || !target.startsWith('/') || target.startsWith('/.postern/') || !isToken(method) || !isRequestTarget(target)) return undefined;
    let host: string | undefined;
    let authority: string | undefined;
    let cookie: string | undefined;
    let length: string | undefined;
    let expect = false;
    // The head's fields; Host goes first, set below.
    const out: HeaderField[] = [['host', '']];
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      const value = raw[i + 1]!;
      if (name.charCodeAt(0) === 58 /* : */) {
        if (name === ':authority') authority = value;
        else if (name !== ':method' && name !== ':path' && name !== ':scheme') return undefined;
        continue;
      }
      // HTTP/2 allows bytes in fields that would end a line or a head in HTTP/1.1: never forwarded.
      if (!isToken(name) || !isFieldValue(value)) return undefined;
      if (name === 'host') {
        if (host !== undefined) return undefined;
        host = value;
      } else if (name === 'cookie') {
        // HTTP/2 may split the cookie header; HTTP/1.1 has one.
        cookie = cookie === undefined ? value : `${cookie}; ${value}`;
      } else if (name === 'expect') {
        if (value.toLowerCase() !== '100-continue') return undefined;
        expect = true;
      } else if (!hopByHop.has(name)) {
        if (name === 'content-length') {
          if (length !== undefined || !isContentLength(value)) return undefined;
          length = value;
        }
        out.push([name, value]);
      }
    }
    if (host !== undefined && authority !== undefined && host !== authority) return undefined;
    const hostValue = host ?? authority;
    if (hostValue === undefined) return undefined;
    if (hostValue !== state.host) {
      const where = this.#appOfRequest(state.socket, hostValue, target);
      if ('status' in where) return undefined;
      state.host = hostValue;
      state.app = where.app;
    }
    out[0]![1] = hostValue;
    const app = state.app;
    const request: _Http2Request = { state, method, target, cookie, out, length, expect, endStream: (flags & NGHTTP2_FLAG_END_STREAM) !== 0 };
    let caller = this.#certificateCaller(session, state.socket, app);
    if (caller === 'no-certificate') {
      const req = { headers: { cookie } };
      const cached = this.#options.sessionsCached?.(req, app) ?? 'miss';
      if (cached === 'miss') return (this.#options.sessions?.(req, app) ?? Promise.resolve(undefined)).then((found) => this.#http2Decision(request, app, found));
      caller = cached;
    }
    return this.#http2Decision(request, app, caller);
  }

  #http2Decision(request: _Http2Request, app: string, caller: AppCaller | { status: number; why: string } | undefined): Http2ForwardRequest | undefined {
    // Refusals, logins and redirects are the full path's to answer.
    if (caller === undefined || 'status' in caller) return undefined;
    const { state, out, method, length } = request;
    // The dial is the same for every request of one caller on one session.
    let routed = state.routed;
    if (!routed || routed.identity !== caller.identity || routed.app !== app || routed.via !== caller.via) {
      const { dial, key } = this.#dialFor(caller, state.addr, app);
      routed = { identity: caller.identity, app, via: caller.via, dial, key };
      state.routed = routed;
    }
    const { dial, key } = routed;
    // The session cookie is Postern's, never the app's.
    if (request.cookie !== state.cookie) {
      state.cookie = request.cookie;
      state.strippedCookie = withoutSessionCookie(request.cookie);
    }
    if (state.strippedCookie !== undefined) out.push(['cookie', state.strippedCookie]);
    // No body: the head goes at once (a GET's END_STREAM may come late). Else the body goes
    // as it comes: as is with a content-length, else chunk-encoded.
    let body: Http2ForwardRequest['body'] = 'chunked';
    if (request.endStream || length === '0' || (length === undefined && (method === 'GET' || method === 'HEAD'))) body = 'none';
    else if (length !== undefined) body = 'length';
    else out.push(['transfer-encoding', 'chunked']);
    const head = Buffer.from(serializeRequestHead(method, request.target, out), 'latin1');
    return { key, dial, head, body, length: body === 'length' ? Number(length) : 0, headRequest: method === 'HEAD', continue: request.expect };
  }

  /**
   * The dial (and its pool key) of `caller` from `addr` to `app`, computed once per caller
   * identity object (a certificate's, or a session's until its cache entry is renewed),
   * app and client address.
   */
  #dialFor(caller: AppCaller, addr: string, app: string): { dial: ServiceDialRequest; key: string } {
    let known = this.#dials.get(caller.identity);
    const where = `${app}\0${addr}`;
    const entry = known?.get(where);
    if (entry && entry.via === caller.via && entry.pem === caller.certificate?.pem) return entry;
    if (!known || known.size >= 256) {
      known = new Map();
      this.#dials.set(caller.identity, known);
    }
    const dial = { ...dialOfCaller(caller, addr), service: `app:${app}` };
    const made: _CallerDialCache = { via: caller.via, pem: caller.certificate?.pem, dial, key: `${dial.service}\0${dial.cluster ?? ''}\0${dial.identity}\0${JSON.stringify(dial.headers ?? {})}` };
    known.set(where, made);
    return made;
  }

  async #serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const where = this.#appOf(req);
    if ('status' in where) return this.#refuse(res, where.status, where.why, 'app-bad-host');
    const { app } = where;
    if (this.#options.sessionRoutes && (req.url ?? '').startsWith('/.postern/') && (await this.#options.sessionRoutes(req, res, app))) return;
    const caller = await this.#caller(req, app);
    if (caller === undefined) return this.#unauthenticated(req, res, app);
    if ('status' in caller) return this.#refuse(res, caller.status, caller.why, 'app-bad-credentials');
    const addr = `${req.socket.remoteAddress ?? 'unknown'}:${req.socket.remotePort ?? 0}`;
    const { dial } = this.#dialFor(caller, addr, app);
    this.#options.logger.debug({ app, user: caller.identity.username, via: caller.via, method: req.method }, 'app request');
    const headers: OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined || name.startsWith(':') || hopByHop.has(name)) continue;
      headers[name] = value;
    }
    // The session cookie is Postern's, never the app's.
    const cookie = withoutSessionCookie(req.headers.cookie);
    if (cookie === undefined) delete headers.cookie;
    else headers.cookie = cookie;
    headers.host = req.headers.host ?? (req.headers[':authority'] as string);
    const upstream = http.request({ method: req.method, path: req.url, headers, agent: this.#agents.get(dial) });
    upstream.on('response', (answer) => {
      const out: OutgoingHttpHeaders = {};
      for (const [name, value] of Object.entries(answer.headers)) if (value !== undefined && !hopByHop.has(name)) out[name] = value;
      res.writeHead(answer.statusCode ?? 502, out);
      // Answers of unknown length (server-sent events, long polls) must reach the client before they end.
      if (answer.headers['content-length'] === undefined) res.flushHeaders();
      answer.pipe(res);
      answer.on('error', () => _abort(res));
    });
    upstream.on('error', (error) => {
      if (res.headersSent) return void _abort(res);
      const status = dialStatus(error);
      this.#refuse(res, status, error instanceof ServiceDialError ? error.message : `the app connection failed: ${error.message}`, status === 403 ? 'app-denied' : 'app-dial-failed');
    });
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.on('error', () => upstream.destroy());
    // A request that declares no body is sent at once: an HTTP/2 GET's stream may end late.
    const hasBody = req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined || 'stream' in req;
    if (hasBody && !(req.method === 'GET' || req.method === 'HEAD') ) req.pipe(upstream);
    else upstream.end();
  }

  async #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => {});
    const fail = (status: number, why: string): void => {
      this.#options.onRefused?.('app-upgrade-refused');
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\ncontent-type: text/plain\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(why) + 1}\r\n\r\n${why}\n`);
    };
    const where = this.#appOf(req);
    if ('status' in where) return fail(where.status, where.why);
    const caller = await this.#caller(req, where.app);
    if (caller === undefined) return fail(401, 'log in first: open this app in the browser, or use psh apps login');
    if ('status' in caller) return fail(caller.status, caller.why);
    const addr = `${req.socket.remoteAddress ?? 'unknown'}:${req.socket.remotePort ?? 0}`;
    let stream: Duplex;
    try {
      stream = await this.#options.dialer.dial(this.#dialFor(caller, addr, where.app).dial);
    } catch (error) {
      return fail(dialStatus(error), (error as Error).message);
    }
    pipeUpgrade(req, socket, head, stream);
  }

  #unauthenticated(req: IncomingMessage, res: ServerResponse, app: string): void {
    const accept = String(req.headers.accept ?? '');
    const login = this.#options.loginUrl?.(req, req.url ?? '/');
    if (login && accept.includes('text/html') && (req.method === 'GET' || req.method === 'HEAD')) {
      res.writeHead(302, { location: login, 'cache-control': 'no-store' }).end();
      return;
    }
    this.#refuse(res, 401, `log in to reach app "${app}": open it in a browser, or run psh apps login ${app} and use psh apps config ${app}`, 'app-no-credentials');
  }

  #refuse(res: ServerResponse, status: number, why: string, reason: string): void {
    this.#options.onRefused?.(reason);
    this.#options.logger.info({ status, reason, why }, 'app request refused');
    if (!res.headersSent) res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
    res.end(`${why}\n`);
  }

  /** #refuse for the HTTP/2 fast path's streams: the same answer. */
  #refuseStream(stream: ServerHttp2Stream, status: number, why: string, reason: string): void {
    this.#options.onRefused?.(reason);
    this.#options.logger.info({ status, reason, why }, 'app request refused');
    if (stream.destroyed || stream.closed) return;
    if (!stream.headersSent) stream.respond({ ':status': status, 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
    stream.end(`${why}\n`);
  }
}

type _CallerDial = Omit<ServiceDialRequest, 'service'>;

/** What #dialFor remembers for one caller identity, app and address: the dial is reused while these match. */
interface _CallerDialCache {
  via: AppCaller['via'];
  pem: string | undefined;
  dial: ServiceDialRequest;
  key: string;
}

/** What the HTTP/2 fast path remembers about one session: as _FastState for an HTTP/1.1 connection, and the connection itself. */
interface _Http2State extends _FastState {
  socket: TLSSocket;
  /** The client's address (host:port), for the dial. */
  addr: string;
}

/** One HTTP/2 request between its check and its caller's answer. */
interface _Http2Request {
  state: _Http2State;
  method: string;
  target: string;
  cookie: string | undefined;
  /** The head's fields so far (no cookie, no framing). */
  out: HeaderField[];
  length: string | undefined;
  expect: boolean;
  /** The client's HEADERS frame ended the stream: no body at all. */
  endStream: boolean;
}

/** What the fast path remembers about one connection (values are re-checked per request; these only skip recomputation). */
interface _FastState {
  /** The last Host value that matched the SNI, and the app it names. */
  host: string | undefined;
  app: string;
  /** The last Cookie value and that value without the session cookie. */
  cookie: string | undefined;
  strippedCookie: string | undefined;
  /** The dial for the last caller. */
  routed: { identity: AppCaller['identity']; app: string; via: AppCaller['via']; dial: ServiceDialRequest; key: string } | undefined;
}

/**
 * How a caller is dialled: with a certificate (a certificate holder, or a session routed
 * to a leaf) to its route-to-cluster, the certificate as the identity; else (a session
 * of this cluster) here, with a routed identity this proxy vouches for.
 */
export function dialOfCaller(caller: AppCaller, addr: string): _CallerDial {
  if (caller.certificate) return certificateDial(caller.certificate, caller.certificate.pem, addr);
  return { identity: routedHeader(caller.identity, caller.via, addr) };
}

function _noop(): void {}

/**
 * Breaks off an answer the app did not finish. An HTTP/2 stream is reset with
 * INTERNAL_ERROR: destroy() without an error ends it cleanly first (END_STREAM), and a
 * client would take an answer without content-length as complete.
 */
function _abort(res: ServerResponse): void {
  const stream = (res as unknown as { stream?: ServerHttp2Stream }).stream;
  if (stream) stream.destroy(new Error('the app connection broke in the middle of the answer'));
  else res.destroy();
}
