/**
 * HTTP/1.1 message framing for proxies that rewrite heads and pass bodies through
 * (RFC 9112): a strict head parser and an incremental reader that finds where each
 * message ends (Content-Length, chunked, close-delimited, no body) without decoding or
 * copying bodies; or, with `decode`, hands chunked bodies over as their payload (for a
 * reader that frames bodies another way, such as the proxy's HTTP/2 answers).
 *
 * ```
 * bytes ── MessageReader.push ── read(): head (parsed, raw bytes) | body (raw slice) | end
 *                                        (decode: chunked bodies as chunk data slices)
 * ```
 *
 * Used on the app path: browser TLS -> proxy (reads each request head: Host, session
 * cookie; rewrites it) -> tunnel stream -> agent (reads each head again: JWT, rewrites;
 * reads response heads only to count answers) -> app. Bodies are never re-encoded on
 * HTTP/1.1; for HTTP/2 clients the proxy decodes chunked answers (HTTP/2 frames bodies
 * itself) and chunk-encodes request bodies of unknown length.
 * Anything the parser refuses (smuggling shapes: CL and TE together, bare LF,
 * obs-fold, unknown transfer codings) is handed to a full HTTP server or answered 400.
 */
export { Http1ParseError } from './errors.ts';
export { headerValue, headerValues, isContentLength, isFieldValue, isRequestTarget, isToken, parseHead, serializeRequestHead, type BodyFraming, type HeaderField, type MessageHead } from './message-head.ts';
export { MessageReader, type MessageReaderOptions, type ReadEvent } from './message-reader.ts';
