import { PosternError } from '../errors.ts';

/** The RDP host could not be reached, refused the negotiation, or failed TLS. */
export class RdpConnectError extends PosternError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PST_RDP_CONNECT', message, options);
  }
}

/** The RDP session ended with an error after it was established (or never rendered). */
export class RdpSessionError extends PosternError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PST_RDP_SESSION', message, options);
  }
}

/** A desktop stream frame broke the framing rules (desktop-stream.ts). */
export class DesktopStreamError extends PosternError {
  constructor(message: string) {
    super('PST_DESKTOP_STREAM', message);
  }
}
