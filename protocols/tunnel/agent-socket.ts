/**
 * The agent's tunnel connection: TLS over a DecoupledSocket over TCP, so the agent's
 * HTTP/2 session can sit on the TLS socket natively.
 *
 * ```
 * AgentTunnel's Http2Session ─(native)─ TLS (native) ─(JS, per TCP read)─ DecoupledSocket ─ TCP
 * ```
 *
 * Why below TLS: Node's Http2Session stops reading while one of its writes is in
 * progress, and two such ends can deadlock (decoupled-socket.ts). Decoupling above TLS
 * (the session on a JS wrapper of the TLS socket) also puts every 16 KiB TLS record
 * through JS and copies it twice; below TLS, only TCP reads (up to 64 KiB, into one
 * reused buffer) cross JS, and the session's writes still complete at once because
 * TLS's writes to the wire do. Measured on loopback (agent CPU per MiB received through
 * the tunnel, as a multiple of a direct TLS sink's in the same agent, paired runs):
 * 1.9-2.2x above TLS, 1.2-1.4x below; sent: 1.7x and 1.5x.
 */
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { DecoupledSocket } from './decoupled-socket.ts';

/** The wire under each TLS socket made by connectAgentSocket. */
const _wires = new WeakMap<tls.TLSSocket, DecoupledSocket>();

/** Writes queued for the network beyond this fail the tunnel until AgentTunnel sets its own bound. */
const _defaultMaxQueuedBytes = 64 * 1024 * 1024;

/**
 * Opens TCP to `options.host:options.port` and TLS over it, with the decoupled wire
 * between; use it as `tls.connect` (same options and events: 'secureConnect', 'error'),
 * then hand the socket to AgentTunnel. Certificate checks are tls.connect's own, unchanged.
 */
export function connectAgentSocket(options: tls.ConnectionOptions): tls.TLSSocket {
  const { host, port, family, localAddress, localPort, lookup, hints } = options as tls.ConnectionOptions & Partial<net.TcpNetConnectOpts>;
  if (port === undefined || options.socket !== undefined || options.path !== undefined) {
    throw new TypeError('connectAgentSocket needs a TCP host and port (and no socket or path)');
  }
  const wire = DecoupledSocket.connect(
    { host, port, family, localAddress, localPort, lookup, hints, noDelay: true }, // stream opens are small frames; Nagle would delay them
    { maxQueuedBytes: _defaultMaxQueuedBytes },
  );
  // Not a Duplex, only what Node's JSStreamSocket (which TLS wraps it in) calls.
  const socket = tls.connect({ ...options, socket: wire as unknown as Duplex });
  // tls.connect sets `timeout` only on sockets it connects itself.
  if (options.timeout) socket.setTimeout(options.timeout);
  _wires.set(socket, wire); // destroying the TLS socket destroys the wire and TCP (JSStreamSocket does)
  return socket;
}

/** The decoupled wire under `socket` when connectAgentSocket made it; otherwise undefined. */
export function agentSocketWire(socket: Duplex): DecoupledSocket | undefined {
  return socket instanceof tls.TLSSocket ? _wires.get(socket) : undefined;
}
