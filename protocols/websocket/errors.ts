import { PosternError } from '../errors.ts';

/** Bytes that break the WebSocket framing rules (RFC 6455); an observer stops reading that stream. */
export class WebSocketProtocolError extends PosternError {
  constructor(message: string) {
    super('PST_WEBSOCKET_PROTOCOL', message);
  }
}
