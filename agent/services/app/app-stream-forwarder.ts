/**
 * Forwards the HTTP/1.1 requests of one tunnel stream to an app's upstream over one
 * upstream connection, rewriting request heads and passing bodies and answers through
 * as bytes (protocols/http1): no HTTP server or client objects per request.
 *
 * ```
 * tunnel stream ─ MessageReader(request) ─ head: drop hop-by-hop, Connection-listed, rewrite,
 *   │                                        x-forwarded-*, client-sent assertion headers; add
 *   │                                        rewrite headers, host, JWT assertion, x-forwarded-*
 *   │                                      body: raw ───────────────────────────────> upstream
 *   <────────────── raw bytes ──────────── MessageReader(response) counts answers <──┘
 * ```
 *
 * The stream's caller was checked when it was dialed (app-service.ts), so every request
 * on it carries that caller's assertion. Answers are only counted (to know when the
 * upstream connection may be replaced and when a request is left unanswered): an
 * upstream that closes between answers is reconnected at the next request; one that
 * closes before answering gets a 502 for the request, one that closes in the middle of
 * an answer resets the stream. An Upgrade (websocket) becomes a raw pipe once the
 * upstream answers 101.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { Http1ParseError, MessageReader, serializeRequestHead, type HeaderField, type MessageHead } from '../../../protocols/http1/index.ts';
import { jwtAssertionHeader } from './http-forwarder.ts';
import { refusedTarget } from './request-target.ts';


const maxHeadBytes = 32 * 1024;
const hopByHop = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-authenticate']);

export interface AppStreamForwarderOptions {
  upstream: URL;
  rewriteHeaders: Record<string, string>;
  insecureSkipVerify: boolean;
  onError: (error: Error, request: { method?: string; url?: string }) => void;
}

/** Who the requests of one stream are for. */
export interface AppStreamCaller {
  jwt: string;
  /** The client's address as the proxy saw it (host:port). */
  addr: string;
}

/** Serves forwarded HTTP/1.1 streams for one app. */
export class AppStreamForwarder {
  readonly #options: AppStreamForwarderOptions;
  readonly #rewrite: HeaderField[];
  readonly #rewriteNames: ReadonlySet<string>;
  readonly #basePath: string;
  readonly #live = new Set<_Connection>();

  constructor(options: AppStreamForwarderOptions) {
    this.#options = options;
    this.#rewrite = Object.entries(options.rewriteHeaders).map(([name, value]) => [name.toLowerCase(), value]);
    this.#rewriteNames = new Set(this.#rewrite.map(([name]) => name));
    this.#basePath = options.upstream.pathname === '/' ? '' : options.upstream.pathname.replace(/\/$/, '');
  }

  /** Serves one tunnel stream for `caller`. */
  serve(stream: Duplex, caller: AppStreamCaller): void {
    const connection = new _Connection(this, stream, caller);
    this.#live.add(connection);
    stream.once('close', () => this.#live.delete(connection));
  }

  close(): void {
    for (const connection of this.#live) connection.destroy();
    this.#live.clear();
  }

  /** The upstream request head for a client request head; throws for a target the app must not receive. */
  head(head: MessageHead, caller: AppStreamCaller): Buffer {
    const refused = refusedTarget(head.target);
    if (refused !== undefined) throw new Http1ParseError(refused);
    const out: HeaderField[] = [];
    const listed = head.connection;
    for (const field of head.headers) {
      const lower = field[0].toLowerCase();
      if (hopByHop.has(lower) || listed.has(lower) || this.#rewriteNames.has(lower)) continue;
      if (lower === jwtAssertionHeader || lower === 'host' || lower.startsWith('x-forwarded-')) continue;
      out.push(field);
    }
    let host = '';
    for (const [name, value] of head.headers) if (name.length === 4 && name.toLowerCase() === 'host') host = value;
    if (head.framing.kind === 'chunked') out.push(['transfer-encoding', 'chunked']);
    for (const field of this.#rewrite) out.push(field);
    out.push([jwtAssertionHeader, caller.jwt], ['host', this.#options.upstream.host], ['x-forwarded-for', caller.addr.replace(/:\d+$/, '')], ['x-forwarded-proto', 'https'], ['x-forwarded-host', host]);
    if (head.upgrade) {
      let upgrade = '';
      for (const [name, value] of head.headers) if (name.length === 7 && name.toLowerCase() === 'upgrade') upgrade = value;
      out.push(['connection', 'Upgrade'], ['upgrade', upgrade]);
    } else if (!head.keepAlive) {
      out.push(['connection', 'close']);
    }
    return Buffer.from(serializeRequestHead(head.method, this.#basePath + head.target, out), 'latin1');
  }

  /** A new connection to the upstream. */
  connect(): net.Socket {
    const upstream = this.#options.upstream;
    const port = Number(upstream.port || (upstream.protocol === 'https:' ? 443 : 80));
    if (upstream.protocol !== 'https:') return net.connect({ host: upstream.hostname, port, noDelay: true });
    const servername = net.isIP(upstream.hostname) ? undefined : upstream.hostname;
    return tls.connect({ host: upstream.hostname, port, servername, rejectUnauthorized: !this.#options.insecureSkipVerify, ALPNProtocols: ['http/1.1'] }).setNoDelay(true);
  }

  onError(error: Error, request: { method?: string; url?: string }): void {
    this.#options.onError(error, request);
  }

  get upstreamHost(): string {
    return this.#options.upstream.host;
  }
}

interface _Pending {
  method: string;
  url: string;
  upgrade: boolean;
  /** false for `Connection: close` (or HTTP/1.0 without keep-alive): the stream ends after its answer. */
  keepAlive: boolean;
}

/** One tunnel stream and its upstream connection. */
class _Connection {
  readonly #forwarder: AppStreamForwarder;
  readonly #stream: Duplex;
  readonly #caller: AppStreamCaller;
  readonly #requests = new MessageReader({ kind: 'request', maxHeadBytes });
  #answers = new MessageReader({ kind: 'response', maxHeadBytes: 64 * 1024 });
  #upstream: net.Socket | undefined;
  /** Requests sent upstream and not yet answered in full, oldest first. */
  readonly #pending: _Pending[] = [];
  /** Bytes of the oldest pending request's answer went downstream already. */
  #answering = false;
  /** An upgrade request is waiting for its answer: read no further request bytes. */
  #awaitingUpgrade = false;
  #streamEnded = false;
  #done = false;
  /** The last answer head read was interim (1xx): its end is not the answer's end. */
  #lastInterim = false;
  /** Upgraded: bytes pass both ways untouched. */
  #raw = false;
  /** A `Connection: close` request was answered: the stream ends once that answer is written. */
  #closeAfterAnswer = false;

  constructor(forwarder: AppStreamForwarder, stream: Duplex, caller: AppStreamCaller) {
    this.#forwarder = forwarder;
    this.#stream = stream;
    this.#caller = caller;
    stream.on('data', this.#onRequestBytes);
    stream.once('end', () => {
      this.#streamEnded = true;
      this.#maybeFinish();
    });
    stream.on('error', () => this.destroy());
    stream.once('close', () => this.destroy());
  }

  destroy(): void {
    if (this.#done) return;
    this.#done = true;
    this.#upstream?.destroy();
    this.#stream.destroy();
  }

  readonly #onRequestBytes = (chunk: Buffer): void => {
    this.#requests.push(chunk);
    this.#readRequests();
  };

  #readRequests(): void {
    const out: Buffer[] = [];
    try {
      while (!this.#awaitingUpgrade) {
        const event = this.#requests.read();
        if (!event) break;
        if (event.type === 'head') {
          const head = event.head;
          if (head.upgrade && this.#pending.length > 0) throw new Error('an upgrade request must not follow unanswered requests on a stream');
          const rewritten = this.#forwarder.head(head, this.#caller);
          this.#pending.push({ method: head.method, url: head.target, upgrade: head.upgrade, keepAlive: head.keepAlive });
          out.push(rewritten);
          if (head.upgrade) this.#awaitingUpgrade = true;
        } else if (event.type === 'body') {
          out.push(event.data);
        }
      }
    } catch (error) {
      this.#forwarder.onError(error as Error, { method: 'bad request' });
      if (out.length > 0) this.#send(out);
      // Answers stay in order: a 400 only when nothing is waiting for the upstream's answer.
      if (this.#pending.length === 0) this.#answerAndEnd(400, `the request could not be read: ${(error as Error).message}`);
      else this.destroy();
      return;
    }
    if (out.length > 0) this.#send(out);
  }

  #send(out: Buffer[]): void {
    const upstream = this.#upstream ?? this.#connect();
    const ok = upstream.write(out.length === 1 ? out[0]! : Buffer.concat(out));
    if (!ok) {
      this.#stream.pause();
      upstream.once('drain', () => this.#stream.resume());
    }
  }

  #connect(): net.Socket {
    const upstream = this.#forwarder.connect();
    this.#upstream = upstream;
    this.#answers = new MessageReader({ kind: 'response', maxHeadBytes: 64 * 1024 });
    upstream.on('data', (chunk: Buffer) => this.#onAnswerBytes(upstream, chunk));
    upstream.on('error', (error: Error) => {
      const first = this.#pending[0];
      this.#forwarder.onError(error, { method: first?.method, url: first?.url });
      this.#upstreamGone(upstream, error);
    });
    upstream.once('end', () => this.#upstreamGone(upstream, undefined));
    upstream.once('close', () => this.#upstreamGone(upstream, undefined));
    return upstream;
  }

  #onAnswerBytes(upstream: net.Socket, chunk: Buffer): void {
    if (upstream !== this.#upstream || this.#done) return;
    this.#answers.push(chunk);
    let upgraded = false;
    try {
      for (let event = this.#answers.read(); event; event = this.#answers.read()) {
        const current = this.#pending[0];
        if (event.type === 'head') {
          this.#answering = true;
          this.#lastInterim = event.head.status < 200 && !(current?.upgrade && event.head.status === 101);
          if (current?.method === 'HEAD') this.#answers.noBody();
          if (current?.upgrade && event.head.status === 101) {
            upgraded = true;
            this.#answers.stop();
            break;
          }
          if (current?.upgrade) {
            // Refused upgrade: requests may go on once this answer is through.
            current.upgrade = false;
            this.#awaitingUpgrade = false;
          }
        } else if (event.type === 'end') {
          if (this.#answering && current && !this.#lastHeadInterim()) {
            this.#pending.shift();
            this.#answering = false;
            if (!current.keepAlive) this.#closeAfterAnswer = true;
          }
        }
      }
    } catch (error) {
      this.#forwarder.onError(error as Error, { method: this.#pending[0]?.method, url: this.#pending[0]?.url });
      this.destroy();
      return;
    }
    if (!this.#stream.write(chunk)) {
      upstream.pause();
      this.#stream.once('drain', () => upstream.resume());
    }
    if (upgraded) return this.#pipeRaw(upstream);
    if (this.#closeAfterAnswer) return this.#finishNow();
    if (!this.#awaitingUpgrade && this.#requests.rest().length > 0) this.#readRequests();
    this.#maybeFinish();
  }

  #lastHeadInterim(): boolean {
    return this.#lastInterim;
  }

  /** After a 101: bytes flow both ways untouched until either side closes. */
  #pipeRaw(upstream: net.Socket): void {
    this.#raw = true;
    this.#stream.off('data', this.#onRequestBytes);
    const early = this.#requests.rest();
    this.#requests.stop();
    if (early.length > 0) upstream.write(early);
    upstream.removeAllListeners('data');
    upstream.pipe(this.#stream);
    this.#stream.pipe(upstream);
  }

  #upstreamGone(upstream: net.Socket, error: Error | undefined): void {
    if (upstream !== this.#upstream || this.#done) return;
    // A raw pipe carries a clean end over by itself (and flushes first); only a failure tears both down.
    if (this.#raw) return void (error || !upstream.readableEnded ? this.destroy() : undefined);
    this.#upstream = undefined;
    upstream.destroy();
    const current = this.#pending[0];
    if (current && this.#answers.closeDelimited) {
      // An answer delimited by the connection's end is complete now, and the client learns
      // that only from the end of its own connection: end the stream too.
      this.#pending.shift();
      this.#answering = false;
      this.#done = true;
      this.#stream.end();
      return;
    }
    if (this.#pending.length === 0) {
      // Closed between answers (idle timeout, Connection: close): the next request reconnects.
      if (this.#requests.rest().length > 0) this.#readRequests();
      return this.#maybeFinish();
    }
    if (!this.#answering) {
      const why = error ? error.message : 'it closed the connection before answering';
      return this.#answerAndEnd(502, `the app's upstream ${this.#forwarder.upstreamHost} cannot be reached: ${why}`);
    }
    this.destroy();
  }

  /** Answers the oldest request itself and ends the stream (nothing after it can be answered in order). */
  #answerAndEnd(status: number, why: string): void {
    this.#upstream?.destroy();
    this.#upstream = undefined;
    const body = `${why}\n`;
    this.#stream.end(Buffer.from(`HTTP/1.1 ${status} ${status === 400 ? 'Bad Request' : 'Bad Gateway'}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`));
    this.#done = true;
  }

  #maybeFinish(): void {
    if (this.#done || !this.#streamEnded || this.#pending.length > 0) return;
    this.#finishNow();
  }

  /** Ends both sides cleanly (the client's last answer is through, or it asked to close). */
  #finishNow(): void {
    if (this.#done) return;
    this.#done = true;
    this.#upstream?.end();
    this.#stream.end();
  }
}
