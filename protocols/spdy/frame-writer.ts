/**
 * SPDY/3.1 frames for the sending side (the test API server's exec over SPDY): data
 * frames, and the control frames a remote-command server answers with. Header blocks go
 * through the connection's one HeaderBlockWriter, in order.
 */
import { controlTypes, flagFin } from './frame-reader.ts';
import type { HeaderBlockWriter, SpdyHeaders } from './header-block.ts';

/** The 8-byte frame head: the first word (stream id, or control bit, version and type), flags and length. */
function head(first: number, flags: number, length: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(first >>> 0, 0);
  b.writeUInt32BE((((flags & 0xff) << 24) | (length & 0xffffff)) >>> 0, 4);
  return b;
}

export function dataFrame(streamId: number, data: Buffer, fin = false): Buffer {
  return Buffer.concat([head(streamId & 0x7fffffff, fin ? flagFin : 0, data.length), data]);
}

export function controlFrame(type: number, flags: number, body: Buffer): Buffer {
  return Buffer.concat([head(((0x8000 | 3) << 16) | type, flags, body.length), body]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

export function synStream(writer: HeaderBlockWriter, streamId: number, headers: SpdyHeaders, fin = false): Buffer {
  return controlFrame(controlTypes.synStream, fin ? flagFin : 0, Buffer.concat([u32(streamId), u32(0), Buffer.from([0, 0]), writer.write(headers)]));
}

export function synReply(writer: HeaderBlockWriter, streamId: number, headers: SpdyHeaders, fin = false): Buffer {
  return controlFrame(controlTypes.synReply, fin ? flagFin : 0, Buffer.concat([u32(streamId), writer.write(headers)]));
}

export function windowUpdate(streamId: number, delta: number): Buffer {
  return controlFrame(controlTypes.windowUpdate, 0, Buffer.concat([u32(streamId), u32(delta)]));
}

export function goAway(lastStreamId: number, status = 0): Buffer {
  return controlFrame(controlTypes.goAway, 0, Buffer.concat([u32(lastStreamId), u32(status)]));
}

export function ping(id: number): Buffer {
  return controlFrame(controlTypes.ping, 0, u32(id));
}
