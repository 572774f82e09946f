import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { TunnelClosedError } from './errors.ts';

/** A TLS record's plaintext is at most this long; a chunk this long is likely followed by more of the same read. */
const _fullRecord = 16 * 1024;
/** Bytes held for a session that paused reading before the socket is paused too. */
const _maxHeldBytes = 1024 * 1024;
/**
 * The buffer every connected wire reads into, reused for every read: one for the whole
 * process, so an idle tunnel costs nothing for it. Safe to share because a read is
 * consumed synchronously (copied into TLS, or copied when held) before the next read
 * can start, and reads only ever start from the event loop. Its size is the most one
 * read takes in; larger saves crossings into JS per MiB.
 */
const _readBuffer = Buffer.allocUnsafe(256 * 1024);

type WriteCallback = (err?: Error | null) => void;

/**
 * Written chunks shorter than this are left to the GC: a small message's write is not
 * worth a detach, and such chunks add little to the external memory that triggers GCs.
 */
const _minFreedBytes = 8 * 1024;

/** True when `chunk` is large and the whole of its ArrayBuffer (a copy made for it, not a view into a pool or a larger buffer). */
function _worthFreeing(chunk: Buffer): boolean {
  return chunk.byteLength >= _minFreedBytes && chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength && chunk.buffer instanceof ArrayBuffer;
}

/** Releases `chunk`'s memory at once (detaches its ArrayBuffer; the Buffer reads as empty afterwards). */
function _free(chunk: Buffer): void {
  (chunk.buffer as ArrayBuffer).transfer(0);
}

/** TCP sockets made by DecoupledSocket.connect: they read through `onread`, not 'data'. */
const _readsIntoBuffer = new WeakSet<net.Socket>();

/**
 * Stands between a TLS socket and an HTTP/2 session so the session never stops reading
 * while it writes.
 *
 * Why: Node's Http2Session stops reading its socket while a socket write is in progress.
 * When both ends carry bulk data both ways and the windows exceed what the kernel buffers
 * hold, each end's write waits for the other to read, and neither reads: the whole tunnel
 * deadlocks. This object completes the session's writes at once and queues the bytes on
 * the socket instead, so reads go on.
 *
 * What bounds the queue: DATA the session sends is limited by the peer's flow-control
 * windows, so the queue holds at most about one connection window plus control frames;
 * `maxQueuedBytes` is the backstop against a peer that stops reading entirely.
 *
 * Why not a stream.Duplex: Node wraps a session's non-native socket in its internal
 * JSStreamSocket, which uses only `on`/`once` ('data', 'end', 'close', 'error'), `pause`,
 * `resume`, `cork`, `write(chunk, callback)`, `uncork`, `end(callback)`, `destroy`,
 * `readable`, `writable` and `readableObjectMode`. Providing exactly those, and passing
 * each call straight to the socket, saves a Duplex's buffering, a nextTick per read and
 * one per write, and a pause/resume cycle of the socket per session write: on small
 * messages (a database round trip through the tunnel) that was a quarter of the agent's
 * CPU. Not a general-purpose stream: hand it to `http2.performServerHandshake` or, from
 * {@link DecoupledSocket.connect}, to `tls.connect({ socket })` only.
 *
 * Two places for it: above a TLS socket (the constructor; every TLS record then crosses
 * into JS and is copied into the session), or, cheaper, below TLS on the TCP socket
 * ({@link DecoupledSocket.connect}, see agent-socket.ts): TLS and HTTP/2 then stay native,
 * and only TCP reads cross JS, into one reused buffer. Either way the session's writes
 * complete at once, so it never stops reading for long.
 */
export class DecoupledSocket extends EventEmitter {
  readonly readable = true;
  readonly writable = true;
  readonly readableObjectMode = false;
  readonly #socket: Duplex;
  /** Writes queued beyond this many bytes fail the wire (a peer that stopped reading). */
  maxQueuedBytes: number;
  /** The session asked to stop reading (a write of its own is completing). */
  #paused = false;
  /** Read while the session was paused, or full records of one socket read, not yet handed over. */
  #held: Buffer[] = [];
  #heldBytes = 0;
  #socketPaused = false;
  #ended = false;
  #endEmitted = false;
  #failed = false;
  /** JSStreamSocket's cork/uncork nesting around each write of the layer above. */
  #corks = 0;
  /** Chunks written inside the current cork, freed at uncork if the kernel took them all. */
  #written: Buffer[] = [];
  /** Chunks written before, some still queued on the socket: freed once it has nothing queued. */
  #unsent: Buffer[] = [];
  readonly #release = (): void => this.#flush();

  /** Wraps a socket that emits 'data' (e.g. a TLS socket, for a session above it). */
  constructor(socket: Duplex, options: { maxQueuedBytes: number }) {
    super();
    this.#socket = socket;
    this.maxQueuedBytes = options.maxQueuedBytes;
    if (!(socket instanceof net.Socket && _readsIntoBuffer.has(socket))) socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.once('end', () => {
      this.#ended = true;
      this.#flush();
    });
    socket.on('error', (err: Error) => this.emit('error', err));
    socket.on('drain', () => this.#freeUnsent());
    socket.once('close', () => this.emit('close'));
  }

  /**
   * Connects TCP and returns the wire on it, for TLS on top (`tls.connect({ socket })`).
   * The socket reads into one reused buffer (net's `onread`): no allocation, Readable
   * machinery or 'data' event per read, and nothing for the GC to sweep.
   */
  static connect(options: net.TcpNetConnectOpts, wireOptions: { maxQueuedBytes: number }): DecoupledSocket {
    let wire: DecoupledSocket | undefined;
    const onread = {
      buffer: _readBuffer,
      callback: (bytes: number, buffer: Uint8Array): boolean => wire!.#onRead(bytes, buffer as Buffer),
    };
    const socket = net.connect({ ...options, onread });
    _readsIntoBuffer.add(socket);
    wire = new DecoupledSocket(socket, wireOptions);
    return wire;
  }

  /** A read into the reused buffer; returning false pauses the socket. */
  #onRead(bytes: number, buffer: Buffer): boolean {
    if (!this.#paused && this.#held.length === 0) {
      // Consumers copy synchronously (JSStreamSocket hands it to native code at once).
      this.emit('data', buffer.subarray(0, bytes));
      return true;
    }
    // Held: copied (the buffer is overwritten by the next read), and the socket paused at
    // once, so a pause costs at most one read's copy; the kernel holds the rest. The
    // session pauses for every write it makes (a WINDOW_UPDATE, say) until the write
    // completes, on the next turn of the event loop; holding up to 1 MiB as in the
    // 'data' mode copied 29% of a bulk upload.
    this.#held.push(Buffer.copyBytesFrom(buffer, 0, bytes));
    this.#heldBytes += bytes;
    this.#socketPaused = true;
    return false;
  }

  #onData(chunk: Buffer): void {
    if (!this.#paused && this.#held.length === 0 && chunk.length < _fullRecord) {
      // The common case for small messages: one record per read, handed over at once.
      this.emit('data', chunk);
      return;
    }
    // TLS hands over one record (<= 16 KiB) per event, several per socket read; handing
    // them to the session in one piece saves a JS-to-C++ crossing per record. A short
    // record ends the read: hand over what was gathered now rather than on the next tick.
    if (this.#held.push(chunk) === 1) process.nextTick(this.#release);
    this.#heldBytes += chunk.length;
    if (!this.#paused && chunk.length < _fullRecord) this.#flush();
    else if (this.#paused && this.#heldBytes > _maxHeldBytes && !this.#socketPaused) {
      this.#socketPaused = true;
      this.#socket.pause();
    }
  }

  #flush(): void {
    if (this.#paused) return;
    if (this.#held.length > 0) {
      const chunk = this.#held.length === 1 ? this.#held[0]! : Buffer.concat(this.#held, this.#heldBytes);
      this.#held = [];
      this.#heldBytes = 0;
      this.emit('data', chunk);
    }
    if (this.#paused) return;
    if (this.#socketPaused) {
      this.#socketPaused = false;
      this.#socket.resume();
    }
    if (this.#ended && !this.#endEmitted && this.#held.length === 0) {
      this.#endEmitted = true;
      this.emit('end');
    }
  }

  /** The session stops reading while one of its writes completes; bytes read meanwhile are held. */
  pause(): this {
    this.#paused = true;
    return this;
  }

  resume(): this {
    if (!this.#paused) return this;
    this.#paused = false;
    // Not synchronously: the session calls this from inside its own write completion.
    if (this.#held.length > 0 || this.#socketPaused || this.#ended) process.nextTick(this.#release);
    return this;
  }

  cork(): void {
    this.#corks++;
    this.#socket.cork();
  }

  uncork(): void {
    this.#socket.uncork();
    if (--this.#corks > 0 || this.#written.length === 0) return;
    // Every chunk JSStreamSocket hands over is a fresh copy made in C++ (JSStream::DoWrite),
    // 64 KiB and more per write in bulk. Left to the GC, their memory counts as external
    // and makes V8 run a full mark-compact every few dozen MiB sent (a quarter of the
    // agent's CPU when it sends bulk). When the socket has nothing queued, the kernel has
    // taken every byte and nothing else refers to them: free them now.
    // Under backpressure some are still queued (libuv points into them): those wait for
    // the socket to empty.
    if (this.#socket.writableLength === 0) {
      for (const chunk of this.#written) _free(chunk);
      this.#freeUnsent();
    } else {
      for (const chunk of this.#written) this.#unsent.push(chunk);
    }
    this.#written.length = 0;
  }

  #freeUnsent(): void {
    if (this.#unsent.length === 0 || this.#socket.writableLength > 0) return;
    for (const chunk of this.#unsent) _free(chunk);
    this.#unsent.length = 0;
  }

  /** Queues `chunk` on the socket and completes at once, unless the peer has stopped reading entirely. */
  write(chunk: Buffer | string, callback?: WriteCallback): boolean {
    if (this.#failed) {
      callback?.(new TunnelClosedError('socket-error', 'the tunnel socket failed'));
      return false;
    }
    this.#socket.write(chunk);
    if (this.#corks > 0 && typeof chunk !== 'string' && _worthFreeing(chunk)) this.#written.push(chunk);
    if (this.#socket.writableLength > this.maxQueuedBytes) {
      this.#failed = true;
      const err = new TunnelClosedError('socket-error', `the tunnel peer stopped reading: more than ${this.maxQueuedBytes} bytes are queued for it`);
      callback?.(err);
      this.emit('error', err);
      this.#socket.destroy();
      return false;
    }
    callback?.();
    return true;
  }

  end(callback?: () => void): this {
    this.#socket.end(callback);
    return this;
  }

  destroy(err?: Error): this {
    this.#socket.destroy(err);
    return this;
  }

  get destroyed(): boolean {
    return this.#socket.destroyed;
  }
}
