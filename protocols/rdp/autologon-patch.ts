/**
 * Sets INFO_AUTOLOGON in the client's Client Info PDU ([MS-RDPBCGR] 2.2.1.11) as it
 * passes the gateway, for hosts that negotiated plain TLS (PROTOCOL_SSL).
 *
 * Without NLA the password travels in the Client Info PDU, and servers like xrdp use
 * it only when that flag is set; ironrdp-wasm leaves it clear, and xrdp then shows its
 * own login screen. Inside TLS with no RDP encryption the PDU is plain:
 *
 * ```
 * TPKT    03 00 LEN(BE16)
 * X.224   02 F0 80                          data TPDU
 * MCS     64 INIT(2) CHAN(2) 70 LEN(PER 1|2) SendDataRequest
 * SEC     FLAGS(LE16, SEC_INFO_PKT 0x0040) FLAGSHI(LE16)
 * INFO    CODEPAGE(LE32) FLAGS(LE32) ...    flags |= INFO_AUTOLOGON (0x8)
 * ```
 *
 * The patcher reads whole TPKT frames until it has patched that PDU (or met something
 * that is not a TPKT frame), then passes bytes through untouched.
 */
import { BadInputError } from '../errors.ts';

const SEC_INFO_PKT = 0x0040;
const INFO_AUTOLOGON = 0x0000_0008;

/** Client-to-server bytes in, the same bytes out with INFO_AUTOLOGON set once. */
export class AutologonPatcher {
  #pending = Buffer.alloc(0);
  #done = false;

  /** True once the Client Info PDU went by (patched) or the stream stopped looking like slow-path TPKT. */
  get done(): boolean {
    return this.#done;
  }

  /** Returns what may be forwarded now; holds back an incomplete frame. */
  push(chunk: Uint8Array): Buffer {
    if (this.#done) return Buffer.from(chunk);
    this.#pending = this.#pending.length ? Buffer.concat([this.#pending, chunk]) : Buffer.from(chunk);
    const out: Buffer[] = [];
    while (!this.#done && this.#pending.length >= 4) {
      if (this.#pending[0] !== 0x03) {
        this.#done = true;
        break;
      }
      const length = this.#pending.readUInt16BE(2);
      if (length < 7) throw new BadInputError(`TPKT frame of ${length} bytes is too short`);
      if (this.#pending.length < length) break;
      const frame = Buffer.from(this.#pending.subarray(0, length));
      this.#pending = this.#pending.subarray(length);
      if (_patchInfoPdu(frame)) this.#done = true;
      out.push(frame);
    }
    if (this.#done) {
      out.push(this.#pending);
      this.#pending = Buffer.alloc(0);
    }
    return Buffer.concat(out);
  }
}

/** Sets INFO_AUTOLOGON when `frame` is the Client Info PDU; returns whether it was. */
function _patchInfoPdu(frame: Buffer): boolean {
  if (frame.length < 8 || frame[4] !== 0x02 || frame[5] !== 0xf0 || frame[6] !== 0x80) return false;
  if (frame[7]! >> 2 !== 25) return false; // MCS SendDataRequest
  let offset = 8 + 2 + 2 + 1;
  if (offset >= frame.length) return false;
  offset += frame[offset]! & 0x80 ? 2 : 1;
  if (offset + 4 + 8 > frame.length) return false;
  if (!(frame.readUInt16LE(offset) & SEC_INFO_PKT)) return false;
  const flagsAt = offset + 4 + 4;
  frame.writeUInt32LE((frame.readUInt32LE(flagsAt) | INFO_AUTOLOGON) >>> 0, flagsAt);
  return true;
}
