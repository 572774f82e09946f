import type { Socket } from 'node:net';
import { classify, type SniffKind } from '../../protocols/mux/sniff.ts';
import { ClientHelloError, parseClientHello, type ClientHello } from '../../protocols/mux/client-hello.ts';

/** What a connection opened with; for TLS, with its ClientHello. */
export type Opening =
  | { kind: 'tls'; hello: ClientHello }
  | { kind: Exclude<SniffKind, 'tls' | 'unknown'> }
  | { kind: 'garbage' | 'timeout' | 'closed' }
  | { kind: 'malformed-client-hello'; error: ClientHelloError };

/** Options for {@link peekOpening}. */
export interface PeekOptions {
  /** Time for the whole opening (a ClientHello included) to arrive. */
  timeoutMs: number;
  /** Bytes held at most while waiting; a ClientHello needing more is malformed. Default 64 KiB. */
  maxBytes?: number;
}

function _decide(head: Buffer, maxBytes: number): Opening | undefined {
  const kind = classify(head);
  if (kind === 'more') return undefined;
  if (kind === 'unknown') return { kind: 'garbage' };
  if (kind !== 'tls') return { kind };
  try {
    const result = parseClientHello(head);
    if (result.status === 'done') return { kind: 'tls', hello: result.hello };
  } catch (error) {
    if (error instanceof ClientHelloError) return { kind: 'malformed-client-hello', error };
    throw error;
  }
  if (head.length >= maxBytes) return { kind: 'malformed-client-hello', error: new ClientHelloError(`more than ${maxBytes} bytes without a complete ClientHello`) };
  return undefined;
}

/**
 * Reads a connection's opening bytes until they say what it is (for TLS: until the
 * whole ClientHello is in, so SNI and ALPN are known), then puts every byte back with
 * `unshift`, so whoever takes the socket next reads it from the start.
 *
 * Never rejects; the caller installs the socket's error guard.
 *
 * @example
 * const opening = await peekOpening(socket, { timeoutMs: 5000 });
 * if (opening.kind === 'tls' && opening.hello.serverName === 'auth.postern') passThrough(socket);
 */
export function peekOpening(socket: Socket, options: PeekOptions): Promise<Opening> {
  const maxBytes = options.maxBytes ?? 64 * 1024;
  return new Promise((resolve) => {
    let head: Buffer = Buffer.alloc(0);
    const finish = (opening: Opening): void => {
      clearTimeout(timer);
      socket.off('readable', onReadable).off('end', onEnd).off('close', onEnd);
      if (head.length > 0 && !socket.destroyed && opening.kind !== 'closed') socket.unshift(head);
      resolve(opening);
    };
    const onReadable = (): void => {
      let chunk: Buffer | null;
      while ((chunk = socket.read() as Buffer | null) !== null) {
        head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
        const opening = _decide(head, maxBytes);
        if (opening !== undefined) return finish(opening);
      }
    };
    const onEnd = (): void => finish({ kind: 'closed' });
    const timer = setTimeout(() => finish({ kind: 'timeout' }), options.timeoutMs);
    socket.on('readable', onReadable);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
  });
}
