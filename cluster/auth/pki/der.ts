/**
 * The small part of DER (ITU-T X.690) that X.509 issuance needs, both ways.
 *
 *   element = tag (1 byte, tag numbers < 31 only) | length | content
 *   length  = 0..127 in one byte, or 0x80+n then n big-endian bytes (n <= 4 here)
 *
 * The writer builds elements bottom-up as Buffers (`seq(oid(...), utf8String(...))`).
 * The reader walks an already-received buffer without copying: every element is a
 * window (`contentStart`..`end`) into it, and every declared length is checked against
 * the enclosing element before use, so truncated or hostile bytes end in a
 * DerFormatError, never in an over-read. Indefinite lengths (BER) are refused.
 */
import { DerFormatError } from './errors.ts';

export const TAG = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  oid: 0x06,
  utf8String: 0x0c,
  printableString: 0x13,
  utcTime: 0x17,
  generalizedTime: 0x18,
  sequence: 0x30,
  set: 0x31,
} as const;

// ---- writer ---------------------------------------------------------------------------

/** One element: `tag`, the DER length of `content`, then `content`. */
export function tlv(tag: number, content: Uint8Array): Buffer {
  const n = content.length;
  let header: Buffer;
  if (n < 0x80) header = Buffer.from([tag, n]);
  else if (n < 0x100) header = Buffer.from([tag, 0x81, n]);
  else if (n < 0x10000) header = Buffer.from([tag, 0x82, n >> 8, n & 0xff]);
  else if (n < 0x1000000) header = Buffer.from([tag, 0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  else throw new DerFormatError(`Cannot encode DER element: content of ${n} bytes is too long`);
  return Buffer.concat([header, content]);
}

/** SEQUENCE of the given elements, in order. */
export function seq(...elements: Uint8Array[]): Buffer {
  return tlv(TAG.sequence, Buffer.concat(elements));
}

/** SET of the given elements; callers pass a single element or DER-sorted ones. */
export function set(...elements: Uint8Array[]): Buffer {
  return tlv(TAG.set, Buffer.concat(elements));
}

/** INTEGER from an unsigned big-endian magnitude (leading zeros dropped, a 0x00 added when the top bit is set). */
export function unsignedInteger(magnitude: Uint8Array): Buffer {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const body = magnitude.subarray(start);
  if (body.length === 0) return Buffer.from([TAG.integer, 1, 0]);
  return (body[0]! & 0x80) !== 0 ? tlv(TAG.integer, Buffer.concat([Buffer.of(0), body])) : tlv(TAG.integer, body);
}

/** INTEGER from a small non-negative number. */
export function smallInteger(value: number): Buffer {
  if (!Number.isSafeInteger(value) || value < 0) throw new DerFormatError(`Cannot encode INTEGER ${value}`);
  const bytes: number[] = [];
  do {
    bytes.unshift(value & 0xff);
    value = Math.floor(value / 256);
  } while (value > 0);
  return unsignedInteger(Uint8Array.from(bytes));
}

export function boolean(value: boolean): Buffer {
  return Buffer.from([TAG.boolean, 1, value ? 0xff : 0x00]);
}

export function octetString(bytes: Uint8Array): Buffer {
  return tlv(TAG.octetString, bytes);
}

/** BIT STRING holding whole bytes (zero unused bits). */
export function bitString(bytes: Uint8Array): Buffer {
  return tlv(TAG.bitString, Buffer.concat([Buffer.of(0), bytes]));
}

/**
 * BIT STRING for a named-bit list such as KeyUsage: bit 0 is the most significant bit
 * of the first byte, and DER drops trailing zero bits (X.690 11.2.2).
 */
export function namedBits(bits: readonly number[]): Buffer {
  if (bits.length === 0) return Buffer.from([TAG.bitString, 1, 0]);
  const highest = Math.max(...bits);
  const bytes = Buffer.alloc((highest >> 3) + 1);
  for (const bit of bits) bytes[bit >> 3]! |= 0x80 >> (bit & 7);
  const unused = 7 - (highest & 7);
  return tlv(TAG.bitString, Buffer.concat([Buffer.of(unused), bytes]));
}

export function utf8String(text: string): Buffer {
  return tlv(TAG.utf8String, Buffer.from(text, 'utf8'));
}

/** [n] EXPLICIT: a constructed context-specific element wrapping `inner`. */
export function explicit(tagNumber: number, inner: Uint8Array): Buffer {
  return tlv(0xa0 | tagNumber, inner);
}

/** [n] IMPLICIT over a primitive type: the content of that type under a context-specific tag. */
export function implicitPrimitive(tagNumber: number, content: Uint8Array): Buffer {
  return tlv(0x80 | tagNumber, content);
}

const oidCache = new Map<string, Buffer>();

/** OBJECT IDENTIFIER from dotted text (`2.5.4.3`); encodings are cached, OIDs come from a fixed set. */
export function oid(dotted: string): Buffer {
  let encoded = oidCache.get(dotted);
  if (encoded === undefined) {
    encoded = tlv(TAG.oid, encodeOidContent(dotted));
    if (oidCache.size < 1024) oidCache.set(dotted, encoded);
  }
  return encoded;
}

function encodeOidContent(dotted: string): Buffer {
  if (!/^[0-2](\.(0|[1-9][0-9]*))+$/.test(dotted)) throw new DerFormatError(`Cannot encode OID "${dotted}"`);
  const arcs = dotted.split('.').map((a) => BigInt(a));
  const first = arcs[0]! * 40n + arcs[1]!;
  const bytes: number[] = [];
  for (const arc of [first, ...arcs.slice(2)]) {
    const group = [Number(arc & 0x7fn)];
    for (let rest = arc >> 7n; rest > 0n; rest >>= 7n) group.unshift(Number(rest & 0x7fn) | 0x80);
    bytes.push(...group);
  }
  return Buffer.from(bytes);
}

/**
 * Time per RFC 5280 4.1.2.5: UTCTime (YYMMDDHHMMSSZ) through 2049, GeneralizedTime
 * (YYYYMMDDHHMMSSZ) from 2050; whole seconds (fractions are dropped).
 */
export function time(date: Date): Buffer {
  if (Number.isNaN(date.getTime())) throw new DerFormatError('Cannot encode time: invalid Date');
  const iso = date.toISOString(); // 2026-01-02T03:04:05.678Z
  if (iso.length !== 24) throw new DerFormatError(`Cannot encode time ${iso}: outside years 0-9999`);
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '') + 'Z'; // 20260102030405Z
  const year = date.getUTCFullYear();
  if (year < 1950) throw new DerFormatError(`Cannot encode time ${iso}: before 1950`);
  return year < 2050
    ? tlv(TAG.utcTime, Buffer.from(digits.slice(2), 'latin1'))
    : tlv(TAG.generalizedTime, Buffer.from(digits, 'latin1'));
}

// ---- reader ---------------------------------------------------------------------------

/** A window onto one element of a buffer the reader does not copy. */
export interface DerElement {
  tag: number;
  /** Offset of the tag byte. */
  start: number;
  /** Offset of the first content byte. */
  contentStart: number;
  /** Offset just past the content. */
  end: number;
}

/** Reads the element at `offset`, which must end at or before `limit`. */
export function readElement(buf: Uint8Array, offset: number, limit = buf.length, what = 'element'): DerElement {
  if (offset + 2 > limit) throw new DerFormatError(`Cannot read DER ${what}: truncated header at byte ${offset}`);
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DerFormatError(`Cannot read DER ${what}: multi-byte tags are not supported`);
  let length = buf[offset + 1]!;
  let contentStart = offset + 2;
  if (length === 0x80) throw new DerFormatError(`Cannot read DER ${what}: indefinite length is not DER`);
  if (length > 0x80) {
    const count = length & 0x7f;
    if (count > 4) throw new DerFormatError(`Cannot read DER ${what}: length of ${count} bytes is too long`);
    if (contentStart + count > limit) throw new DerFormatError(`Cannot read DER ${what}: truncated length`);
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + buf[contentStart + i]!;
    if (length < 0x80 || (count > 1 && buf[contentStart] === 0)) {
      throw new DerFormatError(`Cannot read DER ${what}: length is not minimally encoded`);
    }
    contentStart += count;
  }
  const end = contentStart + length;
  if (end > limit) throw new DerFormatError(`Cannot read DER ${what}: ${length} content bytes declared, ${limit - contentStart} present`);
  return { tag, start: offset, contentStart, end };
}

/** Reads the element at `offset` and checks its tag. */
export function expectElement(buf: Uint8Array, offset: number, limit: number, tag: number, what: string): DerElement {
  const element = readElement(buf, offset, limit, what);
  if (element.tag !== tag) {
    throw new DerFormatError(`Cannot read DER ${what}: expected tag 0x${hex(tag)}, found 0x${hex(element.tag)}`);
  }
  return element;
}

/** The elements inside a constructed element, in order; they must fill it exactly. */
export function childrenOf(buf: Uint8Array, parent: DerElement, what = 'element'): DerElement[] {
  const children: DerElement[] = [];
  for (let at = parent.contentStart; at < parent.end; ) {
    const child = readElement(buf, at, parent.end, what);
    children.push(child);
    at = child.end;
  }
  return children;
}

/** Reads a whole buffer as exactly one element (no trailing bytes). */
export function readWhole(buf: Uint8Array, tag: number, what: string): DerElement {
  const element = expectElement(buf, 0, buf.length, tag, what);
  if (element.end !== buf.length) throw new DerFormatError(`Cannot read DER ${what}: ${buf.length - element.end} trailing bytes`);
  return element;
}

/** The content bytes of an element (a view, not a copy). */
export function contentOf(buf: Uint8Array, element: DerElement): Buffer {
  return Buffer.from(buf.buffer, buf.byteOffset + element.contentStart, element.end - element.contentStart);
}

/** The whole encoding of an element, header included (a view, not a copy). */
export function encodingOf(buf: Uint8Array, element: DerElement): Buffer {
  return Buffer.from(buf.buffer, buf.byteOffset + element.start, element.end - element.start);
}

/** Dotted text of an OBJECT IDENTIFIER's content bytes. */
export function decodeOid(content: Uint8Array): string {
  if (content.length === 0 || (content[content.length - 1]! & 0x80) !== 0) {
    throw new DerFormatError('Cannot read DER OID: empty or truncated');
  }
  const arcs: bigint[] = [];
  let value = 0n;
  let fresh = true;
  for (const byte of content) {
    if (fresh && byte === 0x80) throw new DerFormatError('Cannot read DER OID: arc is not minimally encoded');
    value = (value << 7n) | BigInt(byte & 0x7f);
    fresh = (byte & 0x80) === 0;
    if (fresh) {
      arcs.push(value);
      value = 0n;
    }
  }
  const first = arcs[0]!;
  const head = first < 40n ? [0n, first] : first < 80n ? [1n, first - 40n] : [2n, first - 80n];
  return [...head, ...arcs.slice(1)].join('.');
}

function hex(n: number): string {
  return n.toString(16).padStart(2, '0');
}
