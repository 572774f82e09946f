/**
 * The fast path for HTTP/1.1 app connections: request heads are read here
 * (protocols/http1), each one authorized like any other app request, rewritten, and
 * written with its body bytes to one tunnel stream per connection; the agent's answers
 * are piped back to the client as bytes. No HTTP server or client objects per request.
 *
 * ```
 * TLS socket ─ MessageReader ─ head ─ check (app-web.ts: Host = SNI, caller by certificate
 *   │                                 or session cookie, same caller as the stream's)
 *   │                                   ├ ok:      rewritten head + body ──> tunnel stream
 *   │                                   └ anything else: hand the connection to Node's HTTP
 *   │                                     server (login pages, refusals, upgrades, HTTP/1.0)
 *   <──────────────────────────── raw answers ─────────────────── tunnel stream
 * ```
 *
 * A hand-off never interleaves answers: the stream's request side is ended, the agent
 * finishes the answers already asked for and ends the stream, and only then does Node's
 * server get the socket with the unread bytes put back. A request from another caller
 * (or after `maxStreamMs`, so the agent decides again) drains the stream the same way and
 * goes on a freshly dialed one.
 */
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { MessageReader, type MessageHead } from '../../protocols/http1/index.ts';
import type { ServiceDialRequest } from './service-dialer.ts';

const maxHeadBytes = 32 * 1024;
/** Idle time in both directions after which a fast-path connection is dropped. */
const idleMs = 120_000;

/** What the app layer decided about one request head. */
export type FastPathDecision =
  | { forward: true; key: string; dial: ServiceDialRequest; head: Buffer }
  /** Anything the fast path does not serve itself: Node's HTTP server answers it. */
  | { forward: false };

export interface AppHttp1ConnectionOptions {
  /** Synchronous when the answer is known at once (certificate, cached session): the usual case. */
  check: (socket: TLSSocket, head: MessageHead) => FastPathDecision | Promise<FastPathDecision>;
  dial: (request: ServiceDialRequest) => Promise<Duplex>;
  /** Gives the connection (unread bytes put back) to the full HTTP server. */
  handOff: (socket: TLSSocket) => void;
  /** A stream older than this is drained and dialed again at the next request, so the agent decides again (roles change). Default 60 s. */
  maxStreamMs?: number;
}

/** Serves one HTTP/1.1 app connection on the fast path until it closes or is handed off. */
export class AppHttp1Connection {
  readonly #socket: TLSSocket;
  readonly #options: AppHttp1ConnectionOptions;
  readonly #reader = new MessageReader({ kind: 'request', maxHeadBytes });
  #stream: Duplex | undefined;
  #key = '';
  #streamSince = 0;
  /** The stream is being drained before another is dialed. */
  #retiring = false;
  /** A head is being checked (or its stream dialed): read nothing further meanwhile. */
  #busy = false;
  #waitingDrain = false;
  #handedOff = false;
  /** A forwarded head's body is still being read. */
  #inMessage = false;

  constructor(socket: TLSSocket, options: AppHttp1ConnectionOptions) {
    this.#socket = socket;
    this.#options = options;
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('close', this.#onClose);
    socket.on('error', _noop);
    socket.setTimeout(idleMs, this.#onTimeout);
  }

  readonly #onData = (chunk: Buffer): void => {
    this.#reader.push(chunk);
    this.#pump();
  };

  readonly #onEnd = (): void => {
    if (this.#stream) this.#stream.end();
    else this.#socket.end();
  };

  readonly #onClose = (): void => {
    this.#stream?.destroy();
  };

  readonly #onTimeout = (): void => {
    this.#socket.destroy();
  };

  #pump(): void {
    if (this.#busy || this.#handedOff) return;
    // Rewritten heads and body bytes, written to the stream in one piece per read.
    const out: Buffer[] = [];
    for (;;) {
      let event;
      try {
        event = this.#reader.read();
      } catch {
        this.#write(out);
        // A body that goes wrong after its head went to the app cannot be answered in order: reset.
        if (this.#inMessage) return void this.#socket.destroy();
        // A head that is not well-formed: Node's parser answers it (400, 431) the way it always has.
        return this.#handOff(this.#reader.rest());
      }
      if (!event) break;
      if (event.type === 'body') out.push(event.data);
      else if (event.type === 'end') this.#inMessage = false;
      else if (event.type === 'head') {
        let decision: FastPathDecision | Promise<FastPathDecision>;
        try {
          decision = this.#options.check(this.#socket, event.head);
        } catch {
          decision = { forward: false };
        }
        if (!(decision instanceof Promise) && this.#stream && decision.forward && decision.key === this.#key && !this.#stale()) {
          // Known caller on the open stream: forward without leaving this turn.
          out.push(decision.head);
          this.#inMessage = true;
          continue;
        }
        this.#write(out);
        this.#busy = true;
        this.#socket.pause();
        void this.#forward(decision, event.raw);
        return;
      }
    }
    this.#write(out);
  }

  async #forward(pending: FastPathDecision | Promise<FastPathDecision>, raw: Buffer): Promise<void> {
    const decision = await Promise.resolve(pending).catch((): FastPathDecision => ({ forward: false }));
    if (this.#socket.destroyed) return;
    if (!decision.forward) return this.#handOff(Buffer.concat([raw, this.#reader.rest()]));
    if (this.#stream && (decision.key !== this.#key || this.#stale())) {
      // Another caller, or a stream old enough that the agent should decide again: the
      // answers already asked for come first, then a fresh stream is dialed.
      if (!(await this.#retire()) || this.#socket.destroyed) return void this.#socket.destroy();
    }
    if (!this.#stream) {
      let stream: Duplex;
      try {
        stream = await this.#options.dial(decision.dial);
      } catch {
        // A refused or failed dial is explained by the full path, which dials again.
        return this.#handOff(Buffer.concat([raw, this.#reader.rest()]));
      }
      if (this.#socket.destroyed) return void stream.destroy();
      this.#attach(stream, decision.key);
    }
    this.#write([decision.head]);
    this.#inMessage = true;
    this.#busy = false;
    this.#resume();
    this.#pump();
  }

  #stale(): boolean {
    return performance.now() - this.#streamSince > (this.#options.maxStreamMs ?? 60_000);
  }

  /** Ends the stream's request side and waits for its answers; false when it broke instead. */
  #retire(): Promise<boolean> {
    const stream = this.#stream!;
    this.#retiring = true;
    return new Promise<boolean>((resolve) => {
      stream.once('end', () => resolve(true));
      stream.once('close', () => resolve(stream.readableEnded));
      stream.end();
    }).then((ended) => {
      stream.unpipe(this.#socket);
      this.#stream = undefined;
      this.#retiring = false;
      return ended;
    });
  }

  #attach(stream: Duplex, key: string): void {
    this.#stream = stream;
    this.#key = key;
    this.#streamSince = performance.now();
    stream.on('error', _noop);
    stream.pipe(this.#socket, { end: false });
    stream.once('end', () => {
      if (!this.#handedOff && !this.#retiring) this.#socket.end();
    });
    stream.once('close', () => {
      if (!stream.readableEnded && stream === this.#stream) this.#socket.destroy();
    });
  }

  #write(chunks: Buffer[]): void {
    if (chunks.length === 0 || !this.#stream) return;
    const ok = this.#stream.write(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    chunks.length = 0;
    if (!ok && !this.#waitingDrain) {
      this.#waitingDrain = true;
      this.#socket.pause();
      this.#stream.once('drain', () => {
        this.#waitingDrain = false;
        this.#resume();
      });
    }
  }

  #resume(): void {
    if (!this.#busy && !this.#waitingDrain && !this.#handedOff) this.#socket.resume();
  }

  /** Ends the stream, waits for the answers already asked for, then gives the socket to Node's server. */
  #handOff(unread: Buffer): void {
    this.#handedOff = true;
    this.#busy = true;
    const socket = this.#socket;
    socket.pause();
    socket.off('data', this.#onData);
    socket.off('end', this.#onEnd);
    socket.off('close', this.#onClose);
    socket.off('timeout', this.#onTimeout);
    socket.setTimeout(0);
    const give = (): void => {
      if (socket.destroyed) return;
      if (this.#stream) this.#stream.unpipe(socket);
      if (unread.length > 0) socket.unshift(unread);
      // Node's HTTP server reads a fresh socket's handle directly in C++ and would skip the
      // bytes put back; marked as consumed, it reads through 'data' events, in order.
      const handle = (socket as unknown as { _handle?: { _consumed?: boolean } })._handle;
      if (handle) handle._consumed = true;
      socket.off('error', _noop);
      this.#options.handOff(socket);
      socket.resume();
    };
    const stream = this.#stream;
    if (!stream) return give();
    socket.once('close', () => stream.destroy());
    stream.once('end', give);
    stream.end();
  }
}

function _noop(): void {}
