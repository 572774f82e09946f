import { Http1ParseError } from './errors.ts';
import { parseHead, type MessageHead } from './message-head.ts';

/** What the reader found next in the bytes pushed so far. */
export type ReadEvent =
  | { type: 'head'; head: MessageHead; raw: Buffer }
  /** Body bytes exactly as sent (chunked framing included), to be passed on unchanged; with `decode`, a chunked body's payload only. */
  | { type: 'body'; data: Buffer }
  | { type: 'end' };

export interface MessageReaderOptions {
  kind: 'request' | 'response';
  /** The longest head accepted (bytes up to and including the blank line). */
  maxHeadBytes: number;
  /**
   * Hand chunked bodies over decoded: body events carry chunk data only (chunk-size lines,
   * extensions and trailers are checked as always, then dropped). For a reader that
   * re-frames bodies itself (an HTTP/2 answer). Default false: bytes as sent.
   */
  decode?: boolean;
}

const maxChunkLine = 4096;
const maxTrailerBytes = 16 * 1024;

type _State =
  | { at: 'head' }
  | { at: 'length'; left: number }
  | { at: 'chunk-size' }
  | { at: 'chunk-data'; left: number }
  | { at: 'chunk-crlf'; seen: number }
  | { at: 'trailers'; seen: number }
  | { at: 'close' }
  | { at: 'stopped' };

/**
 * Splits a byte stream into HTTP/1.x messages without copying bodies: heads are parsed
 * (message-head.ts), bodies are handed on as raw slices with their framing found by
 * Content-Length or by walking the chunked encoding. Incremental: push bytes, then call
 * read() until it returns undefined (more bytes needed).
 *
 * Used where a proxy must see every head (to authorize and rewrite it) but has no reason
 * to re-encode bodies.
 */
export class MessageReader {
  readonly #options: MessageReaderOptions;
  #buf: Buffer = Buffer.alloc(0);
  #off = 0;
  #state: _State = { at: 'head' };
  /** A message ended with the last event; the next read() reports it. */
  #pendingEnd = false;

  constructor(options: MessageReaderOptions) {
    this.#options = options;
  }

  push(chunk: Buffer): void {
    if (this.#off >= this.#buf.length) this.#buf = chunk;
    else this.#buf = Buffer.concat([this.#buf.subarray(this.#off), chunk]);
    this.#off = 0;
  }

  /** Bytes pushed but not yet read (handed to another parser after stop()). */
  rest(): Buffer {
    return this.#buf.subarray(this.#off);
  }

  /** True between messages (nothing of a next head read yet). */
  get idle(): boolean {
    return !this.#pendingEnd && this.#state.at === 'head' && this.#off >= this.#buf.length;
  }

  /** The body being read ends when the connection does (a response without length or chunking). */
  get closeDelimited(): boolean {
    return this.#state.at === 'close';
  }

  /** The message whose head was just read has no body whatever its headers say (an answer to HEAD). */
  noBody(): void {
    if (this.#pendingEnd || this.#state.at === 'stopped') return;
    this.#state = { at: 'head' };
    this.#pendingEnd = true;
  }

  /** Reads nothing more: the connection is handed off or becomes a raw pipe. */
  stop(): void {
    this.#state = { at: 'stopped' };
  }

  get #kind(): 'request' | 'response' {
    return this.#options.kind;
  }

  /** The next event, or undefined when more bytes are needed. */
  read(): ReadEvent | undefined {
    if (this.#pendingEnd) {
      this.#pendingEnd = false;
      return { type: 'end' };
    }
    const state = this.#state;
    const buf = this.#buf;
    switch (state.at) {
      case 'stopped':
        return undefined;
      case 'head': {
        // A client may send a stray CRLF between messages (RFC 9112 section 2.2).
        while (this.#kind === 'request' && this.#off + 1 < buf.length && buf[this.#off] === 13 && buf[this.#off + 1] === 10) this.#off += 2;
        if (this.#off >= buf.length) return undefined;
        const end = buf.indexOf('\r\n\r\n', this.#off, 'latin1');
        if (end < 0) {
          if (buf.length - this.#off > this.#options.maxHeadBytes) throw new Http1ParseError(`Cannot read the message head: it exceeds ${this.#options.maxHeadBytes} bytes`);
          return undefined;
        }
        if (end + 4 - this.#off > this.#options.maxHeadBytes) throw new Http1ParseError(`Cannot read the message head: it exceeds ${this.#options.maxHeadBytes} bytes`);
        const raw = buf.subarray(this.#off, end + 4);
        const head = parseHead(buf.toString('latin1', this.#off, end), this.#options.kind);
        this.#off = end + 4;
        const framing = head.framing;
        if (framing.kind === 'none') this.#pendingEnd = true;
        else if (framing.kind === 'length') this.#state = { at: 'length', left: framing.length };
        else if (framing.kind === 'chunked') this.#state = { at: 'chunk-size' };
        else this.#state = { at: 'close' };
        return { type: 'head', head, raw };
      }
      case 'length': {
        if (this.#off >= buf.length) return undefined;
        const take = Math.min(state.left, buf.length - this.#off);
        const data = buf.subarray(this.#off, this.#off + take);
        this.#off += take;
        state.left -= take;
        if (state.left === 0) {
          this.#state = { at: 'head' };
          this.#pendingEnd = true;
        }
        return { type: 'body', data };
      }
      case 'close': {
        if (this.#off >= buf.length) return undefined;
        const data = buf.subarray(this.#off);
        this.#off = buf.length;
        return { type: 'body', data };
      }
      default:
        return this.#readChunked();
    }
  }

  /**
   * Walks chunk-size lines, chunk data and trailers; returns every byte walked as one body
   * slice, or (decode) the next run of chunk data.
   */
  #readChunked(): ReadEvent | undefined {
    const buf = this.#buf;
    const start = this.#off;
    const decode = this.#options.decode === true;
    let done = false;
    while (!done && this.#off < buf.length) {
      const state = this.#state;
      if (state.at === 'chunk-data') {
        const take = Math.min(state.left, buf.length - this.#off);
        const from = this.#off;
        this.#off += take;
        state.left -= take;
        if (state.left === 0) this.#state = { at: 'chunk-crlf', seen: 0 };
        if (decode) return { type: 'body', data: buf.subarray(from, this.#off) };
      } else if (state.at === 'chunk-crlf') {
        if (buf[this.#off] !== (state.seen === 0 ? 13 : 10)) throw new Http1ParseError('Cannot read the chunked body: chunk data is not followed by CRLF');
        this.#off++;
        if (++state.seen === 2) this.#state = { at: 'chunk-size' };
      } else if (state.at === 'chunk-size') {
        const eol = buf.indexOf('\r\n', this.#off, 'latin1');
        if (eol < 0) {
          if (buf.length - this.#off > maxChunkLine) throw new Http1ParseError('Cannot read the chunked body: a chunk-size line is too long');
          break;
        }
        const line = buf.toString('latin1', this.#off, eol);
        const match = /^([0-9A-Fa-f]{1,12})(?:[ \t]*;[^\r\n]*)?$/.exec(line);
        if (!match) throw new Http1ParseError(`Cannot read the chunked body: bad chunk-size line ${JSON.stringify(line.slice(0, 40))}`);
        const size = Number.parseInt(match[1]!, 16);
        this.#off = eol + 2;
        this.#state = size === 0 ? { at: 'trailers', seen: 0 } : { at: 'chunk-data', left: size };
      } else if (state.at === 'trailers') {
        const eol = buf.indexOf('\r\n', this.#off, 'latin1');
        if (eol < 0) {
          if (buf.length - this.#off + state.seen > maxTrailerBytes) throw new Http1ParseError('Cannot read the chunked body: its trailers are too long');
          break;
        }
        const line = buf.toString('latin1', this.#off, eol);
        if (line.includes('\n') || line.includes('\0')) throw new Http1ParseError('Cannot read the chunked body: a bad trailer line');
        state.seen += eol + 2 - this.#off;
        if (state.seen > maxTrailerBytes) throw new Http1ParseError('Cannot read the chunked body: its trailers are too long');
        this.#off = eol + 2;
        if (line === '') {
          this.#state = { at: 'head' };
          this.#pendingEnd = true;
          done = true;
        }
      } else {
        break;
      }
    }
    // Decoding, the framing walked so far is dropped: the end, or more bytes needed.
    if (this.#off === start || decode) return this.#pendingEnd ? this.read() : undefined;
    return { type: 'body', data: buf.subarray(start, this.#off) };
  }
}
