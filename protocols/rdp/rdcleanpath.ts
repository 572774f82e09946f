/**
 * RDCleanPath PDUs (Devolutions IronRDP, crate `ironrdp-rdcleanpath`): the one
 * message each way a web RDP client and its gateway exchange before the raw RDP
 * stream flows. DER, every field an EXPLICIT context tag:
 *
 * ```
 * RDCleanPathPdu ::= SEQUENCE {
 *   version            [0] INTEGER (3390),
 *   error              [1] RDCleanPathErr OPTIONAL,      -- gateway -> client
 *   destination        [2] UTF8String OPTIONAL,          -- client -> gateway, "host:port"
 *   proxyAuth          [3] UTF8String OPTIONAL,          -- client -> gateway
 *   serverAuth         [4] UTF8String OPTIONAL,
 *   preconnectionBlob  [5] UTF8String OPTIONAL,
 *   x224ConnectionPdu  [6] OCTET STRING OPTIONAL,        -- request from client, confirm from server
 *   serverCertChain    [7] SEQUENCE OF OCTET STRING OPTIONAL,  -- DER certificates, leaf first
 *   serverAddr         [9] UTF8String OPTIONAL }
 * RDCleanPathErr ::= SEQUENCE {
 *   errorCode [0] INTEGER, httpStatusCode [1] INTEGER OPTIONAL,
 *   wsaLastError [2] INTEGER OPTIONAL, tlsAlertCode [3] INTEGER OPTIONAL }
 * ```
 *
 * Only what a gateway needs: decode a request, encode a response or an error. Bounded:
 * a PDU over {@link MAX_RDCLEANPATH_BYTES} is refused before it is read.
 */
import { BadInputError } from '../errors.ts';

export const RDCLEANPATH_VERSION = 3390;
export const GENERAL_ERROR_CODE = 1;
export const NEGOTIATION_ERROR_CODE = 2;
/** Longest request accepted (a request is an X.224 request and a few strings). */
export const MAX_RDCLEANPATH_BYTES = 64 * 1024;

export interface RDCleanPathRequest {
  destination: string;
  proxyAuth: string;
  preconnectionBlob?: string;
  x224ConnectionRequest: Buffer;
}

export interface RDCleanPathResponse {
  x224ConnectionConfirm: Buffer;
  serverCertChain: Buffer[];
  serverAddr: string;
}

export interface RDCleanPathError {
  errorCode: number;
  httpStatusCode?: number;
  wsaLastError?: number;
  tlsAlertCode?: number;
  /** The server's X.224 confirm, for negotiation errors. */
  x224ConnectionConfirm?: Buffer;
}

interface Tlv {
  tag: number;
  value: Buffer;
}

/** Decodes a client's request; throws BadInputError naming what is wrong. */
export function decodeRDCleanPathRequest(bytes: Uint8Array): RDCleanPathRequest {
  if (bytes.length > MAX_RDCLEANPATH_BYTES) throw new BadInputError(`RDCleanPath request of ${bytes.length} bytes is over the ${MAX_RDCLEANPATH_BYTES}-byte limit`);
  const outer = _readOne(Buffer.from(bytes), 0);
  if (outer.tlv.tag !== 0x30 || outer.end !== bytes.length) throw new BadInputError('RDCleanPath request is not one DER SEQUENCE');
  const fields = new Map<number, Buffer>();
  for (const field of _readAll(outer.tlv.value)) {
    if ((field.tag & 0xe0) !== 0xa0) throw new BadInputError(`RDCleanPath request has an unexpected tag 0x${field.tag.toString(16)}`);
    const inner = _readAll(field.value);
    if (inner.length !== 1) throw new BadInputError('RDCleanPath request has a malformed explicit field');
    fields.set(field.tag & 0x1f, _expect(inner[0]!, field.tag & 0x1f));
  }
  const version = fields.get(0);
  if (!version || _integer(version) !== RDCLEANPATH_VERSION) throw new BadInputError(`RDCleanPath request has version ${version ? _integer(version) : 'none'}; expected ${RDCLEANPATH_VERSION}`);
  const destination = fields.get(2)?.toString('utf8');
  const x224 = fields.get(6);
  if (!destination) throw new BadInputError('RDCleanPath request names no destination');
  if (!x224) throw new BadInputError('RDCleanPath request carries no X.224 connection request');
  const pcb = fields.get(5)?.toString('utf8');
  return { destination, proxyAuth: fields.get(3)?.toString('utf8') ?? '', ...(pcb ? { preconnectionBlob: pcb } : {}), x224ConnectionRequest: Buffer.from(x224) };
}

/** Encodes the gateway's success answer. */
export function encodeRDCleanPathResponse(response: RDCleanPathResponse): Buffer {
  return _tlv(0x30, Buffer.concat([
    _explicit(0, _int(RDCLEANPATH_VERSION)),
    _explicit(6, _tlv(0x04, response.x224ConnectionConfirm)),
    _explicit(7, _tlv(0x30, Buffer.concat(response.serverCertChain.map((cert) => _tlv(0x04, cert))))),
    _explicit(9, _tlv(0x0c, Buffer.from(response.serverAddr, 'utf8'))),
  ]));
}

/** Encodes the gateway's error answer. */
export function encodeRDCleanPathError(error: RDCleanPathError): Buffer {
  const err = _tlv(0x30, Buffer.concat([
    _explicit(0, _int(error.errorCode)),
    ...(error.httpStatusCode !== undefined ? [_explicit(1, _int(error.httpStatusCode))] : []),
    ...(error.wsaLastError !== undefined ? [_explicit(2, _int(error.wsaLastError))] : []),
    ...(error.tlsAlertCode !== undefined ? [_explicit(3, _int(error.tlsAlertCode))] : []),
  ]));
  return _tlv(0x30, Buffer.concat([
    _explicit(0, _int(RDCLEANPATH_VERSION)),
    _explicit(1, err),
    ...(error.x224ConnectionConfirm ? [_explicit(6, _tlv(0x04, error.x224ConnectionConfirm))] : []),
  ]));
}

/** The primitive inside an explicit field, checked against the type the field must have. */
function _expect(inner: Tlv, field: number): Buffer {
  const wanted: Record<number, number> = { 0: 0x02, 2: 0x0c, 3: 0x0c, 4: 0x0c, 5: 0x0c, 6: 0x04, 9: 0x0c };
  const tag = wanted[field];
  if (tag !== undefined && inner.tag !== tag) throw new BadInputError(`RDCleanPath field [${field}] has tag 0x${inner.tag.toString(16)}; expected 0x${tag.toString(16)}`);
  return inner.value;
}

function _integer(value: Buffer): number {
  if (value.length === 0 || value.length > 6) throw new BadInputError('RDCleanPath INTEGER out of range');
  return value.readUIntBE(0, value.length);
}

function _readAll(buffer: Buffer): Tlv[] {
  const out: Tlv[] = [];
  let offset = 0;
  while (offset < buffer.length) {
    const { tlv, end } = _readOne(buffer, offset);
    out.push(tlv);
    offset = end;
  }
  return out;
}

function _readOne(buffer: Buffer, offset: number): { tlv: Tlv; end: number } {
  if (offset + 2 > buffer.length) throw new BadInputError('RDCleanPath PDU is truncated');
  const tag = buffer[offset]!;
  let length = buffer[offset + 1]!;
  let start = offset + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0 || count > 3 || start + count > buffer.length) throw new BadInputError('RDCleanPath PDU has a bad DER length');
    length = buffer.readUIntBE(start, count);
    start += count;
  }
  const end = start + length;
  if (end > buffer.length) throw new BadInputError('RDCleanPath PDU is truncated');
  return { tlv: { tag, value: buffer.subarray(start, end) }, end };
}

function _length(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function _tlv(tag: number, value: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), _length(value.length), value]);
}

function _explicit(field: number, inner: Buffer): Buffer {
  return _tlv(0xa0 | field, inner);
}

function _int(value: number): Buffer {
  const bytes: number[] = [];
  for (let n = value; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  if (bytes.length === 0 || bytes[0]! & 0x80) bytes.unshift(0);
  return _tlv(0x02, Buffer.from(bytes));
}
