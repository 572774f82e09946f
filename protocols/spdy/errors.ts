import { PosternError } from '../errors.ts';

/** Bytes that break the SPDY/3.1 framing or header-block rules; an observer stops reading that stream. */
export class SpdyProtocolError extends PosternError {
  constructor(message: string) {
    super('PST_SPDY_PROTOCOL', message);
  }
}
