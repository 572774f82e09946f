/**
 * A strict, incremental reader of one direction of a WebSocket connection (RFC 6455),
 * for observers that see the bytes pass (the Kubernetes exec recorder) and must never
 * change them: chunks go in as they arrive, whole messages come out (fragments joined,
 * masks removed, control frames in between passed on as they come).
 *
 * ```
 * byte 0  FIN RSV1 RSV2 RSV3 opcode(4)
 * byte 1  MASK len(7)            len 126: 16-bit length follows; 127: 64-bit (top bit 0)
 *         [mask key, 4 bytes]    set on every client frame, never on a server's
 *         payload
 * ```
 *
 * Anything the RFC forbids without a negotiated extension is an error and the reader
 * stops for good: reserved bits set, unknown opcodes, fragmented or long control frames,
 * a continuation with no message open, a data frame inside an open message, a length
 * not in its shortest form, a mask on the wrong side, and messages over `maxMessageBytes`.
 */
import { WebSocketProtocolError } from './errors.ts';
import { ChunkGather } from '../chunk-gather.ts';

export const opcodes = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;

export interface WebSocketMessage {
  opcode: number;
  payload: Buffer;
}

export interface FrameReaderOptions {
  /** True for the client's direction (frames must be masked), false for the server's (must not be). */
  masked: boolean;
  /** Largest whole message accepted. Default 16 MiB. */
  maxMessageBytes?: number;
}

const defaultMaxMessageBytes = 16 * 1024 * 1024;

export class WebSocketFrameReader {
  readonly #masked: boolean;
  readonly #max: number;
  #pending: Buffer = Buffer.alloc(0);
  /** Bytes received and not yet read. */
  readonly #gather = new ChunkGather();
  /** The data message being assembled from fragments. */
  #open: { opcode: number; parts: Buffer[]; bytes: number } | undefined;
  #failed: WebSocketProtocolError | undefined;

  constructor(options: FrameReaderOptions) {
    this.#masked = options.masked;
    this.#max = options.maxMessageBytes ?? defaultMaxMessageBytes;
  }

  /** The error that stopped the reader, if one did. */
  get failed(): WebSocketProtocolError | undefined {
    return this.#failed;
  }

  /**
   * Reads `chunk` and returns the messages it completed. Throws a WebSocketProtocolError
   * on the first violation; after it, every call throws the same error. The chunk may be
   * kept until its frame is complete: the caller must not reuse it (socket chunks are fresh).
   */
  push(chunk: Buffer): WebSocketMessage[] {
    if (this.#failed) throw this.#failed;
    const joined = this.#gather.take(chunk);
    if (joined === undefined) return [];
    this.#pending = joined;
    const out: WebSocketMessage[] = [];
    try {
      for (;;) {
        const used = this.#frame(out);
        if (used <= 0) {
          this.#gather.need = -used;
          break;
        }
        this.#pending = this.#pending.subarray(used);
      }
    } catch (error) {
      this.#failed = error instanceof WebSocketProtocolError ? error : new WebSocketProtocolError((error as Error).message);
      this.#pending = Buffer.alloc(0);
      this.#gather.clear();
      this.#open = undefined;
      throw this.#failed;
    }
    this.#gather.keep(this.#pending);
    this.#pending = Buffer.alloc(0);
    return out;
  }

  /** Reads one frame from the pending bytes: the bytes used, or minus the bytes needed when not all there yet. */
  #frame(out: WebSocketMessage[]): number {
    const data = this.#pending;
    if (data.length < 2) return -2;
    const b0 = data[0]!;
    const b1 = data[1]!;
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    if ((b0 & 0x70) !== 0) throw new WebSocketProtocolError(`reserved bits 0x${(b0 & 0x70).toString(16)} set with no extension negotiated`);
    const control = (opcode & 0x08) !== 0;
    if (![0x0, 0x1, 0x2, 0x8, 0x9, 0xa].includes(opcode)) throw new WebSocketProtocolError(`unknown opcode 0x${opcode.toString(16)}`);
    const masked = (b1 & 0x80) !== 0;
    if (masked !== this.#masked) throw new WebSocketProtocolError(this.#masked ? 'a client frame without a mask' : 'a server frame with a mask');
    let length = b1 & 0x7f;
    let offset = 2;
    if (length === 126) {
      if (data.length < 4) return -4;
      length = data.readUInt16BE(2);
      if (length < 126) throw new WebSocketProtocolError(`a 16-bit length of ${length} (shorter form required)`);
      offset = 4;
    } else if (length === 127) {
      if (data.length < 10) return -10;
      const big = data.readBigUInt64BE(2);
      if (big >> 63n) throw new WebSocketProtocolError('a 64-bit length with its top bit set');
      if (big <= 0xffffn) throw new WebSocketProtocolError(`a 64-bit length of ${big} (shorter form required)`);
      if (big > BigInt(this.#max)) throw new WebSocketProtocolError(`a frame of ${big} bytes, over the ${this.#max}-byte limit`);
      length = Number(big);
      offset = 10;
    }
    if (control && (!fin || length > 125)) throw new WebSocketProtocolError(!fin ? 'a fragmented control frame' : `a control frame of ${length} bytes (125 at most)`);
    if (!control) {
      if (opcode === opcodes.continuation && !this.#open) throw new WebSocketProtocolError('a continuation frame with no message open');
      if (opcode !== opcodes.continuation && this.#open) throw new WebSocketProtocolError('a new data frame inside an unfinished message');
      if ((this.#open?.bytes ?? 0) + length > this.#max) throw new WebSocketProtocolError(`a message over the ${this.#max}-byte limit`);
    }
    const keyAt = offset;
    if (masked) offset += 4;
    if (data.length < offset + length) return -(offset + length);
    const payload = Buffer.from(data.subarray(offset, offset + length));
    if (masked) for (let i = 0; i < payload.length; i++) payload[i]! ^= data[keyAt + (i & 3)]!;
    if (control) {
      out.push({ opcode, payload });
    } else {
      const open = this.#open ?? { opcode, parts: [], bytes: 0 };
      open.parts.push(payload);
      open.bytes += payload.length;
      if (fin) {
        this.#open = undefined;
        out.push({ opcode: open.opcode, payload: open.parts.length === 1 ? open.parts[0]! : Buffer.concat(open.parts, open.bytes) });
      } else {
        this.#open = open;
      }
    }
    return offset + length;
  }
}
