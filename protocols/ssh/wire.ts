/**
 * The SSH data types of RFC 4251 section 5, read and written over Buffers.
 *
 *   uint32     4 bytes, big-endian
 *   uint64     8 bytes, big-endian (a bigint here: seconds since 1970 reach past 2^53)
 *   string     uint32 length, then that many bytes (binary or UTF-8 text)
 *   mpint      a string holding a two's-complement big-endian integer, minimal length;
 *              only non-negative values occur in keys and signatures
 *   name-list  a string holding comma-separated ASCII names, none empty
 *
 * The reader never trusts a declared length: every read checks it against what
 * remains (and a caller's maximum) before touching the bytes, and reports the field
 * by name, so truncated or hostile input ends in an `SshFormatError`, never in a
 * RangeError or an over-read.
 */
import { SshFormatError } from './errors.ts';

const UINT32_MAX = 0xffff_ffff;
const UINT64_MAX = 0xffff_ffff_ffff_ffffn;
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** A cursor over one SSH-encoded buffer; `context` names the whole thing in error messages. */
export class SshReader {
  readonly #buf: Buffer;
  readonly #context: string;
  #offset = 0;

  constructor(bytes: Uint8Array, context: string) {
    this.#buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#context = context;
  }

  /** Bytes consumed so far. */
  get offset(): number {
    return this.#offset;
  }

  /** Bytes not yet consumed. */
  get remaining(): number {
    return this.#buf.length - this.#offset;
  }

  /** Throws an `SshFormatError` naming this reader's context. */
  fail(message: string): never {
    throw new SshFormatError(`Cannot parse ${this.#context}: ${message}`);
  }

  /** Reads one byte. */
  byte(field: string): number {
    return this.#take(1, field)[0]!;
  }

  /** Reads a boolean byte; RFC 4251 says any non-zero value is true. */
  boolean(field: string): boolean {
    return this.byte(field) !== 0;
  }

  /** Reads a big-endian uint32. */
  uint32(field: string): number {
    return this.#take(4, field).readUInt32BE(0);
  }

  /** Reads a big-endian uint64 as a bigint. */
  uint64(field: string): bigint {
    return this.#take(8, field).readBigUInt64BE(0);
  }

  /** Reads a length-prefixed string as bytes (a view, not a copy); refuses lengths above `maxLength`. */
  string(field: string, maxLength: number = UINT32_MAX): Buffer {
    const length = this.uint32(`length of ${field}`);
    if (length > maxLength) {
      this.fail(`${field} declares ${length} bytes, more than the ${maxLength} allowed`);
    }
    return this.#take(length, field);
  }

  /** Reads a string that must be valid UTF-8 without NUL bytes (OpenSSH reads these as C strings). */
  text(field: string, maxLength?: number): string {
    const bytes = this.string(field, maxLength);
    if (bytes.includes(0)) this.fail(`${field} contains a NUL byte`);
    try {
      return utf8.decode(bytes);
    } catch {
      return this.fail(`${field} is not valid UTF-8`);
    }
  }

  /**
   * Reads a non-negative mpint and returns its magnitude as unsigned big-endian bytes
   * without leading zeros (empty for zero). Refuses negative and non-minimal encodings.
   */
  mpint(field: string, maxBytes: number): Buffer {
    const bytes = this.string(field, maxBytes + 1);
    if (bytes.length === 0) return bytes;
    if ((bytes[0]! & 0x80) !== 0) this.fail(`${field} is negative`);
    if (bytes[0] === 0) {
      if (bytes.length === 1 || (bytes[1]! & 0x80) === 0) this.fail(`${field} has a needless leading zero byte`);
      return bytes.subarray(1);
    }
    if (bytes.length > maxBytes) this.fail(`${field} is longer than ${maxBytes} bytes`);
    return bytes;
  }

  /** Reads a name-list: comma-separated, non-empty, printable ASCII names. */
  nameList(field: string, maxLength?: number): string[] {
    const bytes = this.string(field, maxLength);
    if (bytes.length === 0) return [];
    for (const b of bytes) {
      if (b <= 0x20 || b >= 0x7f) this.fail(`${field} holds a byte (0x${b.toString(16)}) that is not printable ASCII`);
    }
    const names = bytes.toString('latin1').split(',');
    if (names.includes('')) this.fail(`${field} holds an empty name`);
    return names;
  }

  /** Reads `length` raw bytes (a view). */
  raw(length: number, field: string): Buffer {
    return this.#take(length, field);
  }

  /** The rest of the buffer (a view), leaving the reader at the end. */
  rest(): Buffer {
    return this.#take(this.remaining, 'rest');
  }

  /** Refuses trailing bytes: the structure must end exactly where the buffer does. */
  end(): void {
    if (this.remaining !== 0) this.fail(`${this.remaining} unexpected trailing byte(s) at offset ${this.#offset}`);
  }

  #take(length: number, field: string): Buffer {
    if (length > this.remaining) {
      this.fail(`${field} needs ${length} byte(s) at offset ${this.#offset} but only ${this.remaining} remain; the data is truncated or corrupt`);
    }
    const start = this.#offset;
    this.#offset += length;
    return this.#buf.subarray(start, this.#offset);
  }
}

/** Builds an SSH-encoded buffer; each method validates its value and returns `this`. */
export class SshWriter {
  readonly #chunks: Buffer[] = [];

  /** Appends one byte. */
  byte(value: number): this {
    if (!Number.isInteger(value) || value < 0 || value > 0xff) throw new SshFormatError(`Cannot encode byte ${value}: not in 0..255`);
    this.#chunks.push(Buffer.of(value));
    return this;
  }

  /** Appends a boolean byte (1 or 0). */
  boolean(value: boolean): this {
    return this.byte(value ? 1 : 0);
  }

  /** Appends a big-endian uint32. */
  uint32(value: number): this {
    if (!Number.isInteger(value) || value < 0 || value > UINT32_MAX) {
      throw new SshFormatError(`Cannot encode uint32 ${value}: not an integer in 0..2^32-1`);
    }
    const b = Buffer.alloc(4);
    b.writeUInt32BE(value, 0);
    this.#chunks.push(b);
    return this;
  }

  /** Appends a big-endian uint64. */
  uint64(value: bigint): this {
    if (value < 0n || value > UINT64_MAX) throw new SshFormatError(`Cannot encode uint64 ${value}: not in 0..2^64-1`);
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(value, 0);
    this.#chunks.push(b);
    return this;
  }

  /** Appends a length-prefixed string; text is encoded as UTF-8. */
  string(value: Uint8Array | string): this {
    const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
    this.uint32(bytes.length);
    this.#chunks.push(bytes);
    return this;
  }

  /** Appends a non-negative mpint from a bigint or from unsigned big-endian bytes. */
  mpint(value: bigint | Uint8Array): this {
    let magnitude = typeof value === 'bigint' ? bigintToBytes(value) : Buffer.from(value);
    let start = 0;
    while (start < magnitude.length && magnitude[start] === 0) start++;
    magnitude = magnitude.subarray(start);
    if (magnitude.length > 0 && (magnitude[0]! & 0x80) !== 0) magnitude = Buffer.concat([Buffer.of(0), magnitude]);
    return this.string(magnitude);
  }

  /** Appends a name-list; names must be non-empty printable ASCII without commas. */
  nameList(names: readonly string[]): this {
    for (const name of names) {
      if (!/^[\x21-\x2b\x2d-\x7e]+$/.test(name)) throw new SshFormatError(`Cannot encode name-list entry ${JSON.stringify(name)}: names are non-empty printable ASCII without commas`);
    }
    return this.string(names.join(','));
  }

  /** Appends bytes as they are, without a length prefix. */
  raw(bytes: Uint8Array): this {
    this.#chunks.push(Buffer.from(bytes));
    return this;
  }

  /** The bytes written so far, as one Buffer. */
  toBuffer(): Buffer {
    return Buffer.concat(this.#chunks);
  }
}

/** Unsigned big-endian bytes of a non-negative bigint, without leading zeros (empty for 0). */
export function bigintToBytes(value: bigint): Buffer {
  if (value < 0n) throw new SshFormatError(`Cannot encode ${value}: negative integers do not occur in SSH keys`);
  if (value === 0n) return Buffer.alloc(0);
  const hex = value.toString(16);
  return Buffer.from(hex.length % 2 === 0 ? hex : `0${hex}`, 'hex');
}

/** The non-negative bigint held by unsigned big-endian bytes. */
export function bytesToBigint(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt(`0x${Buffer.from(bytes).toString('hex')}`);
}
