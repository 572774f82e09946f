/**
 * The subjectAltName extension (RFC 5280 4.2.1.6) for the two name forms Postern
 * issues: dNSName [2] IA5String and iPAddress [7] OCTET STRING (4 or 16 bytes).
 * Names are checked here so a bad address fails issuance with a clear message
 * instead of producing a certificate no TLS client will match.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { BadInputError } from '../../../protocols/errors.ts';
import { implicitPrimitive, seq } from './der.ts';

// Letters, digits and '-' (and '_', which service names such as _postgres use), 1-63 per label.
const dnsLabel = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$/;

/** The DER of a GeneralNames SEQUENCE for the given names; throws BadInputError for an invalid one. */
export function encodeSubjectAltName(dnsNames: readonly string[], ipAddresses: readonly string[]): Buffer {
  const names: Buffer[] = [];
  for (const dns of dnsNames) {
    checkDnsName(dns);
    names.push(implicitPrimitive(2, Buffer.from(dns, 'latin1'))); // [2] IMPLICIT IA5String (ASCII checked above)
  }
  for (const ip of ipAddresses) names.push(implicitPrimitive(7, ipAddressBytes(ip)));
  return seq(...names);
}

/** Throws BadInputError unless `name` is a DNS name a certificate may carry (an optional leading `*.` label). */
export function checkDnsName(name: string): void {
  const labels = name.startsWith('*.') ? name.slice(2).split('.') : name.split('.');
  const ok = name.length > 0 && name.length <= 253 && labels.every((label) => dnsLabel.test(label));
  if (!ok) {
    throw new BadInputError(
      `Cannot put "${name}" in a certificate as a DNS name: use letters, digits and '-' in dot-separated labels ` +
        `(punycode for international names), at most 253 characters; put IP addresses in ipAddresses`,
    );
  }
}

/** The 4 or 16 network-order bytes of an IPv4 or IPv6 address (zone ids refused). */
export function ipAddressBytes(address: string): Buffer {
  if (isIPv4(address)) return Buffer.from(address.split('.').map(Number));
  if (isIPv6(address) && !address.includes('%')) return _ipv6Bytes(address);
  throw new BadInputError(`Cannot put "${address}" in a certificate as an IP address: not an IPv4 or IPv6 address`);
}

function _ipv6Bytes(address: string): Buffer {
  let text = address;
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    // Embedded IPv4 (::ffff:1.2.3.4): its 4 bytes are the last two groups.
    tail.push(...text.slice(lastColon + 1).split('.').map(Number));
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const [head = '', rest] = text.split('::');
  const groupsOf = (part: string | undefined) => (part ? part.split(':') : []);
  const left = groupsOf(head);
  const right = groupsOf(rest);
  const groups = rest === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  const bytes = Buffer.alloc(16);
  groups.forEach((group, i) => bytes.writeUInt16BE(Number.parseInt(group, 16), i * 2));
  if (tail.length === 4) Buffer.from(tail).copy(bytes, 12);
  return bytes;
}
