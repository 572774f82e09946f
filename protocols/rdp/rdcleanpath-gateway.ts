/**
 * The RDCleanPath gateway ironrdp-wasm expects, run in-process for one connection:
 *
 * ```
 * wasm ── RDCleanPath request (X.224 CR) ──> gateway ── TCP ──> RDP host
 *                                             X.224 CR ─────────>
 *                                             <───────── X.224 CC (selected protocol)
 *                                             TLS handshake (server chain kept)
 * wasm <── RDCleanPath response (CC, chain) ─
 * wasm <══ plain RDP bytes ══> gateway <══ TLS ══> host
 * ```
 *
 * The host is the one the engine was told to reach, not the request's `destination`
 * (the request comes from our own wasm, but the address is the caller's decision).
 * The client's PDUs pass client-stream-patcher.ts: when the host picked plain TLS (no
 * NLA) the Client Info PDU gets INFO_AUTOLOGON (autologon-patch.ts), and RemoteFX is
 * taken out of the codecs the client offers unless asked for (remotefx-patch.ts), and
 * full colour is offered (colour-depth-patch.ts). The host's bytes pass
 * cliprdr-start-order.ts, which keeps the clipboard channel's start in an order the wasm
 * can follow. Standard RDP security (no TLS) is refused with a reason.
 * Reads of the host stop while the wasm is more than {@link MAX_QUEUED_BYTES} behind.
 */
import net from 'node:net';
import tls from 'node:tls';
import { createHash, type X509Certificate } from 'node:crypto';
import { ClientStreamPatcher } from './client-stream-patcher.ts';
import { CliprdrStartOrder } from './cliprdr-start-order.ts';
import { decodeRDCleanPathRequest, encodeRDCleanPathError, encodeRDCleanPathResponse, NEGOTIATION_ERROR_CODE, GENERAL_ERROR_CODE } from './rdcleanpath.ts';
import type { ClientLink, GatewayEnd } from './in-process-websocket.ts';
import { RdpConnectError } from './errors.ts';

/** Bytes queued towards the wasm before the host stops being read. */
export const MAX_QUEUED_BYTES = 4 * 1024 * 1024;
const PROTOCOL_SSL = 0x1;
const PROTOCOL_HYBRID = 0x2;
const PROTOCOL_HYBRID_EX = 0x8;

export interface GatewayOptions {
  host: string;
  port: number;
  /** Accept only this server certificate (sha256 of its DER, hex). Without it any certificate is accepted and reported. */
  serverCertSha256?: string;
  timeoutMs?: number;
  /** Let the host use RemoteFX (off by default: it costs the agent ~20 ms of CPU per full frame; remotefx-patch.ts). */
  remoteFx?: boolean;
  /** Called once the TLS session to the host is up. */
  onConnected?: (info: { selectedProtocol: number; certSha256: string }) => void;
  /** Called once with why the connection failed or ended. */
  onEnd?: (error?: Error) => void;
}

/** Serves one wasm connection (the `accept` callback of registerGateway). */
export function acceptRDCleanPath(link: ClientLink, options: GatewayOptions): GatewayEnd {
  let request: Buffer | undefined;
  let upstream: tls.TLSSocket | undefined;
  let raw: net.Socket | undefined;
  let patcher: ClientStreamPatcher | undefined;
  let ended = false;
  const end = (error?: Error): void => {
    if (ended) return;
    ended = true;
    upstream?.destroy();
    raw?.destroy();
    options.onEnd?.(error);
  };
  const fail = (error: Error, pdu: Buffer): void => {
    link.send(pdu);
    link.close(1000, error.message.slice(0, 120));
    end(error);
  };
  const start = async (first: Buffer): Promise<void> => {
    const parsed = decodeRDCleanPathRequest(first);
    const timeoutMs = options.timeoutMs ?? 10_000;
    raw = await _connect(options.host, options.port, timeoutMs);
    raw.write(parsed.x224ConnectionRequest);
    const confirm = await _readTpkt(raw, timeoutMs);
    const negotiation = _selectedProtocol(confirm);
    if (negotiation.failure !== undefined) {
      fail(new RdpConnectError(`${options.host}:${options.port} refused the protocol negotiation (failure code ${negotiation.failure}): it may require NLA or a security layer this client does not offer`), encodeRDCleanPathError({ errorCode: NEGOTIATION_ERROR_CODE, x224ConnectionConfirm: confirm }));
      return;
    }
    const selected = negotiation.selected;
    if (!(selected & (PROTOCOL_SSL | PROTOCOL_HYBRID | PROTOCOL_HYBRID_EX))) {
      fail(new RdpConnectError(`${options.host}:${options.port} offers only standard RDP security (no TLS); set its security layer to TLS or negotiate (xrdp: security_layer=tls)`), encodeRDCleanPathError({ errorCode: GENERAL_ERROR_CODE }));
      return;
    }
    upstream = await _tls(raw, options.host, timeoutMs);
    const chain = _chain(upstream);
    const certSha256 = createHash('sha256').update(chain[0] ?? Buffer.alloc(0)).digest('hex');
    if (options.serverCertSha256 && options.serverCertSha256.toLowerCase() !== certSha256) {
      fail(new RdpConnectError(`${options.host}:${options.port} presented a certificate with sha256 ${certSha256}, not the pinned ${options.serverCertSha256}; check the desktop's server_cert_sha256`), encodeRDCleanPathError({ errorCode: GENERAL_ERROR_CODE, tlsAlertCode: 42 }));
      return;
    }
    patcher = new ClientStreamPatcher({ autologon: selected === PROTOCOL_SSL, withoutRemoteFx: !options.remoteFx, colourDepth: selected === PROTOCOL_SSL ? 24 : 32 });
    options.onConnected?.({ selectedProtocol: selected, certSha256 });
    link.send(encodeRDCleanPathResponse({ x224ConnectionConfirm: confirm, serverCertChain: chain, serverAddr: `${raw.remoteAddress ?? options.host}:${raw.remotePort ?? options.port}` }));
    const tlsSocket = upstream;
    const order = new CliprdrStartOrder();
    tlsSocket.on('data', (chunk: Buffer) => {
      if (order.done) link.send(chunk);
      else for (const piece of order.push(chunk)) link.send(piece);
      if (link.queuedBytes > MAX_QUEUED_BYTES) tlsSocket.pause();
    });
    link.onDrain = () => tlsSocket.resume();
    tlsSocket.on('error', (error) => {
      link.close(1011, 'RDP host connection failed');
      end(new RdpConnectError(`the connection to ${options.host}:${options.port} failed: ${error.message}`));
    });
    tlsSocket.on('close', () => {
      link.close(1000, 'RDP host closed the connection');
      end();
    });
  };
  return {
    onMessage(bytes) {
      if (ended) return;
      if (!request) {
        request = bytes;
        start(bytes).catch((error: unknown) => {
          const err = error instanceof Error ? error : new Error(String(error));
          const wsa = (err as NodeJS.ErrnoException).code === 'ECONNREFUSED' ? 10061 : (err as NodeJS.ErrnoException).code === 'ETIMEDOUT' ? 10060 : undefined;
          fail(err instanceof RdpConnectError ? err : new RdpConnectError(`cannot reach the RDP host ${options.host}:${options.port}: ${err.message}`), encodeRDCleanPathError({ errorCode: GENERAL_ERROR_CODE, ...(wsa ? { wsaLastError: wsa } : {}) }));
        });
        return;
      }
      if (!upstream) return;
      try {
        upstream.write(patcher ? patcher.push(bytes) : bytes);
      } catch (error) {
        link.close(1011, 'malformed RDP stream from the client');
        end(error as Error);
      }
    },
    onClose() {
      end();
    },
  };
}

function _connect(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, noDelay: true });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** Reads exactly one TPKT frame (the X.224 confirm) and leaves the socket paused. */
function _readTpkt(socket: net.Socket, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const done = (error?: Error, frame?: Buffer): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      socket.pause();
      if (error) reject(error);
      else resolve(frame!);
    };
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length < 4) return;
      if (buffered[0] !== 0x03) return done(new RdpConnectError('the RDP host answered with something other than a TPKT frame; is it an RDP server?'));
      const length = buffered.readUInt16BE(2);
      if (length < 11 || length > 1024) return done(new RdpConnectError(`the RDP host sent an X.224 confirm of ${length} bytes`));
      if (buffered.length < length) return;
      // The host speaks only after the client's TLS hello, so nothing follows the confirm.
      if (buffered.length > length) socket.unshift(buffered.subarray(length));
      done(undefined, buffered.subarray(0, length));
    };
    const onError = (error: Error): void => done(error);
    const onClose = (): void => done(new RdpConnectError('the RDP host closed the connection during negotiation'));
    const timer = setTimeout(() => done(new RdpConnectError(`the RDP host sent no X.224 confirm within ${timeoutMs} ms`)), timeoutMs);
    socket.on('data', onData);
    socket.once('error', onError);
    socket.once('close', onClose);
  });
}

/** The protocol the host selected in its X.224 confirm (RDP_NEG_RSP), or its failure code. */
function _selectedProtocol(confirm: Buffer): { selected: number; failure?: number } {
  // TPKT(4) LI(1) CC(1) DST-REF(2) SRC-REF(2) CLASS(1) then optional RDP_NEG_RSP/FAILURE (8).
  if (confirm.length < 19) return { selected: 0 };
  const type = confirm[11];
  const value = confirm.readUInt32LE(15);
  if (type === 0x03) return { selected: 0, failure: value };
  return { selected: type === 0x02 ? value : 0 };
}

function _tls(socket: net.Socket, host: string, timeoutMs: number): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    // RDP hosts present self-signed certificates; trust is the pin (serverCertSha256), checked by the caller.
    const secure = tls.connect({ socket, rejectUnauthorized: false, ...(net.isIP(host) ? {} : { servername: host }) });
    const timer = setTimeout(() => {
      secure.destroy();
      reject(new RdpConnectError(`TLS with the RDP host did not complete within ${timeoutMs} ms`));
    }, timeoutMs);
    secure.once('secureConnect', () => {
      clearTimeout(timer);
      resolve(secure);
    });
    secure.once('error', (error) => {
      clearTimeout(timer);
      reject(new RdpConnectError(`TLS with the RDP host failed: ${error.message}`));
    });
  });
}

/** The host's certificate chain as DER, leaf first. */
function _chain(socket: tls.TLSSocket): Buffer[] {
  const out: Buffer[] = [];
  let cert = socket.getPeerX509Certificate() as X509Certificate | undefined;
  const seen = new Set<string>();
  while (cert && !seen.has(cert.fingerprint256) && out.length < 8) {
    seen.add(cert.fingerprint256);
    out.push(cert.raw);
    cert = cert.issuerCertificate;
  }
  return out;
}
