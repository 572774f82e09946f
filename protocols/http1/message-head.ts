import { Http1ParseError } from './errors.ts';

/** One header line as sent: the name's case kept, the value without surrounding blanks. */
export type HeaderField = [name: string, value: string];

/** How a message's body is delimited (RFC 9112 section 6). */
export type BodyFraming = { kind: 'none' } | { kind: 'length'; length: number } | { kind: 'chunked' } | { kind: 'close' };

/** A parsed request or response head. */
export interface MessageHead {
  /** Request line parts (requests) or status (responses). */
  method: string;
  target: string;
  status: number;
  version: 'HTTP/1.1' | 'HTTP/1.0';
  headers: HeaderField[];
  /** Lower-cased tokens of every Connection header. */
  connection: ReadonlySet<string>;
  framing: BodyFraming;
  /** HTTP/1.1 without `Connection: close`, or HTTP/1.0 with `Connection: keep-alive`. */
  keepAlive: boolean;
  /** A request asking to switch protocols (Upgrade header and the `upgrade` connection token). */
  upgrade: boolean;
}

const tokenChars = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Field values: visible ASCII, blanks and obs-text; never CR, LF or NUL (request smuggling).
const badValueChars = /[\x00-\x08\x0a-\x1f\x7f]/;
const targetChars = /^[\x21-\x7e\x80-\xff]+$/;
const digits = /^\d{1,15}$/;

/** A method or field name: an RFC 9110 token. */
export function isToken(text: string): boolean {
  return tokenChars.test(text);
}

/** A request target as the request line may carry it (visible ASCII and obs-text, no blanks). */
export function isRequestTarget(text: string): boolean {
  return targetChars.test(text);
}

/** A field value that can be written on one HTTP/1.1 line (no CR, LF, NUL or other controls but tab). */
export function isFieldValue(text: string): boolean {
  return !badValueChars.test(text);
}

/** A Content-Length value: one decimal number. */
export function isContentLength(text: string): boolean {
  return digits.test(text);
}

/**
 * Parses the head in `text` (latin1, without the final CRLF CRLF) strictly: a bare LF,
 * obs-fold, a blank before the colon, a bad token, conflicting Content-Length or a
 * Transfer-Encoding other than `chunked` alone throw (these are what request
 * smuggling is made of).
 */
export function parseHead(text: string, kind: 'request' | 'response'): MessageHead {
  const lines = text.split('\r\n');
  const first = lines[0]!;
  const head: MessageHead = { method: '', target: '', status: 0, version: 'HTTP/1.1', headers: [], connection: new Set(), framing: { kind: 'none' }, keepAlive: true, upgrade: false };
  if (kind === 'request') {
    const parts = first.split(' ');
    if (parts.length !== 3 || !tokenChars.test(parts[0]!) || !targetChars.test(parts[1]!)) throw new Http1ParseError(`Cannot parse request line ${JSON.stringify(first.slice(0, 100))}: expected METHOD TARGET HTTP/1.x`);
    head.method = parts[0]!;
    head.target = parts[1]!;
    head.version = _version(parts[2]!);
  } else {
    const match = /^(HTTP\/1\.[01]) (\d{3})(?: [^\r\n]*)?$/.exec(first);
    if (!match) throw new Http1ParseError(`Cannot parse status line ${JSON.stringify(first.slice(0, 100))}: expected HTTP/1.x NNN reason`);
    head.version = _version(match[1]!);
    head.status = Number(match[2]);
  }
  let length: string | undefined;
  let transferEncoding: string | undefined;
  let upgradeHeader = false;
  const connection = new Set<string>();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    if (!tokenChars.test(name)) throw new Http1ParseError(`Cannot parse header line ${JSON.stringify(line.slice(0, 100))}: expected NAME: value`);
    const value = line.slice(colon + 1).trim();
    if (badValueChars.test(value)) throw new Http1ParseError(`Cannot parse header ${name}: its value holds control characters`);
    head.headers.push([name, value]);
    const lower = name.length === 14 || name.length === 17 || name.length === 10 || name.length === 7 ? name.toLowerCase() : '';
    if (lower === 'content-length') {
      if (!digits.test(value) || (length !== undefined && length !== value)) throw new Http1ParseError(`Cannot frame the body: Content-Length ${JSON.stringify(value.slice(0, 40))} is not one decimal number`);
      length = value;
    } else if (lower === 'transfer-encoding') {
      transferEncoding = transferEncoding === undefined ? value : `${transferEncoding}, ${value}`;
    } else if (lower === 'connection') {
      for (const token of value.split(',')) if (token.trim() !== '') connection.add(token.trim().toLowerCase());
    } else if (lower === 'upgrade') {
      upgradeHeader = true;
    }
  }
  head.connection = connection;
  head.keepAlive = head.version === 'HTTP/1.1' ? !connection.has('close') : connection.has('keep-alive');
  head.upgrade = kind === 'request' && upgradeHeader && connection.has('upgrade');
  if (transferEncoding !== undefined) {
    if (length !== undefined) throw new Http1ParseError('Cannot frame the body: both Content-Length and Transfer-Encoding are present');
    if (transferEncoding.trim().toLowerCase() !== 'chunked' || head.version !== 'HTTP/1.1') throw new Http1ParseError(`Cannot frame the body: Transfer-Encoding ${JSON.stringify(transferEncoding.slice(0, 40))} is not supported (only chunked)`);
    head.framing = { kind: 'chunked' };
  } else if (length !== undefined) {
    head.framing = Number(length) === 0 ? { kind: 'none' } : { kind: 'length', length: Number(length) };
  } else {
    head.framing = kind === 'request' ? { kind: 'none' } : { kind: 'close' };
  }
  if (kind === 'response' && (head.status < 200 || head.status === 204 || head.status === 304)) head.framing = { kind: 'none' };
  return head;
}

function _version(text: string): 'HTTP/1.1' | 'HTTP/1.0' {
  if (text === 'HTTP/1.1' || text === 'HTTP/1.0') return text;
  throw new Http1ParseError(`Cannot parse HTTP version ${JSON.stringify(text.slice(0, 20))}: expected HTTP/1.1 or HTTP/1.0`);
}

/** The first value of header `lowerName`, if any. */
export function headerValue(head: Pick<MessageHead, 'headers'>, lowerName: string): string | undefined {
  for (const [name, value] of head.headers) if (name.length === lowerName.length && name.toLowerCase() === lowerName) return value;
  return undefined;
}

/** Every value of header `lowerName`. */
export function headerValues(head: Pick<MessageHead, 'headers'>, lowerName: string): string[] {
  const out: string[] = [];
  for (const [name, value] of head.headers) if (name.length === lowerName.length && name.toLowerCase() === lowerName) out.push(value);
  return out;
}

/** Writes a request head: request line, fields, blank line. */
export function serializeRequestHead(method: string, target: string, headers: readonly HeaderField[]): string {
  let out = `${method} ${target} HTTP/1.1\r\n`;
  for (const [name, value] of headers) out += `${name}: ${value}\r\n`;
  return `${out}\r\n`;
}
