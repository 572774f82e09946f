/**
 * Frames the bytes ironrdp-wasm sends to the RDP host (inside TLS, as the gateway sees
 * them) and lets the patches rewrite whole PDUs on the way:
 *
 * ```
 * [CredSSP TSRequests]   30 LEN(DER) ...          NLA hosts only, before any TPKT
 * slow-path PDUs         03 00 LEN(BE16) ...      patched: MCS Connect Initial (colour-depth-patch.ts),
 *                                                          Client Info (autologon-patch.ts),
 *                                                          Confirm Active (remotefx-patch.ts)
 * fast-path input        ACTION(2 bits)=0 LEN(1|2 bytes, 15 bits) ...   passed through
 * ```
 *
 * Framing goes on for the whole session, because a host may deactivate and reactivate
 * the session (a new Demand Active, a new Confirm Active). The first byte that fits none
 * of these ends the framing: from then on bytes pass untouched. Frames are bounded by
 * their 15/16-bit lengths (DER by {@link MAX_DER_FRAME}), so at most one frame is held back.
 */
import { BadInputError } from '../errors.ts';
import { patchInfoPdu } from './autologon-patch.ts';
import { offerFullColour } from './colour-depth-patch.ts';
import { withoutRemoteFx } from './remotefx-patch.ts';

/** Largest CredSSP message held back whole (they are a few KiB; certificates included). */
export const MAX_DER_FRAME = 256 * 1024;

export interface ClientStreamPatches {
  /** Set INFO_AUTOLOGON in the Client Info PDU (TLS-only hosts). */
  autologon: boolean;
  /** Take RemoteFX out of every Confirm Active PDU. */
  withoutRemoteFx: boolean;
  /** Offer this colour depth in the Client Core Data (colour-depth-patch.ts); undefined leaves it. */
  colourDepth: 24 | 32 | undefined;
}

/** Client-to-server bytes in, the same stream with the patches applied out. */
export class ClientStreamPatcher {
  readonly #patches: ClientStreamPatches;
  #pending = Buffer.alloc(0);
  #infoPatched = false;
  #coreDataPatched = false;
  #sawTpkt = false;
  #passThrough = false;

  constructor(patches: ClientStreamPatches) {
    this.#patches = patches;
    this.#passThrough = !patches.autologon && !patches.withoutRemoteFx && !patches.colourDepth;
  }

  /** True once the stream stopped looking like RDP and is passed through untouched. */
  get passingThrough(): boolean {
    return this.#passThrough;
  }

  /** Returns what may be forwarded now; holds back an incomplete frame. */
  push(chunk: Uint8Array): Buffer {
    if (this.#passThrough) return Buffer.from(chunk);
    this.#pending = this.#pending.length ? Buffer.concat([this.#pending, chunk]) : Buffer.from(chunk);
    const out: Buffer[] = [];
    while (this.#pending.length > 0) {
      const length = this.#frameLength(this.#pending);
      if (length === undefined) break;
      if (length === 0) {
        this.#passThrough = true;
        break;
      }
      if (this.#pending.length < length) break;
      out.push(this.#patch(this.#pending.subarray(0, length)));
      this.#pending = this.#pending.subarray(length);
    }
    if (this.#passThrough) {
      out.push(this.#pending);
      this.#pending = Buffer.alloc(0);
    }
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }

  /** Bytes in the frame at the start of `b`; undefined when its header is incomplete; 0 when it is no frame we know. */
  #frameLength(b: Buffer): number | undefined {
    const first = b[0]!;
    if (first === 0x03) {
      if (b.length < 4) return undefined;
      const length = b.readUInt16BE(2);
      if (length < 7) throw new BadInputError(`TPKT frame of ${length} bytes is too short`);
      this.#sawTpkt = true;
      return length;
    }
    if (first === 0x30 && !this.#sawTpkt) {
      if (b.length < 2) return undefined;
      const short = b[1]!;
      if (short < 0x80) return 2 + short;
      const bytes = short & 0x7f;
      if (bytes < 1 || bytes > 3) return 0;
      if (b.length < 2 + bytes) return undefined;
      const length = 2 + bytes + b.readUIntBE(2, bytes);
      if (length > MAX_DER_FRAME) throw new BadInputError(`CredSSP message of ${length} bytes is over ${MAX_DER_FRAME}`);
      return length;
    }
    if ((first & 0x03) === 0 && this.#sawTpkt) {
      if (b.length < 2) return undefined;
      if (!(b[1]! & 0x80)) return b[1]! || 0;
      if (b.length < 3) return undefined;
      return ((b[1]! & 0x7f) << 8) | b[2]! || 0;
    }
    return 0;
  }

  #patch(frame: Buffer): Buffer {
    if (frame[0] !== 0x03) return frame;
    if (this.#patches.colourDepth && !this.#coreDataPatched) {
      const copy = Buffer.from(frame);
      if (offerFullColour(copy, this.#patches.colourDepth)) {
        this.#coreDataPatched = true;
        return copy;
      }
    }
    if (this.#patches.autologon && !this.#infoPatched) {
      const copy = Buffer.from(frame);
      if (patchInfoPdu(copy)) {
        this.#infoPatched = true;
        return copy;
      }
    }
    return (this.#patches.withoutRemoteFx && withoutRemoteFx(frame)) || frame;
  }
}
