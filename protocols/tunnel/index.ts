/**
 * Reverse tunnel: HTTP/2 run backwards over one mutually authenticated TLS connection.
 *
 * ```
 * agent ──TLS (client cert, ALPN postern-tunnel)──> proxy port ─ PortRouter
 *   AgentTunnel = HTTP/2 server                      ProxyTunnel = HTTP/2 client
 *   http2.performServerHandshake(tls)                http2.connect(..., createConnection: () => tls)
 *   tls = connectAgentSocket(...)
 *
 * user -> proxy -> ProxyTunnel.dial(service, identity) ── one stream ──> AgentTunnel onStream
 *                                                                      -> local service / target
 * ```
 *
 * The agent dials out (so it needs no open port); the proxy opens one stream per
 * connection it forwards. A stream is `POST /dial` with `postern-service` and
 * `postern-identity` headers (headers.ts); the agent answers 200 and both sides then
 * carry raw bytes, with END_STREAM as half-close, or it refuses with a status and a
 * `postern-reason`. Resets propagate as resets (pipe-bidirectional.ts), never as ends.
 *
 * Flow control: 8 MiB stream windows, 16 MiB connection windows (settings.ts); a paused
 * reader pins at most one stream window. The agent's session never waits for the network
 * to take its writes (a DecoupledSocket: under TLS when the agent dialled with
 * connectAgentSocket, agent-socket.ts; else above it), because Node's HTTP/2 session
 * stops reading while it writes and two such ends carrying bulk data both ways can deadlock. Keepalive: HTTP/2 PING every 15 s, the tunnel is
 * closed when an ACK is 15 s late and nothing else arrived (keepalive.ts).
 *
 * For a leaf cluster's tunnel to the root, the leaf's proxy plays the agent's part.
 * Authorization is the caller's: the agent's `onStream` checks the identity and refuses
 * with a TunnelRejectedError. Diagnostics channels: `postern:tunnel:dial`,
 * `postern:tunnel:stream`, `postern:tunnel:refuse`, `postern:pipe:end`.
 */
export { AgentTunnel, type AgentTunnelOptions, type DialHandler, type IncomingDial } from './agent-tunnel.ts';
export { connectAgentSocket } from './agent-socket.ts';
export { DecoupledSocket } from './decoupled-socket.ts';
export { withBufferWritev } from './buffer-writes.ts';
export {
  TunnelClosedError,
  TunnelDialError,
  TunnelDialTimeoutError,
  TunnelPingError,
  TunnelRejectedError,
  type TunnelCloseReason,
} from './errors.ts';
export { DIAL_PATH, HEADER_IDENTITY, HEADER_REASON, HEADER_SERVICE, isValidService } from './headers.ts';
export { pipeBidirectional, type PipeResult } from './pipe-bidirectional.ts';
export { ProxyTunnel, type DialOptions, type ProxyTunnelOptions } from './proxy-tunnel.ts';
export { DEFAULT_WINDOW_SIZE, type TunnelOptions } from './settings.ts';
export { TunnelSession, type TunnelEvents } from './tunnel-session.ts';
export { TunnelLink, type LinkLogger, type LinkState, type LinkStatus, type LinkTunnel, type TunnelLinkOptions } from './tunnel-link.ts';
export { backoffCap, backoffDelay, defaultBackoff, type BackoffOptions } from './backoff.ts';
