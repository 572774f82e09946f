import net, { type Socket } from 'node:net';
import { pipeBidirectional } from '../../protocols/tunnel/pipe-bidirectional.ts';
import { splitHostPort } from '../common/diag-server.ts';
import type { Logger } from '../common/logger.ts';
import type { ProxyMetrics } from './proxy-metrics.ts';

/** Options for {@link passThrough}. */
export interface PassThroughOptions {
  /** The auth gRPC address, host:port. */
  target: string;
  logger: Logger;
  metrics: ProxyMetrics;
  /** Time allowed to connect to the target. Default 10 s. */
  connectTimeoutMs?: number;
}

/**
 * Connects a client's raw TCP connection (its ClientHello unread, still in the socket)
 * to the auth service and pipes bytes both ways, without touching TLS: mutual TLS stays
 * end to end between the client and auth. An unreachable target resets the client.
 */
export function passThrough(client: Socket, options: PassThroughOptions): void {
  const [host, port] = splitHostPort(options.target);
  const upstream = net.connect({ host, port, allowHalfOpen: true });
  let connected = false;
  upstream.setTimeout(options.connectTimeoutMs ?? 10_000, () => {
    if (!connected) upstream.destroy(new Error(`no connection within ${options.connectTimeoutMs ?? 10_000} ms`));
  });
  upstream.once('connect', () => {
    connected = true;
    upstream.setTimeout(0);
    upstream.setNoDelay(true);
  });
  client.setNoDelay(true);
  options.metrics.connection('auth-passthrough');
  options.metrics.meter(client, 'auth-passthrough');
  void pipeBidirectional(client, upstream).then(({ error }) => {
    if (connected || error === undefined) return;
    options.metrics.reject('auth-unreachable');
    options.logger.warn({ target: options.target, remoteAddr: client.remoteAddress, why: error.message }, 'cannot pass a connection through to the auth service');
  });
}
