import diagnostics_channel from 'node:diagnostics_channel';
import http2, { type ClientHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import { TunnelDialError, TunnelDialTimeoutError, TunnelRejectedError } from './errors.ts';
import { HEADER_REASON, decodeReason, dialHeaders } from './headers.ts';
import { tunnelSessionOptions, tunnelSettings, type TunnelOptions } from './settings.ts';
import { TunnelSession } from './tunnel-session.ts';

/** Options for {@link ProxyTunnel}. */
export interface ProxyTunnelOptions extends TunnelOptions {
  /** Default time a dial waits for the agent's answer. Default 10 s. */
  dialTimeoutMs?: number;
}

/** Options for one dial. */
export interface DialOptions {
  /** Extra lower-case headers for the agent's handler (e.g. a target port). */
  headers?: Record<string, string>;
  timeoutMs?: number;
  signal?: AbortSignal;
}

const dialChannel = diagnostics_channel.channel('postern:tunnel:dial');
const _noop = (): void => {};

/**
 * The proxy's end of a reverse tunnel: on a TLS socket the agent dialled in on, the
 * proxy is the HTTP/2 *client* and opens one stream per dial.
 *
 * @example
 * router.route(ALPN.tunnel, (socket) => {
 *   const tunnel = new ProxyTunnel(socket);
 *   registry.add(tunnel);
 *   tunnel.on('close', (reason) => registry.remove(tunnel, reason));
 * }, { requireClientCert: true });
 * const stream = await tunnel.dial('ssh', identityBlob); // TunnelRejectedError on refusal
 * await pipeBidirectional(clientSocket, stream);
 */
export class ProxyTunnel extends TunnelSession {
  readonly #dialTimeoutMs: number;

  constructor(socket: Duplex, options: ProxyTunnelOptions = {}) {
    const session = http2.connect('https://postern-agent', {
      ...tunnelSessionOptions(),
      settings: tunnelSettings(options),
      createConnection: () => socket,
    });
    super(session, socket, options);
    this.#dialTimeoutMs = options.dialTimeoutMs ?? 10_000;
  }

  /**
   * Opens a stream to `service` behind the agent, carrying the caller's identity;
   * resolves once the agent accepts, with the stream's bytes as a Duplex.
   */
  dial(service: string, identity: string, options: DialOptions = {}): Promise<Duplex> {
    if (this.closed) return Promise.reject(this.closedError());
    let stream: ClientHttp2Stream;
    try {
      const headers = dialHeaders(service, identity, options.headers);
      stream = (this.session as http2.ClientHttp2Session).request(headers, { endStream: false });
    } catch (err) {
      return Promise.reject(this.closed ? this.closedError() : err);
    }
    stream.on('error', _noop); // the caller's pipe sees errors; an unheard one must not crash the proxy
    if (dialChannel.hasSubscribers) dialChannel.publish({ service });
    return this.#awaitAnswer(stream, service, options);
  }

  #awaitAnswer(stream: ClientHttp2Stream, service: string, options: DialOptions): Promise<Duplex> {
    const timeoutMs = options.timeoutMs ?? this.#dialTimeoutMs;
    return new Promise((resolve, reject) => {
      const settle = (err?: Error, cancel = true): void => {
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        stream.off('response', onResponse).off('error', onError).off('close', onClose);
        if (err === undefined) return resolve(stream);
        if (cancel && !stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
        reject(err);
      };
      const onResponse = (headers: http2.IncomingHttpHeaders): void => {
        const status = Number(headers[':status']);
        if (status === 200) return settle();
        // The agent ended its side; ending ours closes the stream without a reset.
        stream.end();
        stream.resume();
        settle(new TunnelRejectedError(status, decodeReason(headers[HEADER_REASON]), { service }), false);
      };
      const onError = (err: Error): void => settle(this.closed ? this.closedError() : new TunnelDialError(service, err.message, { cause: err }));
      const onClose = (): void => settle(this.closed ? this.closedError() : new TunnelDialError(service, `stream closed with HTTP/2 code ${stream.rstCode}`));
      const onAbort = (): void => settle(new TunnelDialError(service, 'aborted by the caller', { cause: options.signal?.reason }));
      const timer = setTimeout(() => settle(new TunnelDialTimeoutError(service, timeoutMs)), timeoutMs);
      stream.once('response', onResponse).once('error', onError).once('close', onClose);
      if (options.signal?.aborted) return onAbort();
      options.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}
