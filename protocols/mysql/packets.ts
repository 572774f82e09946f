/**
 * MySQL / MariaDB client-server protocol, the parts the Postern database path needs:
 * packet framing (`int<3> length | int<1> sequence | payload`), the server greeting
 * (HandshakeV10), the client's HandshakeResponse41 and SSLRequest, OK and ERR packets,
 * and the password scrambles of mysql_native_password and caching_sha2_password.
 *
 * Untrusted bytes: every read is bounds-checked and fails with
 * {@link MysqlProtocolError}; handshake packets are limited to {@link maxHandshakeBytes}.
 */
import { createHash } from 'node:crypto';
import { PosternError } from '../errors.ts';

export class MysqlProtocolError extends PosternError {
  constructor(message: string) {
    super('PST_MYSQL_PROTOCOL', message);
  }
}

/** Capability flags used here. */
export const CAP = {
  longPassword: 0x1,
  connectWithDb: 0x8,
  compress: 0x20,
  protocol41: 0x200,
  ssl: 0x800,
  secureConnection: 0x8000,
  pluginAuth: 0x80000,
  connectAttrs: 0x100000,
  pluginAuthLenencData: 0x200000,
  deprecateEof: 0x1000000,
} as const;

/** Largest handshake packet accepted (greeting, response, auth exchange). */
export const maxHandshakeBytes = 64 * 1024;

export interface Packet {
  sequence: number;
  payload: Buffer;
}

export function encodePacket(sequence: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUIntLE(payload.length, 0, 3);
  head[3] = sequence & 0xff;
  return Buffer.concat([head, payload]);
}

/** Splits a byte stream into whole packets; refuses any longer than `maxBytes`. */
export class PacketSplitter {
  #buffered: Buffer = Buffer.alloc(0);
  readonly #maxBytes: number;

  constructor(maxBytes = maxHandshakeBytes) {
    this.#maxBytes = maxBytes;
  }

  push(chunk: Buffer): Packet[] {
    this.#buffered = this.#buffered.length === 0 ? chunk : Buffer.concat([this.#buffered, chunk]);
    const out: Packet[] = [];
    while (this.#buffered.length >= 4) {
      const length = this.#buffered.readUIntLE(0, 3);
      if (length > this.#maxBytes) throw new MysqlProtocolError(`packet of ${length} bytes during the handshake; at most ${this.#maxBytes} are accepted`);
      if (this.#buffered.length < 4 + length) break;
      out.push({ sequence: this.#buffered[3]!, payload: Buffer.from(this.#buffered.subarray(4, 4 + length)) });
      this.#buffered = this.#buffered.subarray(4 + length);
    }
    return out;
  }

  rest(): Buffer {
    const rest = this.#buffered;
    this.#buffered = Buffer.alloc(0);
    return rest;
  }
}

/** A bounds-checked reader over one payload. */
export class PayloadReader {
  readonly #buf: Buffer;
  offset = 0;

  constructor(buf: Buffer) {
    this.#buf = buf;
  }

  #need(n: number, what: string): void {
    if (this.offset + n > this.#buf.length) throw new MysqlProtocolError(`packet too short for ${what}`);
  }

  u8(what: string): number {
    this.#need(1, what);
    return this.#buf[this.offset++]!;
  }

  u16(what: string): number {
    this.#need(2, what);
    const v = this.#buf.readUInt16LE(this.offset);
    this.offset += 2;
    return v;
  }

  u32(what: string): number {
    this.#need(4, what);
    const v = this.#buf.readUInt32LE(this.offset);
    this.offset += 4;
    return v;
  }

  bytes(n: number, what: string): Buffer {
    this.#need(n, what);
    const v = this.#buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return v;
  }

  nulString(what: string): Buffer {
    const end = this.#buf.indexOf(0, this.offset);
    if (end < 0) throw new MysqlProtocolError(`${what} is not terminated`);
    const v = this.#buf.subarray(this.offset, end);
    this.offset = end + 1;
    return v;
  }

  lenenc(what: string): number {
    const first = this.u8(what);
    if (first < 0xfb) return first;
    if (first === 0xfc) return this.u16(what);
    if (first === 0xfd) {
      this.#need(3, what);
      const v = this.#buf.readUIntLE(this.offset, 3);
      this.offset += 3;
      return v;
    }
    if (first === 0xfe) {
      this.#need(8, what);
      const v = Number(this.#buf.readBigUInt64LE(this.offset));
      this.offset += 8;
      if (v > maxHandshakeBytes) throw new MysqlProtocolError(`${what} length ${v} is too long`);
      return v;
    }
    throw new MysqlProtocolError(`${what}: invalid length-encoded integer`);
  }

  rest(): Buffer {
    const v = this.#buf.subarray(this.offset);
    this.offset = this.#buf.length;
    return v;
  }

  get remaining(): number {
    return this.#buf.length - this.offset;
  }
}

export function lenencInt(n: number): Buffer {
  if (n < 0xfb) return Buffer.from([n]);
  if (n < 0x10000) { const b = Buffer.alloc(3); b[0] = 0xfc; b.writeUInt16LE(n, 1); return b; }
  if (n < 0x1000000) { const b = Buffer.alloc(4); b[0] = 0xfd; b.writeUIntLE(n, 1, 3); return b; }
  const b = Buffer.alloc(9); b[0] = 0xfe; b.writeBigUInt64LE(BigInt(n), 1); return b;
}

/** HandshakeV10, the server's greeting. */
export interface Greeting {
  serverVersion: string;
  connectionId: number;
  /** auth-plugin-data (the scramble), 20 bytes for the usual plugins. */
  scramble: Buffer;
  capabilities: number;
  charset: number;
  status: number;
  /** The 10 reserved bytes (MariaDB keeps its extended capabilities in the last 4). */
  reserved: Buffer;
  authPlugin: string;
}

export function parseGreeting(payload: Buffer): Greeting {
  const r = new PayloadReader(payload);
  const version = r.u8('protocol version');
  if (version === 0xff) throw new MysqlProtocolError(`the server refused the connection: ${payload.subarray(3).toString('utf8')}`);
  if (version !== 10) throw new MysqlProtocolError(`unsupported handshake protocol ${version}; only 10 is spoken`);
  const serverVersion = r.nulString('server version').toString('utf8');
  const connectionId = r.u32('connection id');
  const part1 = r.bytes(8, 'scramble');
  r.u8('filler');
  let capabilities = r.u16('capabilities');
  const charset = r.u8('charset');
  const status = r.u16('status');
  capabilities |= r.u16('capabilities') << 16;
  capabilities >>>= 0;
  const dataLength = r.u8('auth data length');
  const reserved = Buffer.from(r.bytes(10, 'reserved'));
  let scramble = Buffer.from(part1);
  if (capabilities & CAP.secureConnection) {
    const part2 = r.bytes(Math.max(13, dataLength - 8), 'scramble');
    scramble = Buffer.concat([part1, part2.subarray(0, part2.length - (part2[part2.length - 1] === 0 ? 1 : 0))]);
  }
  const authPlugin = capabilities & CAP.pluginAuth && r.remaining > 0 ? r.nulString('auth plugin').toString('utf8') : 'mysql_native_password';
  return { serverVersion, connectionId, scramble, capabilities, charset, status, reserved, authPlugin };
}

export function encodeGreeting(g: Greeting): Buffer {
  const caps = Buffer.alloc(2);
  const head = Buffer.alloc(4);
  head.writeUInt32LE(g.connectionId);
  const parts = [
    Buffer.from([10]),
    Buffer.from(g.serverVersion + '\0'),
    head,
    g.scramble.subarray(0, 8),
    Buffer.from([0]),
  ];
  caps.writeUInt16LE(g.capabilities & 0xffff);
  parts.push(Buffer.from(caps));
  parts.push(Buffer.from([g.charset]));
  const status = Buffer.alloc(2);
  status.writeUInt16LE(g.status);
  parts.push(status);
  const upper = Buffer.alloc(2);
  upper.writeUInt16LE((g.capabilities >>> 16) & 0xffff);
  parts.push(upper);
  parts.push(Buffer.from([g.scramble.length + 1]));
  parts.push(g.reserved.length === 10 ? g.reserved : Buffer.alloc(10));
  parts.push(Buffer.concat([g.scramble.subarray(8), Buffer.from([0])]));
  parts.push(Buffer.from(g.authPlugin + '\0'));
  return Buffer.concat(parts);
}

/** HandshakeResponse41 (or, when only its first 32 bytes came, an SSLRequest). */
export interface HandshakeResponse {
  capabilities: number;
  maxPacketSize: number;
  charset: number;
  /** The 23 filler bytes (MariaDB: extended capabilities in the last 4). */
  filler: Buffer;
  user: string;
  authResponse: Buffer;
  database?: string;
  authPlugin?: string;
  /** The raw connection attributes block (length-encoded), forwarded as is. */
  attributes?: Buffer;
}

/** True when the payload is an SSLRequest (32 bytes with CLIENT_SSL). */
export function isSslRequest(payload: Buffer): boolean {
  return payload.length === 32 && (payload.readUInt32LE(0) & CAP.ssl) !== 0;
}

export function parseHandshakeResponse(payload: Buffer): HandshakeResponse {
  const r = new PayloadReader(payload);
  const capabilities = r.u32('capabilities');
  if (!(capabilities & CAP.protocol41)) throw new MysqlProtocolError('the client does not speak protocol 4.1; it is too old');
  const maxPacketSize = r.u32('max packet size');
  const charset = r.u8('charset');
  const filler = Buffer.from(r.bytes(23, 'filler'));
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const text = (b: Buffer, what: string): string => {
    try {
      return decoder.decode(b);
    } catch {
      throw new MysqlProtocolError(`${what} must be UTF-8`);
    }
  };
  const user = text(r.nulString('user name'), 'user name');
  let authResponse: Buffer;
  if (capabilities & CAP.pluginAuthLenencData) authResponse = Buffer.from(r.bytes(r.lenenc('auth response'), 'auth response'));
  else if (capabilities & CAP.secureConnection) authResponse = Buffer.from(r.bytes(r.u8('auth response'), 'auth response'));
  else authResponse = Buffer.from(r.nulString('auth response'));
  const database = capabilities & CAP.connectWithDb && r.remaining > 0 ? text(r.nulString('database'), 'database name') : undefined;
  const authPlugin = capabilities & CAP.pluginAuth && r.remaining > 0 ? text(r.nulString('auth plugin'), 'auth plugin') : undefined;
  let attributes: Buffer | undefined;
  if (capabilities & CAP.connectAttrs && r.remaining > 0) {
    const start = r.offset;
    const length = r.lenenc('connection attributes');
    r.bytes(length, 'connection attributes');
    attributes = Buffer.from(payload.subarray(start, r.offset));
  }
  if (user.length === 0) throw new MysqlProtocolError('the handshake names no user');
  return { capabilities, maxPacketSize, charset, filler, user, authResponse, ...(database ? { database } : {}), ...(authPlugin ? { authPlugin } : {}), ...(attributes ? { attributes } : {}) };
}

export function encodeHandshakeResponse(h: HandshakeResponse): Buffer {
  const head = Buffer.alloc(9);
  head.writeUInt32LE(h.capabilities >>> 0, 0);
  head.writeUInt32LE(h.maxPacketSize >>> 0, 4);
  head[8] = h.charset;
  const parts = [head, h.filler.length === 23 ? h.filler : Buffer.alloc(23), Buffer.from(h.user + '\0')];
  if (h.capabilities & CAP.pluginAuthLenencData) parts.push(lenencInt(h.authResponse.length), h.authResponse);
  else parts.push(Buffer.from([h.authResponse.length]), h.authResponse);
  if (h.capabilities & CAP.connectWithDb) parts.push(Buffer.from((h.database ?? '') + '\0'));
  if (h.capabilities & CAP.pluginAuth) parts.push(Buffer.from((h.authPlugin ?? '') + '\0'));
  if (h.capabilities & CAP.connectAttrs) parts.push(h.attributes ?? Buffer.from([0]));
  return Buffer.concat(parts);
}

/** The first 32 bytes of a handshake response: the SSLRequest. */
export function encodeSslRequest(h: Pick<HandshakeResponse, 'capabilities' | 'maxPacketSize' | 'charset' | 'filler'>): Buffer {
  return encodeHandshakeResponse({ ...h, capabilities: h.capabilities | CAP.ssl, user: '', authResponse: Buffer.alloc(0) }).subarray(0, 32);
}

/** ERR packet; `code` 1045 with SQLSTATE 28000 is "access denied". */
export function encodeErrPacket(code: number, sqlState: string, message: string): Buffer {
  const head = Buffer.alloc(3);
  head[0] = 0xff;
  head.writeUInt16LE(code, 1);
  return Buffer.concat([head, Buffer.from('#' + sqlState.padEnd(5, '0').slice(0, 5)), Buffer.from(message)]);
}

/** OK packet (protocol 4.1). */
export function encodeOkPacket(status: number): Buffer {
  const b = Buffer.from([0x00, 0, 0, 0, 0, 0, 0]);
  b.writeUInt16LE(status, 3);
  return b;
}

/** The message and code of an ERR packet payload. */
export function parseErrPacket(payload: Buffer): { code: number; sqlState: string; message: string } {
  const code = payload.length >= 3 ? payload.readUInt16LE(1) : 0;
  const hasState = payload[3] === 0x23;
  return { code, sqlState: hasState ? payload.subarray(4, 9).toString('latin1') : 'HY000', message: payload.subarray(hasState ? 9 : 3).toString('utf8') };
}

const sha1 = (...parts: Buffer[]): Buffer => { const h = createHash('sha1'); for (const p of parts) h.update(p); return h.digest(); };
const sha256 = (...parts: Buffer[]): Buffer => { const h = createHash('sha256'); for (const p of parts) h.update(p); return h.digest(); };
const xor = (a: Buffer, b: Buffer): Buffer => Buffer.from(a.map((v, i) => v ^ b[i % b.length]!));

/** mysql_native_password: SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))). */
export function nativePasswordToken(password: string, scramble: Buffer): Buffer {
  if (password === '') return Buffer.alloc(0);
  const stage1 = sha1(Buffer.from(password));
  return xor(stage1, sha1(scramble.subarray(0, 20), sha1(stage1)));
}

/** caching_sha2_password: SHA256(password) XOR SHA256(SHA256(SHA256(password)) + scramble). */
export function cachingSha2Token(password: string, scramble: Buffer): Buffer {
  if (password === '') return Buffer.alloc(0);
  const stage1 = sha256(Buffer.from(password));
  return xor(stage1, sha256(sha256(stage1), scramble.subarray(0, 20)));
}
