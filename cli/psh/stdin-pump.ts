/**
 * Carries psh's stdin to the proxy connection, as `process.stdin.pipe(socket)` would
 * (backpressure, end), but reading into a few reused 256 KiB buffers.
 *
 * Why: `ssh` writes everything it sends through the ProxyCommand's stdin. Node's stdin
 * takes a new 64 KiB ArrayBuffer for every read and a second, trimmed copy of it; at
 * upload rates that garbage kept V8 collecting. A `net.Socket` on fd 0 with `onread`
 * reads into memory handed back once the TLS write that carried it has completed (by
 * then TLS has encrypted the bytes and keeps no reference to them).
 *
 * Only when stdin is a pipe or a socket (what ssh gives a ProxyCommand); a terminal or
 * a file goes through `process.stdin` as before.
 */
import { fstatSync } from 'node:fs';
import net from 'node:net';
import type { Readable, Writable } from 'node:stream';

const READ_SIZE = 256 * 1024;
/** Buffers kept for reuse; more are in flight only while the connection is backed up. */
const KEEP = 4;

/** Starts copying stdin to `out`; ends `out` at stdin's end. Returns stdin's stream, to destroy when done. */
export function pumpStdin(out: Writable): Readable {
  if (!_isPipeOrSocket(0)) return process.stdin.pipe(out) && process.stdin;
  const free: Buffer[] = [];
  const input = new net.Socket({
    fd: 0,
    readable: true,
    writable: false,
    allowHalfOpen: true,
    onread: {
      buffer: () => free.pop() ?? Buffer.allocUnsafeSlow(READ_SIZE),
      callback: (bytes: number, buffer: Uint8Array): boolean => {
        const more = out.write(buffer.subarray(0, bytes), () => {
          if (free.length < KEEP) free.push(buffer as Buffer);
        });
        if (!more) out.once('drain', () => input.resume());
        return more;
      },
    },
  });
  input.once('end', () => out.end());
  input.on('error', (error) => out.destroy(error));
  return input;
}

function _isPipeOrSocket(fd: number): boolean {
  try {
    const stat = fstatSync(fd);
    return stat.isFIFO() || stat.isSocket();
  } catch {
    return false;
  }
}
