/**
 * A strict, incremental reader of one direction of a SPDY/3.1 connection, for observers
 * that see the bytes pass (the Kubernetes exec recorder over `Upgrade: SPDY/3.1`).
 *
 * ```
 * control: 1 | version(15)=3 | type(16)   flags(8) | length(24)   data
 * data:    0 | stream id(31)              flags(8) | length(24)   data     (flag 0x01 FIN)
 * SYN_STREAM(1): stream id(31) assoc id(31) pri(3) unused(5) slot(8) header block
 * SYN_REPLY(2), HEADERS(8): stream id(31) header block
 * RST_STREAM(3): stream id, status   SETTINGS(4)   PING(6)   GOAWAY(7)   WINDOW_UPDATE(9)
 * ```
 *
 * Header blocks are decoded in order with the direction's HeaderBlockReader. Anything
 * off the spec is an error and the reader stops for good: another version, a control
 * type SPDY/3.1 does not define, a frame shorter than its fixed fields, stream id 0 on a
 * stream frame, frames over `maxFrameBytes`, a header block that does not decode.
 */
import { SpdyProtocolError } from './errors.ts';
import { HeaderBlockReader, type SpdyHeaders } from './header-block.ts';
import { ChunkGather } from '../chunk-gather.ts';

export const controlTypes = { synStream: 1, synReply: 2, rstStream: 3, settings: 4, ping: 6, goAway: 7, headers: 8, windowUpdate: 9 } as const;
export const flagFin = 0x01;

export type SpdyFrame =
  | { kind: 'data'; streamId: number; fin: boolean; data: Buffer }
  | { kind: 'syn_stream'; streamId: number; fin: boolean; headers: SpdyHeaders }
  | { kind: 'syn_reply' | 'headers'; streamId: number; fin: boolean; headers: SpdyHeaders }
  | { kind: 'rst_stream'; streamId: number; status: number }
  | { kind: 'window_update'; streamId: number; delta: number }
  | { kind: 'settings' | 'ping' | 'goaway'; data: Buffer };

/** Fixed bytes before the header block or payload, per control type. */
const minimum: Record<number, number> = { 1: 10, 2: 4, 3: 8, 4: 4, 6: 4, 7: 8, 8: 4, 9: 8 };
/** Types whose frames are exactly their fixed fields. */
const fixedLength = new Set([3, 6, 7, 9]);

export class SpdyFrameReader {
  readonly #max: number;
  readonly #headers = new HeaderBlockReader();
  /** Bytes received and not yet read (a frame header is 8 bytes). */
  readonly #gather = new ChunkGather(8);
  #failed: SpdyProtocolError | undefined;

  /** `maxFrameBytes`: the largest frame payload accepted (default and SPDY's own limit: 16 MiB - 1). */
  constructor(maxFrameBytes = 0xffffff) {
    this.#max = maxFrameBytes;
  }

  get failed(): SpdyProtocolError | undefined {
    return this.#failed;
  }

  /**
   * Reads `chunk` and returns the frames it completed; the first violation throws, then
   * every call does. The chunk may be kept until its frame is complete: the caller must
   * not reuse it (socket chunks are fresh).
   */
  push(chunk: Buffer): SpdyFrame[] {
    if (this.#failed) throw this.#failed;
    let pending = this.#gather.take(chunk);
    if (pending === undefined) return [];
    this.#gather.need = 8;
    const out: SpdyFrame[] = [];
    try {
      while (pending.length >= 8) {
        const length = pending.readUIntBE(5, 3);
        if (length > this.#max) throw new SpdyProtocolError(`a frame of ${length} bytes, over the ${this.#max}-byte limit`);
        if (pending.length < 8 + length) {
          this.#gather.need = 8 + length;
          break;
        }
        out.push(this.#frame(pending.subarray(0, 8 + length)));
        pending = pending.subarray(8 + length);
      }
    } catch (error) {
      this.#failed = error instanceof SpdyProtocolError ? error : new SpdyProtocolError((error as Error).message);
      throw this.#failed;
    }
    this.#gather.keep(pending);
    return out;
  }

  #frame(frame: Buffer): SpdyFrame {
    const flags = frame[4]!;
    const body = frame.subarray(8);
    if ((frame[0]! & 0x80) === 0) {
      const streamId = frame.readUInt32BE(0) & 0x7fffffff;
      if (streamId === 0) throw new SpdyProtocolError('a data frame on stream 0');
      if (flags & ~flagFin) throw new SpdyProtocolError(`data frame flags 0x${flags.toString(16)}`);
      return { kind: 'data', streamId, fin: (flags & flagFin) !== 0, data: Buffer.from(body) };
    }
    const version = frame.readUInt16BE(0) & 0x7fff;
    if (version !== 3) throw new SpdyProtocolError(`SPDY version ${version} (3 expected)`);
    const type = frame.readUInt16BE(2);
    const least = minimum[type];
    if (least === undefined) throw new SpdyProtocolError(`control frame type ${type}, which SPDY/3.1 does not define`);
    if (body.length < least) throw new SpdyProtocolError(`a control frame of type ${type} with ${body.length} bytes (${least} at least)`);
    const exact = type === controlTypes.settings ? 4 + 8 * body.readUInt32BE(0) : fixedLength.has(type) ? least : body.length;
    if (body.length !== exact) throw new SpdyProtocolError(`a control frame of type ${type} with ${body.length} bytes (${exact} expected)`);
    const streamId = type === controlTypes.settings || type === controlTypes.ping ? 0 : body.readUInt32BE(0) & 0x7fffffff;
    const fin = (flags & flagFin) !== 0;
    const needsStream = type === 1 || type === 2 || type === 3 || type === 8;
    if (needsStream && streamId === 0) throw new SpdyProtocolError(`a control frame of type ${type} on stream 0`);
    switch (type) {
      case controlTypes.synStream:
        return { kind: 'syn_stream', streamId, fin, headers: this.#headers.read(body.subarray(10)) };
      case controlTypes.synReply:
        return { kind: 'syn_reply', streamId, fin, headers: this.#headers.read(body.subarray(4)) };
      case controlTypes.headers:
        return { kind: 'headers', streamId, fin, headers: this.#headers.read(body.subarray(4)) };
      case controlTypes.rstStream:
        return { kind: 'rst_stream', streamId, status: body.readUInt32BE(4) };
      case controlTypes.windowUpdate:
        return { kind: 'window_update', streamId, delta: body.readUInt32BE(4) & 0x7fffffff };
      case controlTypes.settings:
        return { kind: 'settings', data: Buffer.from(body) };
      case controlTypes.ping:
        return { kind: 'ping', data: Buffer.from(body) };
      default:
        return { kind: 'goaway', data: Buffer.from(body) };
    }
  }
}
