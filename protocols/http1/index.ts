/**
 * HTTP/1.1 message framing for proxies that rewrite heads and pass bodies through
 * (RFC 9112): a strict head parser and an incremental reader that finds where each
 * message ends (Content-Length, chunked, close-delimited, no body) without decoding or
 * copying bodies.
 *
 * ```
 * bytes ── MessageReader.push ── read(): head (parsed, raw bytes) | body (raw slice) | end
 * ```
 *
 * Used on the app path: browser TLS -> proxy (reads each request head: Host, session
 * cookie; rewrites it) -> tunnel stream -> agent (reads each head again: JWT, rewrites;
 * reads response heads only to count answers) -> app. Bodies are never re-encoded.
 * Anything the parser refuses (smuggling shapes: CL and TE together, bare LF,
 * obs-fold, unknown transfer codings) is handed to a full HTTP server or answered 400.
 */
export { Http1ParseError } from './errors.ts';
export { headerValue, headerValues, parseHead, serializeRequestHead, type BodyFraming, type HeaderField, type MessageHead } from './message-head.ts';
export { MessageReader, type MessageReaderOptions, type ReadEvent } from './message-reader.ts';
