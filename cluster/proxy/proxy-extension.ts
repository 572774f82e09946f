/**
 * How code outside cluster/ (root/, leaf/) adds to a proxy without the core importing
 * it: a root accepts leaf proxies' tunnels and dials into leaves; a leaf keeps its
 * tunnels to roots and serves what comes through them. `postern start` passes the
 * extensions to startProxy.
 */
import type { TLSSocket } from 'node:tls';
import type { ProxyTunnelOptions } from '../../protocols/tunnel/index.ts';
import type { AuthClient } from '../api/auth-client.ts';
import type { Logger } from '../common/logger.ts';
import type { ProxyCredentials } from './proxy-credentials.ts';
import type { RemoteClusters, ServiceDialer } from './service-dialer.ts';
import type { TunnelRegistry } from './tunnel-registry.ts';

/** What an extension gets from the proxy. */
export interface ProxyExtensionContext {
  hostId: string;
  clusterName: () => string;
  auth: () => AuthClient;
  credentials: ProxyCredentials;
  registry: TunnelRegistry;
  /** Dials services in this cluster (and, on a root, its leaves). */
  dialer: ServiceDialer;
  logger: Logger;
  tunnel?: ProxyTunnelOptions;
  /** Sends a heartbeat now (e.g. when a leaf's tunnel comes or goes). */
  beat: () => void;
}

/** One extension of the proxy. */
export interface ProxyExtension {
  start(context: ProxyExtensionContext): void | Promise<void>;
  /** A `postern-tunnel` connection whose certificate is not from this cluster's host CA; true when the extension took it. */
  acceptForeignTunnel?(socket: TLSSocket, certificate: Buffer): boolean;
  /** How to reach leaves (root side). */
  remoteClusters?(): RemoteClusters;
  /** Leaf clusters whose tunnels are connected to this proxy now (heartbeat). */
  connectedClusters?(): string[];
  close(): Promise<void>;
}
