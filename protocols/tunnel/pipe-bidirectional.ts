import diagnostics_channel from 'node:diagnostics_channel';
import type { Socket } from 'node:net';
import { finished, type Duplex } from 'node:stream';

/** What {@link pipeBidirectional} reports once both sides are done. */
export interface PipeResult {
  bytesAToB: number;
  bytesBToA: number;
  /** Set when the pipe ended abnormally (a reset, an error, a side destroyed early). */
  error?: Error;
}

const endChannel = diagnostics_channel.channel('postern:pipe:end');

/**
 * Tears a side down so its peer sees an abort, not a clean end: a TCP socket is reset
 * (RST), an HTTP/2 stream is cancelled (RST_STREAM). A truncated transfer must never
 * look complete.
 */
function _abort(stream: Duplex, cause: Error): void {
  if ('rstCode' in stream) {
    // An HTTP/2 stream: destroy() without an error sends RST_STREAM NO_ERROR, and
    // close(code) sends END_STREAM first; Node's peer reads both as a clean end.
    // destroy(error) sends only RST_STREAM INTERNAL_ERROR.
    stream.destroy(cause);
    return;
  }
  const socket = stream as Partial<Socket>;
  if (typeof socket.resetAndDestroy === 'function' && !stream.destroyed && socket.readyState !== 'opening') {
    try {
      socket.resetAndDestroy();
      return;
    } catch {
      // not a TCP socket underneath (e.g. a socket wrapped around another stream)
    }
  }
  stream.destroy();
}

/**
 * Pipes two Duplexes into each other with backpressure until both directions end.
 *
 * - `write()` returning false pauses the source until `'drain'` (via `pipe`).
 * - The end of one side's readable ends the other's writable (half-close carries over).
 * - An error or early close on either side aborts both (TCP reset, HTTP/2 stream cancel).
 *
 * Never rejects: an abnormal end is reported in `error`, so `void pipeBidirectional(a, b)`
 * cannot crash a server. Sockets should allow half-open (`allowHalfOpen: true`) for
 * half-close to carry over faithfully.
 *
 * @example
 * const { bytesAToB, bytesBToA, error } = await pipeBidirectional(clientSocket, tunnelStream);
 */
export function pipeBidirectional(a: Duplex, b: Duplex): Promise<PipeResult> {
  return new Promise((resolve) => {
    const result: PipeResult = { bytesAToB: 0, bytesBToA: 0 };
    let pending = 2;
    let settled = false;
    const settle = (): void => {
      settled = true;
      if (endChannel.hasSubscribers) endChannel.publish(result);
      resolve(result);
    };
    const onDone = (err?: Error | null): void => {
      if (settled) return;
      if (err) {
        result.error = err;
        _abort(a, err);
        _abort(b, err);
        return settle();
      }
      if (--pending === 0) settle();
    };
    a.on('data', (chunk: Buffer) => { result.bytesAToB += chunk.length; });
    b.on('data', (chunk: Buffer) => { result.bytesBToA += chunk.length; });
    a.pipe(b);
    b.pipe(a);
    finished(a, onDone);
    finished(b, onDone);
  });
}
