import { PosternError } from '../errors.ts';

/** Bytes that are not a well-formed HTTP/1.x message (or exceed a limit); the caller answers 400 or hands off. */
export class Http1ParseError extends PosternError {
  constructor(message: string) {
    super('PST_HTTP1_PARSE', message);
  }
}
