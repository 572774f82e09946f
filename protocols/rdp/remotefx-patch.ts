/**
 * Takes RemoteFX out of the codecs the client offers in its Confirm Active PDU
 * ([MS-RDPBCGR] 2.2.1.13.2, capability set 2.2.7.2.10 TS_BITMAPCODECS_CAPABILITYSET), so
 * the host sends plain bitmap updates (interleaved RLE, or planar at 32 bpp) instead.
 *
 * Why: in ironrdp-wasm RemoteFX decoding (RLGR, dequantisation, inverse DWT, colour
 * conversion of every 64x64 tile) costs ~20 ms of agent CPU per full 1024x768 frame on
 * top of the ~25 ms the wasm spends putting any picture on its canvas; planar or RLE
 * decoding costs ~3 ms. RemoteFX saves bandwidth, but only between the agent and the
 * host, which sit on one network; the viewer gets PNG rects either way.
 *
 * Inside TLS with no RDP encryption the PDU is plain:
 *
 * ```
 * TPKT    03 00 LEN(BE16)
 * X.224   02 F0 80
 * MCS     64 INIT(2) CHAN(2) 70 LEN(PER 1|2)      SendDataRequest
 * SHARE   TOTAL(LE16) TYPE(LE16, 0x13) SOURCE(LE16)
 *         SHAREID(LE32) ORIGINATOR(LE16) LENSRC(LE16) LENCAPS(LE16) SRC(LENSRC)
 *         NCAPS(LE16) PAD(2) capability sets: TYPE(LE16) LEN(LE16) DATA
 * 0x001D  COUNT(u8) codecs: GUID(16) ID(u8) PROPLEN(LE16) PROPS
 * ```
 *
 * Every enclosing length shrinks by the bytes removed; anything that does not parse
 * exactly is left as it was.
 */

/** CODEC_GUID_REMOTEFX and CODEC_GUID_IMAGE_REMOTEFX, as they appear on the wire. */
export const REMOTEFX_GUIDS = [
  Buffer.from('122f777672bd6344afb3b73c9c6f7886', 'hex'),
  Buffer.from('d4cc44278a9d744e803c0ecbeea19c54', 'hex'),
];
const PDUTYPE_CONFIRMACTIVEPDU = 0x13;
const CAPSETTYPE_BITMAP_CODECS = 0x001d;

/** The frame without RemoteFX codecs, or undefined when it is not a Confirm Active PDU offering one. */
export function withoutRemoteFx(frame: Buffer): Buffer | undefined {
  if (frame.length < 16 || frame[0] !== 0x03 || frame.readUInt16BE(2) !== frame.length) return undefined;
  if (frame[4] !== 0x02 || frame[5] !== 0xf0 || frame[6] !== 0x80 || frame[7] !== 0x64) return undefined;
  const perAt = 13;
  const perWide = (frame[perAt]! & 0x80) !== 0;
  const userLength = perWide ? ((frame[perAt]! & 0x3f) << 8) | frame[perAt + 1]! : frame[perAt]!;
  const share = perAt + (perWide ? 2 : 1);
  if (share + userLength !== frame.length || userLength < 20) return undefined;
  if (frame.readUInt16LE(share) !== userLength || frame.readUInt16LE(share + 2) !== PDUTYPE_CONFIRMACTIVEPDU) return undefined;
  const sourceLength = frame.readUInt16LE(share + 12);
  const combinedAt = share + 14;
  const capsAt = share + 16 + sourceLength;
  if (capsAt + 4 > frame.length || frame.readUInt16LE(combinedAt) !== frame.length - capsAt) return undefined;
  const count = frame.readUInt16LE(capsAt);
  let at = capsAt + 4;
  for (let i = 0; i < count; i++) {
    if (at + 4 > frame.length) return undefined;
    const type = frame.readUInt16LE(at);
    const length = frame.readUInt16LE(at + 2);
    if (length < 4 || at + length > frame.length) return undefined;
    if (type === CAPSETTYPE_BITMAP_CODECS) return _rebuild(frame, { perAt, perWide, share, combinedAt, capAt: at, capLength: length });
    at += length;
  }
  return undefined;
}

interface Where {
  perAt: number;
  perWide: boolean;
  share: number;
  combinedAt: number;
  capAt: number;
  capLength: number;
}

function _rebuild(frame: Buffer, w: Where): Buffer | undefined {
  const end = w.capAt + w.capLength;
  let at = w.capAt + 4;
  if (at >= end) return undefined;
  const count = frame[at++]!;
  const kept: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    if (at + 19 > end) return undefined;
    const propertiesLength = frame.readUInt16LE(at + 17);
    const codec = frame.subarray(at, at + 19 + propertiesLength);
    if (at + 19 + propertiesLength > end) return undefined;
    if (!REMOTEFX_GUIDS.some((guid) => guid.equals(codec.subarray(0, 16)))) kept.push(codec);
    at += 19 + propertiesLength;
  }
  if (kept.length === count) return undefined;
  const codecs = Buffer.concat([Buffer.from([kept.length]), ...kept, frame.subarray(at, end)]);
  const removed = w.capLength - 4 - codecs.length;
  const out = Buffer.concat([frame.subarray(0, w.capAt + 4), codecs, frame.subarray(end)]);
  out.writeUInt16LE(w.capLength - removed, w.capAt + 2);
  out.writeUInt16LE(out.readUInt16LE(w.combinedAt) - removed, w.combinedAt);
  out.writeUInt16LE(out.readUInt16LE(w.share) - removed, w.share);
  const userLength = out.readUInt16LE(w.share);
  if (w.perWide) out.writeUInt16BE(0x8000 | userLength, w.perAt);
  else out[w.perAt] = userLength;
  out.writeUInt16BE(out.length, 2);
  return out;
}
