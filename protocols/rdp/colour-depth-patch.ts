/**
 * Offers full colour in the client's Client Core Data ([MS-RDPBCGR] 2.2.1.3.2
 * TS_UD_CS_CORE, inside the MCS Connect Initial PDU).
 *
 * ironrdp-wasm 1.1.0 sends highColorDepth 24 but supportedColorDepths 16 only. That went
 * unseen while hosts sent RemoteFX; with bitmap updates (remotefx-patch.ts) hosts that
 * go by the list send 16-bit pictures: #a06030 arrives as 165,97,49.
 *
 * - 24 bpp for TLS-only hosts (xrdp): xrdp goes by highColorDepth (24 already), and at
 *   32 bpp it sends bitmaps 16x larger that cost the wasm ~40 ms a full 1024x768 frame
 *   against ~27 ms for 24-bit RLE, which is lossless for an X desktop of depth 24.
 * - 32 bpp for NLA hosts (Windows, FreeRDP): they pick from the list, and FreeRDP's
 *   servers turn 24 into 16 bpp; 32 is what Windows clients ask for.
 *
 * ```
 * TPKT 03 00 LEN | X.224 02 F0 80 | 7F 65 (BER Connect-Initial) ... GCC ConferenceCreateRequest
 *   ... "Duca" LEN(PER 1|2) user data blocks: TYPE(LE16) LEN(LE16) DATA
 * 0xC001 TS_UD_CS_CORE, offsets from the block start:
 *   140 highColorDepth(LE16)  142 supportedColorDepths(LE16)  144 earlyCapabilityFlags(LE16)
 * ```
 *
 * Fields are rewritten in place; no length changes. A PDU that does not parse exactly
 * is left alone.
 */

const CS_CORE = 0xc001;
const RNS_UD_24BPP_SUPPORT = 0x0001;
const RNS_UD_32BPP_SUPPORT = 0x0008;
const RNS_UD_CS_WANT_32BPP_SESSION = 0x0002;
const H221_CLIENT_KEY = Buffer.from('Duca', 'latin1');

/** Offers `depth` bpp when `frame` is the MCS Connect Initial PDU; returns whether it was. */
export function offerFullColour(frame: Buffer, depth: 24 | 32): boolean {
  if (frame.length < 16 || frame[0] !== 0x03 || frame[4] !== 0x02 || frame[5] !== 0xf0 || frame[6] !== 0x80) return false;
  if (frame[7] !== 0x7f || frame[8] !== 0x65) return false;
  const key = frame.indexOf(H221_CLIENT_KEY, 9);
  if (key < 0 || key + 6 > frame.length) return false;
  let at = key + 4;
  const wide = (frame[at]! & 0x80) !== 0;
  const userLength = wide ? ((frame[at]! & 0x3f) << 8) | frame[at + 1]! : frame[at]!;
  at += wide ? 2 : 1;
  const end = at + userLength;
  if (end > frame.length) return false;
  while (at + 4 <= end) {
    const type = frame.readUInt16LE(at);
    const length = frame.readUInt16LE(at + 2);
    if (length < 4 || at + length > end) return false;
    if (type === CS_CORE) {
      if (length < 146) return false; // an old client without the fields: leave it
      frame.writeUInt16LE(24, at + 140);
      frame.writeUInt16LE(frame.readUInt16LE(at + 142) | RNS_UD_24BPP_SUPPORT | (depth === 32 ? RNS_UD_32BPP_SUPPORT : 0), at + 142);
      if (depth === 32) frame.writeUInt16LE(frame.readUInt16LE(at + 144) | RNS_UD_CS_WANT_32BPP_SESSION, at + 144);
      return true;
    }
    at += length;
  }
  return false;
}
