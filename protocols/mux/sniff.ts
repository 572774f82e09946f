/**
 * Classifies a connection by its first bytes, without consuming them.
 *
 * Recognised openings (everything is decided within the first 9 bytes):
 *
 * ```
 * TLS record, ClientHello   16 03 0v LL LL 01 ...        (v <= 4)
 * SSH identification        "SSH-2.0-" | "SSH-1.99-"
 * PostgreSQL SSLRequest     00 00 00 08 04 d2 16 2f      (length 8, code 80877103)
 * PostgreSQL GSSENCRequest  00 00 00 08 04 d2 16 30      (length 8, code 80877104)
 * PostgreSQL CancelRequest  00 00 00 10 04 d2 16 2e      (length 16, code 80877102; sent in plain text by libpq < 17)
 * ```
 *
 * Anything else is `unknown` as soon as a byte rules every opening out, so garbage is
 * rejected without waiting for the timeout.
 */
import type { Socket } from 'node:net';

/** What a connection's first bytes say it is. */
export type SniffKind = 'tls' | 'ssh' | 'postgres-ssl' | 'postgres-gssenc' | 'postgres-cancel' | 'unknown';

/** The result of {@link sniff}: the kind, or why no kind could be read. */
export interface SniffResult {
  kind: SniffKind | 'timeout' | 'closed';
  /** Bytes read but not consumed; they have been unshifted back into the socket. */
  buffered: number;
}

/** Options for {@link sniff}. */
export interface SniffOptions {
  /** Give up after this long without a decision (the whole sniff, not per byte). */
  timeoutMs: number;
}

const SSH_PREFIXES = [Buffer.from('SSH-2.0-'), Buffer.from('SSH-1.99-')];
const PG_SSL = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
const PG_GSSENC = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30]);
const PG_CANCEL = Buffer.from([0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e]);
/** Length of a PostgreSQL SSLRequest / GSSENCRequest; {@link sniff} consumes it. */
export const POSTGRES_REQUEST_LENGTH = 8;

function _matchPrefix(head: Buffer, candidates: Buffer[]): 'match' | 'more' | 'no' {
  let more = false;
  for (const candidate of candidates) {
    const n = Math.min(head.length, candidate.length);
    if (head.subarray(0, n).equals(candidate.subarray(0, n))) {
      if (head.length >= candidate.length) return 'match';
      more = true;
    }
  }
  return more ? 'more' : 'no';
}

function _classifyTls(head: Buffer): SniffKind | 'more' {
  if (head.length < 6) {
    if (head.length >= 2 && head[1] !== 0x03) return 'unknown';
    if (head.length >= 3 && head[2]! > 0x04) return 'unknown';
    return 'more';
  }
  if (head[1] !== 0x03 || head[2]! > 0x04) return 'unknown';
  const recordLength = head.readUInt16BE(3);
  // A ClientHello record carries at least a 4-byte handshake header; TLS caps plaintext records at 2^14.
  if (recordLength < 4 || recordLength > 16_384) return 'unknown';
  return head[5] === 0x01 ? 'tls' : 'unknown';
}

function _classifyPostgres(head: Buffer): SniffKind | 'more' {
  const ssl = _matchPrefix(head, [PG_SSL]);
  if (ssl === 'match') return 'postgres-ssl';
  const gss = _matchPrefix(head, [PG_GSSENC]);
  if (gss === 'match') return 'postgres-gssenc';
  const cancel = _matchPrefix(head, [PG_CANCEL]);
  if (cancel === 'match') return 'postgres-cancel';
  return ssl === 'more' || gss === 'more' || cancel === 'more' ? 'more' : 'unknown';
}

/**
 * Classifies the opening bytes of a connection; `'more'` means they are a valid prefix
 * of some opening and more bytes are needed.
 *
 * @example
 * classify(Buffer.from('SSH-2.0-OpenSSH_9.2\r\n')); // 'ssh'
 * classify(Buffer.from([0x16, 0x03])); // 'more'
 */
export function classify(head: Buffer): SniffKind | 'more' {
  if (head.length === 0) return 'more';
  switch (head[0]) {
    case 0x16:
      return _classifyTls(head);
    case 0x53: {
      const ssh = _matchPrefix(head, SSH_PREFIXES);
      return ssh === 'match' ? 'ssh' : ssh === 'more' ? 'more' : 'unknown';
    }
    case 0x00:
      return _classifyPostgres(head);
    default:
      return 'unknown';
  }
}

/**
 * Reads a socket's first bytes until {@link classify} decides, then puts them back
 * with `socket.unshift` (so a later `tls.TLSSocket` or `'data'` listener sees them);
 * PostgreSQL requests are consumed, since the caller answers them.
 *
 * The socket is left paused-but-not-flowing, with no listeners of ours attached
 * except the error guard the caller installed. Never rejects.
 *
 * @example
 * const { kind } = await sniff(socket, { timeoutMs: 5000 });
 */
export function sniff(socket: Socket, options: SniffOptions): Promise<SniffResult> {
  return new Promise((resolve) => {
    let head: Buffer = Buffer.alloc(0);
    const finish = (kind: SniffResult['kind']): void => {
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      let rest = head;
      if (kind === 'postgres-ssl' || kind === 'postgres-gssenc') rest = head.subarray(POSTGRES_REQUEST_LENGTH);
      if (rest.length > 0 && !socket.destroyed && kind !== 'closed') socket.unshift(rest);
      resolve({ kind, buffered: rest.length });
    };
    const onReadable = (): void => {
      let chunk: Buffer | null;
      while ((chunk = socket.read() as Buffer | null) !== null) {
        head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
        const kind = classify(head);
        if (kind !== 'more') return finish(kind);
      }
    };
    const onEnd = (): void => finish('closed');
    const timer = setTimeout(() => finish('timeout'), options.timeoutMs);
    socket.on('readable', onReadable);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
  });
}
