/**
 * The first packet of a PostgreSQL connection (protocol 3.0, "Start-up" in the docs):
 *
 * ```
 * int32 length (including itself) | int32 code | body
 *   code 196608 (3.0)   StartupMessage   body: (cstring name, cstring value)* then 0
 *   code 80877102       CancelRequest    body: int32 process id, int32 secret key (length 16)
 *   code 80877103       SSLRequest       no body (length 8)
 *   code 80877104       GSSENCRequest    no body (length 8)
 * ```
 *
 * Untrusted bytes: the length is bounded like the server's own (10,000), every name
 * and value must be terminated and UTF-8, names unique, and nothing may follow the
 * final terminator. Errors are {@link PostgresProtocolError} with a message fit for
 * the client.
 */
import type { Duplex } from 'node:stream';
import { PosternError } from '../errors.ts';

export const protocolVersion3 = 196_608;
export const cancelRequestCode = 80_877_102;
export const sslRequestCode = 80_877_103;
export const gssEncRequestCode = 80_877_104;
/** PostgreSQL's MAX_STARTUP_PACKET_LENGTH. */
export const maxStartupPacketBytes = 10_000;

export class PostgresProtocolError extends PosternError {
  constructor(message: string) {
    super('PST_PG_PROTOCOL', message);
  }
}

export type StartupPacket =
  | { kind: 'startup'; parameters: Record<string, string> }
  | { kind: 'cancel'; processId: number; secretKey: number }
  | { kind: 'ssl' }
  | { kind: 'gssenc' };

/** Parses one whole start-up packet (length prefix included). */
export function parseStartupPacket(packet: Buffer): StartupPacket {
  if (packet.length < 8) throw new PostgresProtocolError(`start-up packet too short: ${packet.length} bytes, at least 8 expected`);
  const length = packet.readUInt32BE(0);
  if (length !== packet.length) throw new PostgresProtocolError(`start-up packet length ${length} does not match the ${packet.length} bytes given`);
  if (length > maxStartupPacketBytes) throw new PostgresProtocolError(`start-up packet of ${length} bytes is longer than ${maxStartupPacketBytes}`);
  const code = packet.readUInt32BE(4);
  switch (code) {
    case protocolVersion3:
      return { kind: 'startup', parameters: _parameters(packet.subarray(8)) };
    case cancelRequestCode:
      if (length !== 16) throw new PostgresProtocolError(`CancelRequest must be 16 bytes, got ${length}`);
      return { kind: 'cancel', processId: packet.readInt32BE(8), secretKey: packet.readInt32BE(12) };
    case sslRequestCode:
    case gssEncRequestCode:
      if (length !== 8) throw new PostgresProtocolError(`${code === sslRequestCode ? 'SSLRequest' : 'GSSENCRequest'} must be 8 bytes, got ${length}`);
      return { kind: code === sslRequestCode ? 'ssl' : 'gssenc' };
    default: {
      const major = code >>> 16;
      if (major >= 1 && major <= 3) throw new PostgresProtocolError(`unsupported frontend protocol ${major}.${code & 0xffff}: only 3.0 is served`);
      throw new PostgresProtocolError(`not a PostgreSQL start-up packet (code ${code})`);
    }
  }
}

function _parameters(body: Buffer): Record<string, string> {
  const parameters: Record<string, string> = Object.create(null) as Record<string, string>;
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let offset = 0;
  for (;;) {
    if (offset >= body.length) throw new PostgresProtocolError('StartupMessage is not terminated by a zero byte');
    if (body[offset] === 0) break;
    const nameEnd = body.indexOf(0, offset);
    if (nameEnd < 0) throw new PostgresProtocolError('StartupMessage parameter name is not terminated');
    const valueEnd = body.indexOf(0, nameEnd + 1);
    if (valueEnd < 0) throw new PostgresProtocolError('StartupMessage parameter value is not terminated');
    let name: string;
    let value: string;
    try {
      name = decoder.decode(body.subarray(offset, nameEnd));
      value = decoder.decode(body.subarray(nameEnd + 1, valueEnd));
    } catch {
      throw new PostgresProtocolError('StartupMessage parameters must be UTF-8');
    }
    if (Object.hasOwn(parameters, name)) throw new PostgresProtocolError(`StartupMessage names parameter "${name.slice(0, 64)}" twice`);
    parameters[name] = value;
    offset = valueEnd + 1;
  }
  if (offset !== body.length - 1) throw new PostgresProtocolError('StartupMessage has bytes after its final terminator');
  if (parameters.user === undefined || parameters.user === '') throw new PostgresProtocolError('StartupMessage names no user');
  return parameters;
}

/** Encodes a StartupMessage (protocol 3.0). */
export function encodeStartupMessage(parameters: Record<string, string>): Buffer {
  const parts = Object.entries(parameters).flatMap(([name, value]) => [Buffer.from(name), Buffer.from([0]), Buffer.from(value), Buffer.from([0])]);
  const body = Buffer.concat([...parts, Buffer.from([0])]);
  const head = Buffer.alloc(8);
  head.writeUInt32BE(body.length + 8, 0);
  head.writeUInt32BE(protocolVersion3, 4);
  return Buffer.concat([head, body]);
}

/** Encodes a CancelRequest. */
export function encodeCancelRequest(processId: number, secretKey: number): Buffer {
  const packet = Buffer.alloc(16);
  packet.writeUInt32BE(16, 0);
  packet.writeUInt32BE(cancelRequestCode, 4);
  packet.writeInt32BE(processId, 8);
  packet.writeInt32BE(secretKey, 12);
  return packet;
}

/**
 * Reads exactly one start-up packet from `socket`, then pauses it with any further
 * bytes put back. Rejects on a bad length, a close or `timeoutMs` without a packet.
 */
export function readStartupPacket(socket: Duplex, timeoutMs: number): Promise<{ packet: Buffer; parsed: StartupPacket }> {
  return new Promise((resolve, reject) => {
    let buffered: Buffer = Buffer.alloc(0);
    const finish = (error: Error | undefined, packet?: Buffer): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onEnd);
      socket.pause();
      if (error) return reject(error);
      const rest = buffered.subarray(packet!.length);
      if (rest.length > 0) socket.unshift(rest);
      try {
        resolve({ packet: packet!, parsed: parseStartupPacket(packet!) });
      } catch (parseError) {
        reject(parseError as Error);
      }
    };
    const onData = (chunk: Buffer): void => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      if (buffered.length < 4) return;
      const length = buffered.readUInt32BE(0);
      if (length < 8 || length > maxStartupPacketBytes) return finish(new PostgresProtocolError(`invalid start-up packet length ${length} (8 to ${maxStartupPacketBytes} bytes expected)`));
      if (buffered.length >= length) finish(undefined, Buffer.from(buffered.subarray(0, length)));
    };
    const onEnd = (): void => finish(new PostgresProtocolError('the client closed the connection before its start-up packet'));
    const timer = setTimeout(() => finish(new PostgresProtocolError(`no start-up packet within ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.once('error', onEnd);
    socket.resume();
  });
}
