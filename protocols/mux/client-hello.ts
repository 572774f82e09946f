/**
 * Reads the server name (SNI) and the ALPN list out of a TLS ClientHello without
 * terminating TLS, so the proxy can decide where a connection goes (e.g. pass it
 * through untouched to the auth service) before any key exchange. Bytes in, a typed
 * result out; no sockets.
 *
 * Layout (RFC 8446 4.1.2, 5.1; RFC 6066 3; RFC 7301 3.1), every length checked against
 * what encloses it:
 *
 * ```
 * record     16 | 03 0v | len:2 (1..2^14)              one or more records of type 22
 * handshake  01 | len:3 (<= maxHandshakeBytes)         may span records, never mixed with other types
 * hello      version:2 random:32 session_id<0..32>
 *            cipher_suites<2..2^16-2> compression<1..255> [extensions<0..2^16-1>]
 * extension  type:2 len:2 data                         each type at most once
 *   0  SNI   list<1..> { name_type:1 (0 = host_name) name<1..> }   one host name
 *   16 ALPN  list<2..> { name<1..255> }
 * ```
 *
 * The parser is incremental: feed it everything received so far; it answers `more`
 * until the whole ClientHello is there, and rejects oversized or malformed input as
 * soon as a byte gives it away. A ClientHello split over more than 64 records is refused.
 */
import { PosternError } from '../errors.ts';

/** The ClientHello could not be parsed; the connection is not (well-formed) TLS. */
export class ClientHelloError extends PosternError {
  constructor(message: string) {
    super('PST_TLS_CLIENT_HELLO', `malformed TLS ClientHello: ${message}`);
  }
}

/** What the proxy needs from a ClientHello. */
export interface ClientHello {
  /** The SNI host name, lower-cased; undefined when the client sent none. */
  serverName: string | undefined;
  /** ALPN protocol ids in the client's order; empty when it offered none. */
  alpn: string[];
  /** Bytes of the records that carried the ClientHello. */
  length: number;
}

/** The result of {@link parseClientHello}: `more` bytes are needed, or the hello. */
export type ClientHelloResult = { status: 'more' } | { status: 'done'; hello: ClientHello };

/** Options for {@link parseClientHello}. */
export interface ClientHelloOptions {
  /** Largest handshake message accepted. Default 32 KiB (browsers send under 2 KiB). */
  maxHandshakeBytes?: number;
}

const RECORD_HEADER = 5;
const MAX_RECORD = 16_384;
/** Real clients send one record; a split into a few is legal, one-byte dribbles are not worth buffering. */
const MAX_RECORDS = 64;
const HANDSHAKE = 0x16;
const CLIENT_HELLO = 0x01;
const EXT_SNI = 0x0000;
const EXT_ALPN = 0x0010;
/** Dot-separated labels of letters, digits, '-' and '_' (seen in the wild); no empty label, no trailing dot. */
const HOSTNAME_RE = /^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$/;

/**
 * Parses the ClientHello at the start of `bytes` (all bytes received so far).
 * Throws {@link ClientHelloError} on malformed or oversized input.
 *
 * @example
 * const result = parseClientHello(received);
 * if (result.status === 'done' && result.hello.serverName === 'auth.postern') passThrough();
 */
export function parseClientHello(bytes: Uint8Array, options: ClientHelloOptions = {}): ClientHelloResult {
  const max = options.maxHandshakeBytes ?? 32 * 1024;
  const assembled = _assembleHandshake(bytes, max);
  if (assembled === undefined) return { status: 'more' };
  return { status: 'done', hello: { ..._parseBody(assembled.body), length: assembled.length } };
}

/** Joins the handshake fragments of consecutive records; undefined while incomplete. */
function _assembleHandshake(bytes: Uint8Array, max: number): { body: Uint8Array; length: number } | undefined {
  const fragments: Uint8Array[] = [];
  let have = 0;
  let need = -1; // handshake message length with its 4-byte header, once known
  let offset = 0;
  while (need < 0 || have < need) {
    if (bytes.length < offset + RECORD_HEADER) return _checkPartialHeader(bytes.subarray(offset));
    if (fragments.length === MAX_RECORDS) throw new ClientHelloError(`ClientHello split over more than ${MAX_RECORDS} records`);
    const recordLength = _checkRecordHeader(bytes, offset);
    if (bytes.length < offset + RECORD_HEADER + recordLength) return undefined;
    const fragment = bytes.subarray(offset + RECORD_HEADER, offset + RECORD_HEADER + recordLength);
    fragments.push(fragment);
    have += fragment.length;
    offset += RECORD_HEADER + recordLength;
    if (need < 0 && have >= 4) need = _handshakeLength(_concat(fragments, 4), max);
  }
  if (have > need) throw new ClientHelloError('records carry bytes after the ClientHello message');
  const message = _concat(fragments, need);
  return { body: message.subarray(4), length: offset };
}

function _checkPartialHeader(head: Uint8Array): undefined {
  if (head.length >= 1 && head[0] !== HANDSHAKE) throw new ClientHelloError(`record type ${head[0]} where a handshake record (22) belongs`);
  if (head.length >= 2 && head[1] !== 0x03) throw new ClientHelloError(`record version major ${head[1]} is not 3`);
  return undefined;
}

function _checkRecordHeader(bytes: Uint8Array, offset: number): number {
  _checkPartialHeader(bytes.subarray(offset, offset + 2));
  if (bytes[offset + 2]! > 0x04) throw new ClientHelloError(`record version 3.${bytes[offset + 2]} is unknown`);
  const length = (bytes[offset + 3]! << 8) | bytes[offset + 4]!;
  if (length === 0) throw new ClientHelloError('empty handshake record');
  if (length > MAX_RECORD) throw new ClientHelloError(`record of ${length} bytes exceeds the TLS limit of ${MAX_RECORD}`);
  return length;
}

function _handshakeLength(header: Uint8Array, max: number): number {
  if (header[0] !== CLIENT_HELLO) throw new ClientHelloError(`handshake message type ${header[0]} is not ClientHello (1)`);
  const length = (header[1]! << 16) | (header[2]! << 8) | header[3]!;
  if (length > max) throw new ClientHelloError(`ClientHello of ${length} bytes exceeds the limit of ${max}`);
  return length + 4;
}

function _concat(fragments: Uint8Array[], length: number): Uint8Array {
  if (fragments.length === 1) return fragments[0]!.subarray(0, length);
  const out = new Uint8Array(length);
  let at = 0;
  for (const fragment of fragments) {
    if (at >= length) break;
    const take = fragment.subarray(0, length - at);
    out.set(take, at);
    at += take.length;
  }
  return out;
}

/** A bounds-checked cursor over one vector; every read names what it reads. */
class _Reader {
  readonly #bytes: Uint8Array;
  #at = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  get remaining(): number {
    return this.#bytes.length - this.#at;
  }

  take(n: number, what: string): Uint8Array {
    if (n > this.remaining) throw new ClientHelloError(`${what} needs ${n} bytes, ${this.remaining} left`);
    const out = this.#bytes.subarray(this.#at, this.#at + n);
    this.#at += n;
    return out;
  }

  uint(size: 1 | 2, what: string): number {
    const b = this.take(size, what);
    return size === 1 ? b[0]! : (b[0]! << 8) | b[1]!;
  }

  /** A vector with a `size`-byte length prefix, as a reader of its own. */
  vector(size: 1 | 2, what: string, min: number, max: number): _Reader {
    const length = this.uint(size, `${what} length`);
    if (length < min || length > max) throw new ClientHelloError(`${what} length ${length} is outside ${min}..${max}`);
    return new _Reader(this.take(length, what));
  }

  end(what: string): void {
    if (this.remaining !== 0) throw new ClientHelloError(`${this.remaining} stray bytes after ${what}`);
  }
}

function _parseBody(body: Uint8Array): Omit<ClientHello, 'length'> {
  const reader = new _Reader(body);
  const version = reader.uint(2, 'legacy_version');
  if (version >> 8 !== 0x03) throw new ClientHelloError(`legacy_version ${version.toString(16)} is not 3.x`);
  reader.take(32, 'random');
  reader.vector(1, 'session_id', 0, 32);
  if (reader.vector(2, 'cipher_suites', 2, 0xfffe).remaining % 2 !== 0) throw new ClientHelloError('cipher_suites has an odd length');
  reader.vector(1, 'compression_methods', 1, 255);
  let hello: Omit<ClientHello, 'length'> = { serverName: undefined, alpn: [] };
  if (reader.remaining > 0) hello = _parseExtensions(reader.vector(2, 'extensions', 0, 0xffff));
  reader.end('the ClientHello');
  return hello;
}

function _parseExtensions(reader: _Reader): Omit<ClientHello, 'length'> {
  const seen = new Set<number>();
  const hello: Omit<ClientHello, 'length'> = { serverName: undefined, alpn: [] };
  while (reader.remaining > 0) {
    const type = reader.uint(2, 'extension type');
    const data = reader.vector(2, `extension ${type}`, 0, 0xffff);
    if (seen.has(type)) throw new ClientHelloError(`extension ${type} appears twice`);
    seen.add(type);
    if (type === EXT_SNI) hello.serverName = _parseServerName(data);
    else if (type === EXT_ALPN) hello.alpn = _parseAlpn(data);
  }
  return hello;
}

function _parseServerName(data: _Reader): string {
  const list = data.vector(2, 'server_name_list', 1, 0xffff);
  data.end('server_name_list');
  let name: string | undefined;
  while (list.remaining > 0) {
    const nameType = list.uint(1, 'server name type');
    if (nameType !== 0) throw new ClientHelloError(`server name type ${nameType} is not host_name (0)`);
    const raw = list.vector(2, 'host_name', 1, 0xffff);
    if (name !== undefined) throw new ClientHelloError('more than one host_name in the SNI extension');
    name = Buffer.from(raw.take(raw.remaining, 'host_name')).toString('latin1').toLowerCase();
    if (name.length > 253 || !HOSTNAME_RE.test(name)) throw new ClientHelloError(`SNI host_name ${JSON.stringify(name.slice(0, 64))} is not a DNS name`);
  }
  return name!;
}

function _parseAlpn(data: _Reader): string[] {
  const list = data.vector(2, 'ALPN protocol_name_list', 2, 0xffff);
  data.end('ALPN extension');
  const ids: string[] = [];
  while (list.remaining > 0) {
    const id = list.vector(1, 'ALPN protocol name', 1, 255);
    ids.push(Buffer.from(id.take(id.remaining, 'ALPN protocol name')).toString('latin1'));
  }
  return ids;
}
