import { Duplex } from 'node:stream';
import { TunnelClosedError } from './errors.ts';

/**
 * Stands between a TLS socket and an HTTP/2 session so the session never stops reading
 * while it writes.
 *
 * Why: Node's Http2Session stops reading its socket while a socket write is in progress.
 * When both ends carry bulk data both ways and the windows exceed what the kernel buffers
 * hold, each end's write waits for the other to read, and neither reads: the whole tunnel
 * deadlocks. This Duplex completes the session's writes at once and queues the bytes on
 * the socket instead, so reads go on.
 *
 * What bounds the queue: DATA the session sends is limited by the peer's flow-control
 * windows, so the queue holds at most about one connection window plus control frames;
 * `maxQueuedBytes` is the backstop against a peer that stops reading entirely.
 */
export class DecoupledSocket extends Duplex {
  readonly #socket: Duplex;
  readonly #maxQueuedBytes: number;
  #pending: Buffer[] = [];
  readonly #flush = (): void => {
    if (this.#pending.length === 0) return;
    const chunk = this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending);
    this.#pending = [];
    if (!this.push(chunk)) this.#socket.pause();
  };

  constructor(socket: Duplex, options: { maxQueuedBytes: number }) {
    super({ allowHalfOpen: false, readableHighWaterMark: 1024 * 1024 });
    this.#socket = socket;
    this.#maxQueuedBytes = options.maxQueuedBytes;
    socket.on('data', (chunk: Buffer) => {
      // TLS hands over one record (<= 16 KiB) per event, several per socket read; handing
      // them to the HTTP/2 session in one piece saves a JS-to-C++ crossing per record.
      if (this.#pending.push(chunk) === 1) process.nextTick(this.#flush);
    });
    socket.once('end', () => {
      this.#flush();
      this.push(null);
    });
    socket.once('error', (err: Error) => this.destroy(err));
    socket.once('close', () => this.destroy());
  }

  override _read(): void {
    this.#socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.#socket.write(chunk);
    if (this.#socket.writableLength > this.#maxQueuedBytes) {
      callback(new TunnelClosedError('socket-error', `the tunnel peer stopped reading: more than ${this.#maxQueuedBytes} bytes are queued for it`));
      return;
    }
    callback();
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (err?: Error | null) => void): void {
    this.#socket.cork();
    for (const { chunk } of chunks) this.#socket.write(chunk);
    this.#socket.uncork();
    if (this.#socket.writableLength > this.#maxQueuedBytes) {
      callback(new TunnelClosedError('socket-error', `the tunnel peer stopped reading: more than ${this.#maxQueuedBytes} bytes are queued for it`));
      return;
    }
    callback();
  }

  override _final(callback: () => void): void {
    this.#socket.end();
    callback();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.#socket.destroy();
    callback(err);
  }
}
