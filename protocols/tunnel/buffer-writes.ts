import type { Duplex } from 'node:stream';

type WritevChunk = { chunk: unknown; encoding: BufferEncoding | 'buffer' };
type Writev = (chunks: WritevChunk[], callback: (error?: Error | null) => void) => void;

/**
 * Makes an HTTP/2 stream safe to carry Node's HTTP/1 (an http.Server or http.Agent on a
 * tunnel stream): batched writes reach it as Buffers only.
 *
 * Why: on Node 24, an Http2Stream's batched write (`_writev`, what cork/uncork produces)
 * that mixes strings and Buffers sends garbage in place of the first bytes of the
 * strings. Node's HTTP/1 code does exactly that: a response head (a latin1 string) goes
 * out corked with the first body Buffer, chunk-size lines with their chunks. Seen as
 * `HTTP/1.1 200 OK\r` arriving as random bytes; buffer-writes.test.ts reproduces it.
 * Converting strings first costs one copy of the (small) head; bodies are Buffers already.
 */
export function withBufferWritev<T extends Duplex>(stream: T): T {
  const target = stream as unknown as { _writev?: Writev };
  const original = target._writev;
  if (typeof original !== 'function') return stream;
  target._writev = function (this: unknown, chunks: WritevChunk[], callback: (error?: Error | null) => void): void {
    let strings = false;
    for (const entry of chunks) if (typeof entry.chunk === 'string') strings = true;
    if (!strings) return original.call(this, chunks, callback);
    const buffers = chunks.map((entry) => typeof entry.chunk === 'string'
      ? { chunk: Buffer.from(entry.chunk, entry.encoding === 'buffer' ? 'utf8' : entry.encoding), encoding: 'buffer' as const }
      : entry);
    return original.call(this, buffers, callback);
  };
  return stream;
}
