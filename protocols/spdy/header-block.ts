/**
 * SPDY/3 header blocks (SYN_STREAM, SYN_REPLY, HEADERS): a name/value list compressed
 * by one zlib stream per direction, primed with the SPDY dictionary and flushed
 * (Z_SYNC_FLUSH) at the end of every block, so a block only reads in the context of the
 * blocks before it.
 *
 * ```
 * uncompressed: count(u32) { name-len(u32) name  value-len(u32) value }*count
 *               (names lower case; a value may hold several, NUL-separated)
 * ```
 *
 * The reader inflates the direction's compressed bytes from the start at every block
 * and keeps the new output (a synchronous read in order; fine for the handful of blocks
 * a remote-command connection carries, and bounded in count and bytes). The writer
 * (test fixtures) sends stored deflate blocks, each block ending in the empty stored
 * block of a sync flush: valid zlib any reader accepts.
 */
import { constants, inflateSync } from 'node:zlib';
import { spdy3Dictionary } from './dictionary.ts';
import { SpdyProtocolError } from './errors.ts';

export type SpdyHeaders = Record<string, string>;

/** Reads one direction's header blocks, in order. */
export class HeaderBlockReader {
  readonly #maxCompressed: number;
  readonly #maxBlocks: number;
  #compressed: Buffer[] = [];
  #compressedBytes = 0;
  #consumed = 0;

  /**
   * Bounds for all header blocks of the direction together: each read inflates from the
   * start, so the work is at most `maxBlocks` inflates of `maxCompressedBytes` (defaults
   * 64 blocks, 64 KiB; a remote-command connection has about five).
   */
  constructor(limits: { maxCompressedBytes?: number; maxBlocks?: number } = {}) {
    this.#maxCompressed = limits.maxCompressedBytes ?? 64 * 1024;
    this.#maxBlocks = limits.maxBlocks ?? 64;
  }

  /** Decodes the next block; throws a SpdyProtocolError when it does not inflate or parse, or is over the limits. */
  read(block: Buffer): SpdyHeaders {
    this.#compressedBytes += block.length;
    if (this.#compressedBytes > this.#maxCompressed) throw new SpdyProtocolError(`header blocks over ${this.#maxCompressed} compressed bytes`);
    if (this.#compressed.length >= this.#maxBlocks) throw new SpdyProtocolError(`more than ${this.#maxBlocks} header blocks`);
    this.#compressed.push(Buffer.from(block));
    let all: Buffer;
    try {
      all = inflateSync(Buffer.concat(this.#compressed), { dictionary: spdy3Dictionary, finishFlush: constants.Z_SYNC_FLUSH, maxOutputLength: 4 * this.#maxCompressed + 64 * 1024 });
    } catch (error) {
      throw new SpdyProtocolError(`a header block does not inflate (${(error as Error).message})`);
    }
    const plain = all.subarray(this.#consumed);
    this.#consumed = all.length;
    return decodeNameValues(plain);
  }
}

/** Parses an uncompressed name/value block; strict about lengths and names. */
export function decodeNameValues(plain: Buffer): SpdyHeaders {
  if (plain.length < 4) throw new SpdyProtocolError('a header block shorter than its count');
  const count = plain.readUInt32BE(0);
  const headers: SpdyHeaders = {};
  let at = 4;
  const text = (what: string): string => {
    if (at + 4 > plain.length) throw new SpdyProtocolError(`a header block cut in a ${what} length`);
    const length = plain.readUInt32BE(at);
    at += 4;
    if (at + length > plain.length) throw new SpdyProtocolError(`a header ${what} of ${length} bytes runs past the block`);
    const value = plain.toString('latin1', at, at + length);
    at += length;
    return value;
  };
  for (let i = 0; i < count; i++) {
    const name = text('name');
    if (name.length === 0 || name !== name.toLowerCase()) throw new SpdyProtocolError(`a header name ${JSON.stringify(name.slice(0, 40))} that is empty or not lower case`);
    if (Object.hasOwn(headers, name)) throw new SpdyProtocolError(`the header ${JSON.stringify(name.slice(0, 40))} twice in one block`);
    headers[name] = text('value');
  }
  if (at !== plain.length) throw new SpdyProtocolError(`${plain.length - at} bytes after the last header`);
  return headers;
}

/** Encodes a name/value block (uncompressed). */
export function encodeNameValues(headers: SpdyHeaders): Buffer {
  const parts: Buffer[] = [u32(Object.keys(headers).length)];
  for (const [name, value] of Object.entries(headers)) {
    const n = Buffer.from(name.toLowerCase(), 'latin1');
    const v = Buffer.from(value, 'latin1');
    parts.push(u32(n.length), n, u32(v.length), v);
  }
  return Buffer.concat(parts);
}

/** Writes one direction's header blocks as stored deflate blocks (no compression, valid for any zlib reader). */
export class HeaderBlockWriter {
  #started = false;

  write(headers: SpdyHeaders): Buffer {
    const plain = encodeNameValues(headers);
    const parts: Buffer[] = [];
    if (!this.#started) {
      this.#started = true;
      // zlib header: deflate, 32K window, FDICT set, check bits making it a multiple of 31; then the dictionary's id.
      const cmf = 0x78;
      let flg = 0x20;
      flg += 31 - ((cmf * 256 + flg) % 31);
      parts.push(Buffer.from([cmf, flg]), u32(adler32(spdy3Dictionary)));
    }
    for (let at = 0; at < plain.length || at === 0; at += 0xffff) {
      const piece = plain.subarray(at, at + 0xffff);
      const head = Buffer.alloc(5);
      head[0] = 0x00; // BFINAL 0, BTYPE 00 (stored), padded to the byte
      head.writeUInt16LE(piece.length, 1);
      head.writeUInt16LE(~piece.length & 0xffff, 3);
      parts.push(head, piece);
      if (plain.length === 0) break;
    }
    // The empty stored block a Z_SYNC_FLUSH ends with: readers (Go's flate) hand out a block's
    // bytes only when they reach it, and must not need the next frame to do so.
    parts.push(Buffer.from([0x00, 0x00, 0x00, 0xff, 0xff]));
    return Buffer.concat(parts);
  }
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

function adler32(data: Buffer): number {
  let a = 1;
  let b = 0;
  for (const byte of data) {
    a = (a + byte) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}
