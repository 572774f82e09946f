/**
 * The fast path for HTTP/2 app requests: each authorized request (app-web.ts decides who
 * and which app, and writes its HTTP/1.1 head) goes over a pooled tunnel stream as
 * bytes, and the agent's HTTP/1.1 answer is read here (protocols/http1) and answered on
 * the client's HTTP/2 stream. No HTTP server or client objects per request.
 *
 * ```
 * h2 stream ─ head (app-web.ts: Host = SNI, caller by certificate or session cookie)
 *   │ request head ───────────────────────────────> tunnel stream (TunnelStreamPool,
 *   │ DATA as is (content-length) or chunk-encoded ─>   one exchange at a time) ─> agent
 *   <─ respond(:status, headers) ─ MessageReader(response, decode) <─ HTTP/1.1 answer
 *   <─ DATA ───────────────────── body (chunked decoded; close-delimited: to the end)
 * ```
 *
 * A tunnel stream goes back to its pool only when the request went out whole and the
 * answer was read whole and did not say `connection: close`; a client that resets its
 * stream, an answer that ends before the request body (the rest is refused with
 * RST_STREAM NO_ERROR), a close-delimited answer, or bytes out of step destroy it.
 * Failures: a refused dial is answered like the full path (same status and message);
 * the tunnel failing before the answer head, 502; in the middle of an answer, the h2
 * stream is reset with INTERNAL_ERROR (by destroy(error): on Node 24,
 * `close(NGHTTP2_INTERNAL_ERROR)` ends the stream cleanly first, and a client would take
 * an answer without content-length as complete). Backpressure holds both ways: a full
 * tunnel pauses the h2 stream, a slow client pauses the tunnel stream.
 */
import http2, { type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { MessageReader, type MessageHead } from '../../protocols/http1/index.ts';
import { ServiceDialError } from './errors.ts';
import { dialStatus, type ServiceDialRequest } from './service-dialer.ts';
import type { PooledTunnelStream, TunnelStreamPool, TunnelStreamUser } from './tunnel-stream-pool.ts';

const { NGHTTP2_NO_ERROR } = http2.constants;
const maxAnswerHeadBytes = 64 * 1024;
const lastChunk = Buffer.from('0\r\n\r\n', 'latin1');
const crlf = Buffer.from('\r\n', 'latin1');
/** Connection-specific answer fields: HTTP/2 forbids them (RFC 9113 section 8.2.2). */
const hopByHopAnswer = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'http2-settings']);
/** Fields Node's HTTP/2 sends once only; a repeat is dropped (the first kept), as Node's HTTP/1 client does. */
const singleValue = new Set([
  'access-control-allow-credentials', 'access-control-max-age', 'access-control-request-method', 'age', 'authorization',
  'content-encoding', 'content-language', 'content-length', 'content-location', 'content-md5', 'content-range', 'content-type',
  'date', 'dnt', 'etag', 'expires', 'from', 'host', 'if-match', 'if-modified-since', 'if-none-match', 'if-range',
  'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'proxy-authorization', 'range', 'referer', 'retry-after',
  'tk', 'upgrade-insecure-requests', 'user-agent', 'x-content-type-options',
]);

/** One authorized request, as app-web.ts decided it. */
export interface Http2ForwardRequest {
  /** The pool key: the same caller's requests share tunnel streams. */
  key: string;
  dial: ServiceDialRequest;
  /** The HTTP/1.1 request head, blank line included. */
  head: Buffer;
  /** none: the head alone, at once; length: DATA as is (content-length in the head); chunked: DATA chunk-encoded here. */
  body: 'none' | 'length' | 'chunked';
  /** The content-length when body is length: the request is through once that many bytes went out. */
  length: number;
  /** A HEAD request: its answer has no body whatever its head says. */
  headRequest: boolean;
  /** The client sent `Expect: 100-continue` (not forwarded): answer 100 at once, as Node's HTTP/2 server does. */
  continue: boolean;
}

export interface AppHttp2ForwarderOptions {
  pool: TunnelStreamPool;
  /** Answers a request the app did not answer (dial refused, tunnel gone), as the full path would; `reason` names it for metrics. */
  refuse: (stream: ServerHttp2Stream, status: number, why: string, reason: string) => void;
}

/** Forwards authorized HTTP/2 requests over pooled tunnel streams; see the file comment. */
export class AppHttp2Forwarder {
  readonly #options: AppHttp2ForwarderOptions;

  constructor(options: AppHttp2ForwarderOptions) {
    this.#options = options;
  }

  /** Serves `stream` (its request already authorized) until its answer is through. */
  forward(stream: ServerHttp2Stream, request: Http2ForwardRequest): void {
    new _Exchange(this.#options, stream, request).start();
  }
}

/** One request and its answer on one tunnel stream. */
class _Exchange implements TunnelStreamUser {
  readonly #options: AppHttp2ForwarderOptions;
  readonly #stream: ServerHttp2Stream;
  readonly #request: Http2ForwardRequest;
  readonly #reader = new MessageReader({ kind: 'response', maxHeadBytes: maxAnswerHeadBytes, decode: true });
  #tunnel: PooledTunnelStream | undefined;
  /** The whole request (head and body) went to the tunnel stream. */
  #requestSent = false;
  /** Body bytes still to come (body length). */
  #left = 0;
  /** The client's stream is full: the tunnel stream is paused until it drains. */
  #waitingClient = false;
  /** The final answer head was sent to the client. */
  #answered = false;
  /** The answer was read whole. */
  #answerDone = false;
  /** The last head read was interim (1xx): its end is not the answer's. */
  #interim = false;
  /** The answer lets the stream carry another exchange (no `connection: close`, not close-delimited). */
  #reusable = true;
  /** The tunnel stream was released or discarded: nothing more happens here. */
  #finished = false;

  constructor(options: AppHttp2ForwarderOptions, stream: ServerHttp2Stream, request: Http2ForwardRequest) {
    this.#options = options;
    this.#stream = stream;
    this.#request = request;
  }

  start(): void {
    const stream = this.#stream;
    stream.on('error', _noop);
    stream.once('close', this.#onClientClose);
    if (this.#request.continue && this.#request.body !== 'none' && !stream.headersSent && !stream.closed) stream.additionalHeaders({ ':status': 100 });
    let taken: PooledTunnelStream | Promise<PooledTunnelStream>;
    try {
      taken = this.#options.pool.take(this.#request.key, this.#request.dial);
    } catch (error) {
      return this.#dialFailed(error);
    }
    if (taken instanceof Promise) taken.then((tunnel) => this.#attach(tunnel), (error: unknown) => this.#dialFailed(error));
    else this.#attach(taken);
  }

  #attach(tunnel: PooledTunnelStream): void {
    const stream = this.#stream;
    if (stream.destroyed || stream.closed) {
      // The client went away while the stream was dialed: nothing was written on it.
      this.#finished = true;
      return this.#options.pool.release(tunnel);
    }
    this.#tunnel = tunnel;
    tunnel.user = this;
    this.#left = this.#request.length;
    // State first, then the write: a stream may answer within write() (a stream pair does).
    if (this.#request.body === 'none') {
      // Whatever DATA comes (an h2 GET's END_STREAM may come late) is not the app's, and is
      // not read: Node drops it when the stream closes. Reading it (resume()) would make Node
      // close the stream before its last write completes, which costs an error object (a
      // stack trace) per request.
      this.#requestSent = true;
      tunnel.stream.write(this.#request.head);
      return;
    }
    tunnel.stream.write(this.#request.head);
    if (this.#finished) return;
    stream.on('data', this.#onRequestData);
    stream.once('end', this.#onRequestEnd);
  }

  #dialFailed(error: unknown): void {
    this.#finished = true;
    if (this.#stream.destroyed || this.#stream.closed) return;
    const status = dialStatus(error);
    const why = error instanceof ServiceDialError ? error.message : `the app connection failed: ${(error as Error).message}`;
    this.#options.refuse(this.#stream, status, why, status === 403 ? 'app-denied' : 'app-dial-failed');
  }

  readonly #onRequestData = (chunk: Buffer): void => {
    const tunnel = this.#tunnel!.stream;
    if (this.#finished || this.#requestSent || chunk.length === 0) return;
    let ok: boolean;
    if (this.#request.body === 'chunked') {
      // One batched write: the size line, the data as is (no copy), CRLF.
      tunnel.cork();
      tunnel.write(Buffer.from(`${chunk.length.toString(16)}\r\n`, 'latin1'));
      tunnel.write(chunk);
      ok = tunnel.write(crlf);
      tunnel.uncork();
    } else {
      // HTTP/2 checks DATA against content-length (a mismatch resets the stream); counting
      // here lets an answer that follows the last byte find the request through even
      // before END_STREAM is read.
      this.#left -= chunk.length;
      if (this.#left <= 0) this.#requestSent = true;
      ok = tunnel.write(chunk);
    }
    if (!ok && !this.#requestSent && !this.#finished) this.#stream.pause();
  };

  readonly #onRequestEnd = (): void => {
    if (this.#finished || this.#requestSent) return;
    if (this.#request.body !== 'chunked' && this.#left > 0) return; // reset by HTTP/2 itself; 'close' follows
    this.#requestSent = true;
    if (this.#request.body === 'chunked') this.#tunnel!.stream.write(lastChunk);
    this.#maybeFinish();
  };

  onDrain(): void {
    if (!this.#finished && !this.#requestSent) this.#stream.resume();
  }

  onData(chunk: Buffer): void {
    const stream = this.#stream;
    const reader = this.#reader;
    reader.push(chunk);
    try {
      for (let event = reader.read(); event; event = reader.read()) {
        if (event.type === 'head') {
          if (this.#answerDone) throw new Error('the agent sent more than one answer');
          if (event.head.status < 200) {
            this.#interim = true;
            continue;
          }
          if (this.#request.headRequest) reader.noBody();
          if (!this.#respond(event.head)) return;
        } else if (event.type === 'body') {
          if (stream.writableEnded || stream.destroyed) continue;
          if (!stream.write(event.data) && !this.#waitingClient) {
            this.#waitingClient = true;
            this.#tunnel!.stream.pause();
            stream.once('drain', this.#onClientDrain);
          }
        } else if (this.#interim) {
          this.#interim = false;
        } else {
          this.#answerDone = true;
          if (!stream.writableEnded) stream.end();
          // Bytes after the answer are out of step: #maybeFinish sees them in rest().
          break;
        }
      }
    } catch (error) {
      return this.#broken(`the app's answer could not be read: ${(error as Error).message}`);
    }
    if (this.#answerDone) this.#maybeFinish();
  }

  readonly #onClientDrain = (): void => {
    this.#waitingClient = false;
    if (!this.#finished) this.#tunnel?.stream.resume();
  };

  /** Sends the final answer head; false when the stream could not take it (and the exchange is over). */
  #respond(head: MessageHead): boolean {
    const headers: OutgoingHttpHeaders = Object.create(null) as OutgoingHttpHeaders;
    headers[':status'] = head.status;
    for (const [name, value] of head.headers) {
      const lower = name.toLowerCase();
      if (hopByHopAnswer.has(lower) || lower.startsWith('proxy-') || head.connection.has(lower)) continue;
      const known = headers[lower];
      if (known === undefined) headers[lower] = value;
      else if (singleValue.has(lower)) continue;
      else if (Array.isArray(known)) known.push(value);
      else headers[lower] = [known as string, value];
    }
    this.#reusable = head.keepAlive && head.framing.kind !== 'close';
    const empty = head.framing.kind === 'none' || this.#request.headRequest;
    try {
      this.#stream.respond(headers, { endStream: empty });
    } catch (error) {
      this.#broken(`the app's answer head cannot be sent over HTTP/2: ${(error as Error).message}`);
      return false;
    }
    this.#answered = true;
    return true;
  }

  onEnd(): void {
    if (this.#finished) return;
    if (this.#answered && !this.#answerDone && this.#reader.closeDelimited) {
      // An answer delimited by the end of the connection is complete now.
      this.#answerDone = true;
      this.#reusable = false;
      if (!this.#stream.writableEnded) this.#stream.end();
      return this.#maybeFinish();
    }
    if (!this.#answerDone) this.#broken('the tunnel stream ended before the answer did');
    else this.#maybeFinish();
  }

  onClose(): void {
    if (this.#finished) return;
    if (!this.#answerDone) return this.#broken('the tunnel stream closed before the answer was through');
    this.#maybeFinish();
  }

  /** The tunnel stream failed: 502 before an answer head, else the client's stream is reset. */
  #broken(why: string): void {
    const stream = this.#stream;
    this.#discard();
    if (stream.destroyed || stream.closed) return;
    if (!this.#answered && !stream.headersSent) this.#options.refuse(stream, 502, `the app connection failed: ${why}`, 'app-dial-failed');
    // RST_STREAM INTERNAL_ERROR, and no END_STREAM before it (see the file comment).
    else stream.destroy(new Error(why));
  }

  readonly #onClientClose = (): void => {
    // Reset by the client (or closed before everything went through): the stream is out of step.
    if (!this.#finished) this.#discard();
  };

  #maybeFinish(): void {
    if (this.#finished || !this.#answerDone) return;
    const tunnel = this.#tunnel!;
    if (!this.#requestSent) {
      // Answered before the request body was through (a refusal, say): the stream cannot
      // go on, and the client is told to stop sending once the answer has gone out.
      this.#discard();
      if (!this.#stream.closed && !this.#stream.destroyed) this.#stream.close(NGHTTP2_NO_ERROR);
      return;
    }
    this.#finished = true;
    this.#stream.off('data', this.#onRequestData);
    // A body paused for the tunnel: what is left of it (END_STREAM) is read and dropped.
    if (this.#request.body !== 'none' && this.#stream.isPaused()) this.#stream.resume();
    if (this.#reusable && !tunnel.ended && this.#reader.rest().length === 0) {
      // A paused stream (the client was slow) flows again for its next user.
      tunnel.stream.resume();
      this.#options.pool.release(tunnel);
    } else {
      this.#options.pool.discard(tunnel);
    }
  }

  #discard(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#stream.off('data', this.#onRequestData);
    if (this.#tunnel) this.#options.pool.discard(this.#tunnel);
  }
}

function _noop(): void {}
