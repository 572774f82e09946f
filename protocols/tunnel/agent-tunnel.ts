import diagnostics_channel from 'node:diagnostics_channel';
import http2, { type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import { PosternError } from '../errors.ts';
import { TunnelRejectedError } from './errors.ts';
import { DIAL_METHOD, DIAL_PATH, HEADER_IDENTITY, HEADER_REASON, HEADER_SERVICE, encodeReason, extraHeaders, isValidService } from './headers.ts';
import { DEFAULT_MAX_CONCURRENT_STREAMS, connectionWindow, tunnelSessionOptions, tunnelSettings, type TunnelOptions } from './settings.ts';
import { TunnelSession } from './tunnel-session.ts';
import { DecoupledSocket } from './decoupled-socket.ts';
import { agentSocketWire } from './agent-socket.ts';

/** One stream the proxy opened towards this agent. */
export interface IncomingDial {
  /** The service asked for (`postern-service`). */
  service: string;
  /** The caller's identity as the proxy sent it (`postern-identity`); opaque here, checked by the handler. */
  identity: string;
  /** Any other headers the proxy added. */
  headers: Readonly<Record<string, string>>;
  /** The raw bytes of the stream, both ways; ending it half-closes. */
  stream: Duplex;
}

/**
 * Decides on and serves one dial. Resolving accepts it (status 200, if the handler has
 * not written yet); throwing refuses it: a {@link TunnelRejectedError} with its status,
 * `PST_ACCESS_DENIED` 403, `PST_UNAUTHENTICATED` 401, `PST_NOT_FOUND` 404,
 * `PST_BAD_INPUT` 400, anything else 502. The reason goes back to the proxy.
 */
export type DialHandler = (dial: IncomingDial) => void | Promise<void>;

/** Options for {@link AgentTunnel}. */
export interface AgentTunnelOptions extends TunnelOptions {
  onStream: DialHandler;
  /** Streams served at once; more are refused by HTTP/2. Default 1000. */
  maxConcurrentStreams?: number;
}

const openChannel = diagnostics_channel.channel('postern:tunnel:stream');
const refuseChannel = diagnostics_channel.channel('postern:tunnel:refuse');
const STATUS_BY_CODE: Record<string, number> = {
  PST_ACCESS_DENIED: 403, PST_UNAUTHENTICATED: 401, PST_NOT_FOUND: 404, PST_BAD_INPUT: 400,
};
const _noop = (): void => {};

function _refusal(err: unknown): { status: number; reason: string } {
  if (err instanceof TunnelRejectedError) return { status: err.status, reason: err.reason };
  if (err instanceof PosternError) return { status: STATUS_BY_CODE[err.code] ?? 502, reason: err.message };
  return { status: 502, reason: `the service handler failed: ${err instanceof Error ? err.message : String(err)}` };
}

/**
 * The agent's end of a reverse tunnel: the agent dialled out over TLS and is the
 * HTTP/2 *server* on that socket; every stream the proxy opens is handed to `onStream`.
 *
 * @example
 * const socket = connectAgentSocket({ host, port, ALPNProtocols: ['postern-tunnel'], cert, key, ca });
 * await once(socket, 'secureConnect');
 * const tunnel = new AgentTunnel(socket, {
 *   onStream: async ({ service, identity, stream }) => {
 *     const target = await connectTo(service, identity); // throws TunnelRejectedError(403, ...) to refuse
 *     void pipeBidirectional(stream, target);
 *   },
 * });
 * tunnel.on('close', (reason) => scheduleReconnect(reason));
 */
export class AgentTunnel extends TunnelSession {
  readonly #onStream: DialHandler;
  #active = 0;

  /**
   * `socket`: a TLS socket from {@link connectAgentSocket} (fast: the session sits on it
   * natively), or any other connected TLS socket (the session then sits on a JS wrapper
   * of it, which costs about half as much CPU again per byte).
   */
  constructor(socket: Duplex, options: AgentTunnelOptions) {
    // The agent's session must never stop reading while it writes, or bulk data both ways
    // can deadlock the tunnel; see DecoupledSocket. The proxy keeps Node's fast path.
    const maxQueuedBytes = Math.max(64 * 1024 * 1024, 4 * connectionWindow(options));
    const underTls = agentSocketWire(socket);
    if (underTls) underTls.maxQueuedBytes = maxQueuedBytes;
    // Not a Duplex, only what Node's JSStreamSocket (which wraps it) calls; see DecoupledSocket.
    const wire = underTls ? socket : new DecoupledSocket(socket, { maxQueuedBytes }) as unknown as Duplex;
    const session = http2.performServerHandshake(wire, {
      ...tunnelSessionOptions(),
      settings: tunnelSettings(options, { maxConcurrentStreams: options.maxConcurrentStreams ?? DEFAULT_MAX_CONCURRENT_STREAMS }),
    });
    super(session, socket, options);
    this.#onStream = options.onStream;
    session.on('stream', (stream, headers) => this.#serve(stream, headers));
  }

  /** Streams currently open. */
  get activeStreams(): number {
    return this.#active;
  }

  #serve(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    this.#active++;
    stream.once('close', () => this.#active--);
    stream.on('error', _noop); // the handler's pipe sees errors too; an unheard one must not crash the agent
    const service = headers[HEADER_SERVICE];
    if (headers[':method'] !== DIAL_METHOD || headers[':path'] !== DIAL_PATH) {
      return this.#refuse(stream, String(service), { status: 404, reason: `no such tunnel endpoint: ${headers[':method']} ${headers[':path']}` });
    }
    if (typeof service !== 'string' || !isValidService(service)) {
      return this.#refuse(stream, String(service), { status: 400, reason: 'missing or malformed postern-service header' });
    }
    const identity = headers[HEADER_IDENTITY];
    const dial: IncomingDial = { service, identity: typeof identity === 'string' ? identity : '', headers: extraHeaders(headers), stream };
    if (openChannel.hasSubscribers) openChannel.publish({ service, streamId: stream.id });
    Promise.resolve()
      .then(() => this.#onStream(dial))
      .then(
        () => {
          if (!stream.destroyed && !stream.headersSent) stream.respond({ ':status': 200 });
        },
        (err: unknown) => this.#refuse(stream, service, _refusal(err)),
      );
  }

  #refuse(stream: ServerHttp2Stream, service: string, refusal: { status: number; reason: string }): void {
    if (refuseChannel.hasSubscribers) refuseChannel.publish({ service, ...refusal });
    if (stream.destroyed) return;
    if (stream.headersSent) {
      // Reset, not end: what was sent must not pass for a complete answer. (close(code)
      // would send END_STREAM before the reset; destroy(error) sends only RST_STREAM.)
      stream.destroy(new TunnelRejectedError(refusal.status, refusal.reason, { service }));
      return;
    }
    stream.respond({ ':status': refusal.status, [HEADER_REASON]: encodeReason(refusal.reason) }, { endStream: true });
    stream.resume(); // discard whatever the proxy sent
  }
}
