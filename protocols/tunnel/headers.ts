/**
 * What a dial looks like on the wire: one HTTP/2 request per stream.
 *
 * ```
 * proxy -> agent   HEADERS  :method POST  :path /dial
 *                           postern-service: <service name>
 *                           postern-identity: <opaque caller identity, checked by the agent's handler>
 *                           [postern-client-address: <user's IP, as the proxy saw it>]
 *                           [other lower-case headers the caller adds]
 * agent -> proxy   HEADERS  :status 200                      accepted; DATA both ways
 *                  HEADERS  :status 4xx/5xx                  refused, END_STREAM
 *                           postern-reason: <percent-encoded reason>
 * either way       DATA ... END_STREAM                       half-close of that direction
 * ```
 */
import { BadInputError } from '../errors.ts';

export const DIAL_METHOD = 'POST';
export const DIAL_PATH = '/dial';
export const HEADER_SERVICE = 'postern-service';
export const HEADER_IDENTITY = 'postern-identity';
export const HEADER_REASON = 'postern-reason';
/**
 * An extra header a proxy adds: the user's IP address as the proxy saw it, so a
 * service can check it (an SSH certificate's source-address). Only the proxy dials
 * through a tunnel, over mutual TLS, so the agent may believe it.
 */
export const HEADER_CLIENT_ADDRESS = 'postern-client-address';

const RESERVED = new Set([HEADER_SERVICE, HEADER_IDENTITY, HEADER_REASON]);
const SERVICE_RE = /^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,254}$/;
const HEADER_NAME_RE = /^[a-z][a-z0-9-]{0,63}$/;
const HEADER_VALUE_RE = /^[\x20-\x7e\t]*$/;
/** Longest reason sent back with a refusal. */
export const MAX_REASON_LENGTH = 1_024;

/** Checks a service name: 1-255 characters of `A-Z a-z 0-9 . _ : @ / -`, starting alphanumeric. */
export function isValidService(service: string): boolean {
  return SERVICE_RE.test(service);
}

/** Builds the request headers for a dial; throws BadInputError on a bad name or value. */
export function dialHeaders(service: string, identity: string, extra: Record<string, string> = {}): Record<string, string> {
  if (!isValidService(service)) {
    throw new BadInputError(`cannot dial service ${JSON.stringify(service)}: a service name is 1-255 characters of A-Z a-z 0-9 . _ : @ / - starting with a letter or digit`);
  }
  if (!HEADER_VALUE_RE.test(identity)) throw new BadInputError('cannot dial: the identity header must be printable ASCII; encode it first (e.g. base64url)');
  const headers: Record<string, string> = { ':method': DIAL_METHOD, ':path': DIAL_PATH, [HEADER_SERVICE]: service, [HEADER_IDENTITY]: identity };
  for (const [name, value] of Object.entries(extra)) {
    if (!HEADER_NAME_RE.test(name) || RESERVED.has(name)) throw new BadInputError(`cannot dial with header ${JSON.stringify(name)}: use a lower-case name (a-z 0-9 -) other than ${[...RESERVED].join(', ')}`);
    if (!HEADER_VALUE_RE.test(value)) throw new BadInputError(`cannot dial with header ${name}: the value must be printable ASCII`);
    headers[name] = value;
  }
  return headers;
}

/** The caller-added headers of a request: no pseudo-headers, none of Postern's own. */
export function extraHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith(':') || RESERVED.has(name) || typeof value !== 'string') continue;
    out[name] = value;
  }
  return out;
}

/** Encodes a refusal reason for the `postern-reason` header, cut to {@link MAX_REASON_LENGTH}; never throws. */
export function encodeReason(reason: string): string {
  // toWellFormed: a cut surrogate pair or a lone surrogate would make encodeURIComponent throw.
  return encodeURIComponent(reason.slice(0, MAX_REASON_LENGTH).toWellFormed());
}

/** Decodes a `postern-reason` header; never throws. */
export function decodeReason(value: string | string[] | undefined): string {
  if (typeof value !== 'string') return 'no reason given';
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
