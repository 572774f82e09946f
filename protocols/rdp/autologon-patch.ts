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
 * client-stream-patcher.ts hands it each whole TPKT frame until one was that PDU.
 */
const SEC_INFO_PKT = 0x0040;
const INFO_AUTOLOGON = 0x0000_0008;

/** Sets INFO_AUTOLOGON when `frame` is the Client Info PDU; returns whether it was. */
export function patchInfoPdu(frame: Buffer): boolean {
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
