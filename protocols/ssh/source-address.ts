/**
 * The `source-address` critical option of OpenSSH certificates (PROTOCOL.certkeys):
 * a comma-separated list of addresses in CIDR form, IPv4 or IPv6, from which the
 * certificate may be used. A bare address means one host (/32, /128). As in OpenSSH
 * (addr_pton_cidr), an entry with bits set beyond its prefix is malformed, and an
 * IPv4-mapped IPv6 peer address (`::ffff:10.0.0.1`, as dual-stack sockets report it)
 * is matched as the IPv4 address it carries.
 */
import { SshFormatError } from './errors.ts';

/** One parsed list entry: network bytes (4 or 16) and prefix length. */
export interface CidrBlock {
  network: Buffer;
  prefixLength: number;
}

const MAX_ENTRIES = 256;

/** Parses a `source-address` value; throws `SshFormatError` naming the bad entry. */
export function parseSourceAddressList(list: string): CidrBlock[] {
  const entries = list.split(',');
  if (entries.length > MAX_ENTRIES) throw new SshFormatError(`Cannot parse source-address: more than ${MAX_ENTRIES} entries`);
  return entries.map(parseCidr);
}

/** Whether `address` (a socket's remote address) falls inside any block of the `source-address` list. */
export function matchSourceAddress(address: string, list: string): boolean {
  const blocks = parseSourceAddressList(list);
  const peer = parsePeerAddress(address);
  return blocks.some((block) => block.network.length === peer.length && prefixEquals(block.network, peer, block.prefixLength));
}

function parseCidr(entry: string): CidrBlock {
  const [addressText, prefixText, extra] = entry.split('/');
  const network = parseIpAddress(addressText ?? '');
  const bits = network?.length === undefined ? 0 : network.length * 8;
  const prefixLength = prefixText === undefined ? bits : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : -1;
  if (network === undefined || extra !== undefined || prefixLength < 0 || prefixLength > bits) {
    throw new SshFormatError(`Cannot parse source-address entry ${JSON.stringify(entry)}: expected an IPv4 or IPv6 address with an optional /prefix length`);
  }
  if (!hostBitsZero(network, prefixLength)) {
    throw new SshFormatError(`Cannot parse source-address entry ${JSON.stringify(entry)}: bits are set after the /${prefixLength} prefix`);
  }
  return { network, prefixLength };
}

/** A peer address as 4 or 16 bytes: zone index dropped, IPv4-mapped IPv6 unwrapped. */
function parsePeerAddress(address: string): Buffer {
  const bytes = parseIpAddress(address.replace(/%[^%]*$/, ''));
  if (bytes === undefined) throw new SshFormatError(`Cannot check source-address: ${JSON.stringify(address)} is not an IP address`);
  const mappedPrefix = Buffer.from('00000000000000000000ffff', 'hex');
  return bytes.length === 16 && bytes.subarray(0, 12).equals(mappedPrefix) ? bytes.subarray(12) : bytes;
}

/** Parses a literal IPv4 (dotted quad) or IPv6 (RFC 4291 text) address into bytes. */
export function parseIpAddress(text: string): Buffer | undefined {
  return text.includes(':') ? parseIpv6(text) : parseIpv4(text);
}

function parseIpv4(text: string): Buffer | undefined {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255)) return undefined;
  return Buffer.from(parts.map(Number));
}

function parseIpv6(text: string): Buffer | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const head = parseGroups(halves[0]!, halves.length === 1);
  const tail = halves.length === 2 ? parseGroups(halves[1]!, true) : [];
  if (head === undefined || tail === undefined) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...new Array<number>(halves.length === 2 ? missing : 0).fill(0), ...tail];
  const bytes = Buffer.alloc(16);
  groups.forEach((g, i) => bytes.writeUInt16BE(g, i * 2));
  return bytes;
}

/** Colon-separated hex groups; if the text ends the address, its last part may be dotted IPv4 (two groups). */
function parseGroups(text: string, endsAddress: boolean): number[] | undefined {
  if (text === '') return [];
  const parts = text.split(':');
  const groups: number[] = [];
  for (const [i, part] of parts.entries()) {
    if (endsAddress && i === parts.length - 1 && part.includes('.')) {
      const v4 = parseIpv4(part);
      if (v4 === undefined) return undefined;
      groups.push(v4.readUInt16BE(0), v4.readUInt16BE(2));
    } else if (/^[0-9a-fA-F]{1,4}$/.test(part)) {
      groups.push(parseInt(part, 16));
    } else {
      return undefined;
    }
  }
  return groups;
}

function prefixEquals(a: Buffer, b: Buffer, prefixLength: number): boolean {
  const fullBytes = Math.floor(prefixLength / 8);
  if (!a.subarray(0, fullBytes).equals(b.subarray(0, fullBytes))) return false;
  const restBits = prefixLength % 8;
  if (restBits === 0) return true;
  const mask = (0xff << (8 - restBits)) & 0xff;
  return (a[fullBytes]! & mask) === (b[fullBytes]! & mask);
}

function hostBitsZero(network: Buffer, prefixLength: number): boolean {
  return network.every((byte, i) => {
    const prefixBitsHere = Math.min(8, Math.max(0, prefixLength - i * 8));
    return (byte & (0xff >> prefixBitsHere)) === 0;
  });
}
