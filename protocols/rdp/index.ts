/**
 * RDP: an RDP client engine for the agent and the desktop stream it serves (docs/desktops.md).
 *
 * ```
 * viewer ─ desktop stream (desktop-stream.ts: LEN TYPE PAYLOAD; JSON control, PNG/raw rects)
 *   ─> proxy ─> tunnel ─> agent desktop service ─> RdpEngine (rdp-engine.ts)
 *        IronRdpEngine (ironrdp-engine.ts): ironrdp-wasm in Node
 *          FrameCanvas (frame-canvas.ts)             putImageData -> changed rectangles
 *          InProcessWebSocket (in-process-websocket.ts) -> acceptRDCleanPath (rdcleanpath-gateway.ts)
 *            RDCleanPath DER (rdcleanpath.ts), TCP + TLS to the host,
 *            client PDUs patched (client-stream-patcher.ts): full colour (colour-depth-patch.ts),
 *              INFO_AUTOLOGON (autologon-patch.ts), no RemoteFX (remotefx-patch.ts);
 *            host PDUs: the clipboard channel's start kept in order (cliprdr-start-order.ts)
 * ```
 *
 * Specs: [MS-RDPBCGR] (X.224 negotiation, Client Info PDU), Devolutions' RDCleanPath
 * (ironrdp-rdcleanpath), PNG (RFC 2083). Recordings: desktop-recording.ts. No policy here:
 * which user may reach which desktop as which login is the agent's decision.
 */
export type { FrameRect, MouseButton, RdpConnectOptions, RdpCredentials, RdpEngine, RdpSession, RdpSessionEvents } from './rdp-engine.ts';
export { RdpConnectError, RdpSessionError, DesktopStreamError } from './errors.ts';
export * from './desktop-stream.ts';
export { DesktopRecorder, readRecording, RECORDING_MAGIC, type RecordingHeader } from './desktop-recording.ts';
export { DesktopPicture } from './desktop-picture.ts';
export { encodeRects, encodePng, decodeRectPixels } from './rect-encoder.ts';
export { scancodeOf, typeText, isValidScancode } from './scancodes.ts';
