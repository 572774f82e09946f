/**
 * Keeps the clipboard channel's start in the order ironrdp-wasm can follow
 * ([MS-RDPECLIP] 1.3.2.1), in the host-to-client bytes as the gateway sees them:
 *
 * ```
 * host  -> Clipboard Capabilities, Monitor Ready
 * client-> Capabilities, Temporary Directory, Format List
 * host  -> Format List Response          the client's channel is Ready only now
 * host  -> Format List                   (what the session's clipboard holds)
 * ```
 *
 * xrdp 0.9's chansrv sometimes sends its own Format List before its Format List
 * Response (seen on a reconnect to a session whose X clipboard has an owner). The wasm
 * then answers that list while still starting, asks for the data in a state it refuses,
 * and its clipboard stops for the session: nothing crosses either way. So a Format List
 * that comes between Monitor Ready and the first Format List Response is held back and
 * passed on right after that response. Everything else passes in order, untouched.
 *
 * ```
 * slow path  03 00 LEN(BE16) 02 F0 80 68 INIT(2) CHAN(2) 70 LEN(PER 1|2)   MCS SendDataIndication
 *            CHANNEL_PDU_HEADER length(LE32) flags(LE32, FIRST 0x1 | LAST 0x2)
 *            CLIPRDR_HEADER msgType(LE16) msgFlags(LE16) dataLen(LE32)
 * fast path  ACTION(2 bits)=0 LEN(1|2 bytes, 15 bits)                       (graphics; passed)
 * before the first TPKT (NLA hosts): CredSSP DER 30 LEN ..., Early User Authorization Result (4 bytes)
 * ```
 *
 * The framing runs only from the start of the session until that first response (or
 * until {@link MAX_WATCHED_BYTES} passed without a Monitor Ready: a host without the
 * channel), then every chunk passes as it came, at no cost.
 */

/** Host bytes watched for the clipboard channel's start before giving up on it. */
export const MAX_WATCHED_BYTES = 16 * 1024 * 1024;
/** Format Lists held back at most; more, and the hold is released in order. */
const MAX_HELD = 8;
const CB_MONITOR_READY = 0x0001;
const CB_FORMAT_LIST = 0x0002;
const CB_FORMAT_LIST_RESPONSE = 0x0003;

/** Host-to-client bytes in, the same bytes out, with an early Format List moved after the response. */
export class CliprdrStartOrder {
  #pending = Buffer.alloc(0);
  #watched = 0;
  #monitorReady = false;
  #held: Buffer[] = [];
  #done = false;
  #sawTpkt = false;

  /** True once the channel has started (or was given up on): bytes pass untouched. */
  get done(): boolean {
    return this.#done;
  }

  /** Returns the pieces to forward now, in order. */
  push(chunk: Buffer): Buffer[] {
    if (this.#done) return [chunk];
    this.#watched += chunk.length;
    const bytes = this.#pending.length ? Buffer.concat([this.#pending, chunk]) : chunk;
    const out: Buffer[] = [];
    let from = 0; // start of the bytes not yet forwarded
    let at = 0;
    while (!this.#done) {
      const length = _frameLength(bytes, at, this.#sawTpkt);
      if (length === undefined) break;
      if (length === 0) {
        this.#finish(out);
        break;
      }
      if (at + length > bytes.length) break;
      const frame = bytes.subarray(at, at + length);
      if (bytes[at] === 0x03) this.#sawTpkt = true;
      const type = bytes[at] === 0x03 ? _cliprdrType(frame) : undefined;
      if (type === CB_MONITOR_READY) this.#monitorReady = true;
      if (type === CB_FORMAT_LIST && this.#monitorReady) {
        if (at > from) out.push(bytes.subarray(from, at));
        this.#held.push(Buffer.from(frame));
        from = at + length;
        if (this.#held.length > MAX_HELD) this.#finish(out);
      } else if (type === CB_FORMAT_LIST_RESPONSE && this.#monitorReady) {
        out.push(bytes.subarray(from, at + length));
        from = at + length;
        this.#finish(out);
      }
      at += length;
    }
    if (this.#done) {
      out.push(bytes.subarray(from));
      this.#pending = Buffer.alloc(0);
      return out.filter((piece) => piece.length > 0);
    }
    // Forward the whole frames; keep only a partial one.
    if (at > from) out.push(bytes.subarray(from, at));
    this.#pending = Buffer.from(bytes.subarray(at));
    if (!this.#monitorReady && this.#watched > MAX_WATCHED_BYTES) {
      this.#finish(out);
      out.push(this.#pending);
      this.#pending = Buffer.alloc(0);
    }
    return out.filter((piece) => piece.length > 0);
  }

  #finish(out: Buffer[]): void {
    out.push(...this.#held);
    this.#held = [];
    this.#done = true;
  }
}

/**
 * Bytes in the frame at `at`; undefined when its header is incomplete; 0 when it is no
 * frame we know. Before the first TPKT frame an NLA host sends CredSSP (DER, 30 LEN ...)
 * and, for HYBRID_EX, the 4-byte Early User Authorization Result.
 */
function _frameLength(b: Buffer, at: number, sawTpkt: boolean): number | undefined {
  if (at >= b.length) return undefined;
  const first = b[at]!;
  if (first === 0x03) {
    if (b.length < at + 4) return undefined;
    const length = b.readUInt16BE(at + 2);
    return length >= 7 ? length : 0;
  }
  if (!sawTpkt) {
    if (first !== 0x30) return 4;
    if (b.length < at + 2) return undefined;
    const short = b[at + 1]!;
    if (short < 0x80) return 2 + short;
    const bytes = short & 0x7f;
    if (bytes < 1 || bytes > 3) return 0;
    if (b.length < at + 2 + bytes) return undefined;
    return 2 + bytes + b.readUIntBE(at + 2, bytes);
  }
  if ((first & 0x03) === 0) {
    if (b.length < at + 2) return undefined;
    if (!(b[at + 1]! & 0x80)) return b[at + 1]! >= 2 ? b[at + 1]! : 0;
    if (b.length < at + 3) return undefined;
    const length = ((b[at + 1]! & 0x7f) << 8) | b[at + 2]!;
    return length >= 3 ? length : 0;
  }
  return 0;
}

/** The CLIPRDR msgType of a whole (FIRST|LAST) channel message in a slow-path frame, else undefined. */
function _cliprdrType(frame: Buffer): number | undefined {
  if (frame.length < 16 || frame[4] !== 0x02 || frame[5] !== 0xf0 || frame[6] !== 0x80 || frame[7] !== 0x68) return undefined;
  const wide = (frame[13]! & 0x80) !== 0;
  const start = 13 + (wide ? 2 : 1);
  const userLength = wide ? ((frame[13]! & 0x3f) << 8) | frame[14]! : frame[13]!;
  if (start + userLength !== frame.length || userLength < 16) return undefined;
  const length = frame.readUInt32LE(start);
  const flags = frame.readUInt32LE(start + 4);
  if ((flags & 0x3) !== 0x3 || length !== userLength - 8) return undefined;
  const type = frame.readUInt16LE(start + 8);
  // xrdp pads its messages with 4 zero bytes past dataLen.
  if (frame.readUInt32LE(start + 12) + 8 > length) return undefined;
  return type;
}
