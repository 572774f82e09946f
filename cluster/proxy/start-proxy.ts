/**
 * The Proxy Service: one public port for agents, users and other proxies.
 *
 * ```
 *              ┌ SNI auth.postern ─────────── pass-through ──> auth gRPC (mTLS end to end)
 * public port ─┤ ALPN postern-tunnel ──────── host cert check ─> TunnelRegistry (ProxyTunnel per agent)
 *  (peek)      ├ ALPN http/1.1, h2, postern-join ─────────────> WebApi ──gRPC as the proxy──> auth
 *              ├ ALPN postern-ssh ─────────── user cert check ─> ssh-route.ts ─> dial(host, 'ssh')
 *              ├ ALPN postern-postgres|mysql|kube|tcp ────────> ProtocolHandlers (later services)
 *              └ SSH-2.0- / PostgreSQL SSLRequest ────────────> ProtocolHandlers
 *
 * user ─> proxy ─> registry.dial(hostId, service, identity) ── one HTTP/2 stream ──> agent ─> service
 * ```
 *
 * The proxy reaches the auth service only through its gRPC API, as a host with the
 * `proxy` system role; ClusterSync heartbeats, refreshes CAs and renews the identity.
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import type { TLSSocket } from 'node:tls';
import { Registry } from 'prom-client';
import { ALPN } from '../../protocols/mux/alpn.ts';
import { PortRouter } from '../../protocols/mux/port-router.ts';
import type { ProxyTunnelOptions } from '../../protocols/tunnel/index.ts';
import { authServerName, connectAuth, type AuthConnection } from '../api/auth-client.ts';
import type { IdentityFile } from '../api/identity-file.ts';
import type { DiagServer } from '../common/diag-server.ts';
import type { Logger } from '../common/logger.ts';
import { versionInfo } from '../common/version.ts';
import { ClusterSync } from './cluster-sync.ts';
import { ProtocolHandlers, protocolAlpns } from './protocol-handlers.ts';
import { ProxyCredentials, type PublicCertificate } from './proxy-credentials.ts';
import { ProxyMetrics } from './proxy-metrics.ts';
import { PublicListener } from './public-listener.ts';
import { RateLimiter, type RateLimiterOptions } from './rate-limiter.ts';
import { acceptTunnel, type TunnelRefusal } from './tunnel-acceptor.ts';
import { TunnelRegistry, type TunnelInfo } from './tunnel-registry.ts';
import { auditTunnel, type TunnelAuditEvent } from './tunnel-audit.ts';
import { WebApi } from './web-api.ts';
import { acceptSshRoute, type KnownNode, type SshRouteAuditEvent } from './ssh-route.ts';
import type { Discovery } from './web-routes.ts';
import { ServiceDialer } from './service-dialer.ts';
import { ServiceDialError } from './errors.ts';
import { X509Certificate } from 'node:crypto';
import { AccessDeniedError, AuthenticationError, BadInputError } from '../../protocols/errors.ts';
import { verifyCertificateChain } from '../auth/pki/verify-certificate.ts';
import type { ProxyExtension } from './proxy-extension.ts';

/** Options for {@link startProxy}. */
export interface StartProxyOptions {
  /** The proxy's host identity (system role proxy), from the local auth server or a join. */
  identity: IdentityFile;
  /** Gets a fresh identity when two thirds of the current one's life are gone. */
  renewIdentity: (current: IdentityFile) => Promise<IdentityFile>;
  /** The auth gRPC API, host:port: the proxy's own calls and the SNI pass-through go there. */
  authAddr: string;
  /** host:port to bind; port 0 picks a free one. */
  listenAddr: string;
  /** What agents and users dial; default: the bound address (the host name for 0.0.0.0). */
  publicAddr?: string;
  /** A certificate for the public name, served instead of the host-CA one. */
  publicCertificate?: PublicCertificate;
  logger: Logger;
  /** Metrics go here (the daemon's /metrics registry); default a private one. */
  metricsRegistry?: Registry;
  /** Readiness (`/readyz` component `proxy`) is reported here. */
  diag?: DiagServer;
  /** Time for a connection's opening bytes. Default 5 s. */
  peekTimeoutMs?: number;
  rateLimits?: Partial<Record<'join' | 'login' | 'signup', RateLimiterOptions>>;
  tunnel?: ProxyTunnelOptions;
  /** Time between heartbeats until the auth service says otherwise. Default 10 s. */
  syncIntervalMs?: number;
  /** Trusted clusters (root/, leaf/) and other additions from outside the core. */
  extensions?: readonly ProxyExtension[];
}

/** A running proxy. */
export interface RunningProxy {
  /** The bound address, host:port. */
  address: string;
  publicAddr: string;
  hostId: string;
  registry: TunnelRegistry;
  handlers: ProtocolHandlers;
  metrics: ProxyMetrics;
  /** Where the metrics are registered. */
  metricsRegistry: Registry;
  credentials: ProxyCredentials;
  sync: ClusterSync;
  /** Reaches services in this cluster and its leaves; every protocol route should dial through it. */
  dialer: ServiceDialer;
  close(): Promise<void>;
}

const defaultLimits: Record<'join' | 'login' | 'signup', RateLimiterOptions> = {
  join: { burst: 30, perSecond: 1 },
  login: { burst: 10, perSecond: 0.2 },
  signup: { burst: 5, perSecond: 0.1 },
};

/** The parts of one proxy, shared by the helpers that wire them. */
interface _Parts {
  options: StartProxyOptions;
  logger: Logger;
  credentials: ProxyCredentials;
  metrics: ProxyMetrics;
  registry: TunnelRegistry;
  handlers: ProtocolHandlers;
  auth: _AuthLink;
  dialer: ServiceDialer;
}

/** Starts the proxy: binds the public port, connects to auth and starts heartbeating. */
export async function startProxy(options: StartProxyOptions): Promise<RunningProxy> {
  const logger = options.logger;
  const credentials = new ProxyCredentials(options.identity, { publicCertificate: options.publicCertificate });
  const hostId = options.identity.host_id ?? randomUUID();
  const metricsRegistry = options.metricsRegistry ?? new Registry();
  const metrics = new ProxyMetrics(metricsRegistry);
  const registry = _tunnelRegistry(metrics);
  const auth = _authLink(options.authAddr, credentials);
  const extensions = options.extensions ?? [];
  const dialer = new ServiceDialer({
    clusterName: () => credentials.identity.cluster,
    registry,
    findHosts: async (target) => JSON.parse((await auth.current.client.getResources({ kind: 'node', name: target }, { deadlineMs: 3_000 })).resourcesJson) as KnownNode[],
    listLocal: async (kind) => JSON.parse((await auth.current.client.getResources({ kind, name: '' }, { deadlineMs: 5_000 })).resourcesJson) as unknown[],
    remote: () => extensions.find((e) => e.remoteClusters)?.remoteClusters?.(),
    logger: logger.child({ part: 'dialer' }),
  });
  const parts: _Parts = {
    options, logger, credentials, metrics, registry, auth, dialer,
    handlers: new ProtocolHandlers(logger, (reason) => metrics.reject(reason)),
  };
  parts.handlers.setTls(ALPN.ssh, _sshRoute(parts));
  let publicAddr = options.publicAddr ?? '';
  const sync = new ClusterSync({
    auth: () => parts.auth.current.client, credentials, publicAddr: () => publicAddr, renew: options.renewIdentity, logger, intervalMs: options.syncIntervalMs,
    connectedClusters: () => extensions.flatMap((e) => e.connectedClusters?.() ?? []),
  });
  const web = new WebApi({
    auth: () => parts.auth.current.client,
    discovery: (): Discovery => ({
      cluster_name: credentials.identity.cluster,
      version: versionInfo().version,
      proxies: [{ host_id: hostId, public_addr: publicAddr }, ...sync.peers.filter((p) => p.host_id !== hostId)],
      ca_pins: credentials.caPins(),
    }),
    limits: _limiters(options.rateLimits),
    listResources: (certificate, cluster, kind) => _listResources(parts, certificate, cluster, kind),
    logger: logger.child({ part: 'web' }),
  });
  const listener = new PublicListener({
    router: _routerSwitch(parts, web),
    handlers: parts.handlers,
    passthroughNames: new Set([authServerName]),
    passthroughTarget: options.authAddr,
    metrics,
    logger,
    peekTimeoutMs: options.peekTimeoutMs,
  });
  const bound = await listener.listen(options.listenAddr);
  const address = _formatAddress(bound);
  publicAddr ||= _defaultPublicAddr(options.listenAddr, bound);
  options.diag?.addReadinessCheck('proxy', () => (sync.connected ? { ready: true } : { ready: false, reason: 'cannot reach the auth service' }));
  logger.info({ addr: address, publicAddr, hostId, cluster: credentials.identity.cluster }, 'proxy listening');
  void sync.start();
  for (const extension of extensions) {
    await extension.start({
      hostId, clusterName: () => credentials.identity.cluster, auth: () => parts.auth.current.client, credentials, registry, dialer, logger, tunnel: options.tunnel,
      beat: () => void sync.beat(),
    });
  }
  return {
    address, publicAddr, hostId, registry: parts.registry, handlers: parts.handlers, metrics, metricsRegistry, credentials, sync, dialer,
    close: async () => {
      for (const extension of extensions) await extension.close().catch((error: unknown) => logger.warn({ err: error }, 'closing a proxy extension failed'));
      sync.stop();
      parts.registry.closeAll();
      web.close();
      await listener.close();
      parts.auth.close();
    },
  };
}

/** The current router; rebuilt when the identity or the CAs change (open connections keep theirs). */
function _routerSwitch(parts: _Parts, web: WebApi): () => PortRouter {
  const build = (): PortRouter => {
    const { options, credentials, handlers, metrics } = parts;
    const router = new PortRouter({ tls: credentials.routerTls(), sniffTimeoutMs: options.peekTimeoutMs, defaultAlpn: ALPN.http1 });
    router.route(ALPN.tunnel, _tunnelRoute(parts));
    for (const id of [ALPN.http1, ALPN.h2, ALPN.join]) router.route(id, web.accept);
    for (const alpn of protocolAlpns) router.route(alpn, handlers.tls(alpn));
    router.ssh(handlers.ssh).postgres(handlers.postgres);
    metrics.addRouter(router.stats);
    return router;
  };
  let router = build();
  parts.credentials.on('change', () => {
    router = build();
    parts.auth.reconnect();
    parts.logger.info('proxy TLS settings rebuilt after an identity or CA change');
  });
  return () => router;
}

/** Accepts reverse tunnels; refusals are counted, and audited when a certificate was presented. */
function _tunnelRoute(parts: _Parts): (socket: TLSSocket) => void {
  const { logger, metrics, credentials, registry } = parts;
  const audit = (event: TunnelAuditEvent): void =>
    void auditTunnel(parts.auth.current.client, event).catch((error: unknown) => logger.warn({ err: error }, 'cannot send a tunnel audit event to the auth service'));
  const onRefused = (reason: TunnelRefusal, detail: { remoteAddr: string; message: string; presented: boolean }): void => {
    metrics.reject(reason);
    // Anonymous refusals are scanner noise: logged and counted, not audited.
    if (detail.presented) audit({ outcome: 'deny', remoteAddr: detail.remoteAddr, reason: `${reason}: ${detail.message}` });
  };
  const onAccepted = (info: TunnelInfo, socket: TLSSocket): void => {
    metrics.meter(socket, 'tunnel');
    audit({ outcome: 'allow', remoteAddr: info.remoteAddr, hostId: info.hostId, roles: info.systemRoles });
  };
  const extensions = parts.options.extensions ?? [];
  const acceptForeign = (socket: TLSSocket, certificate: Buffer): boolean => extensions.some((e) => e.acceptForeignTunnel?.(socket, certificate));
  return (socket) => acceptTunnel(socket, { registry, hostCaPems: () => credentials.hostCaPems(), logger, onRefused, onAccepted, tunnel: parts.options.tunnel, acceptForeign });
}

/** Routes users' SSH (ALPN postern-ssh) to agents; refusals by a certificate holder are audited. */
function _sshRoute(parts: _Parts): (socket: TLSSocket) => Promise<void> {
  const { logger, metrics, credentials, registry } = parts;
  const audit = (event: SshRouteAuditEvent): void =>
    void parts.auth.current.client.emitAudit({
      eventJson: JSON.stringify({
        type: 'access.denied',
        identity: { addr: event.remoteAddr.slice(0, 64), ...(event.user ? { user: event.user } : {}), ...(event.roles ? { roles: event.roles } : {}) },
        resource: { kind: 'node', name: (event.node || 'unknown node').slice(0, 1024) },
        outcome: 'deny',
        reason: event.reason.slice(0, 1024),
        fields: { protocol: 'ssh', via: 'proxy', ...(event.login ? { login: event.login } : {}), ...(event.cluster ? { cluster: event.cluster } : {}) },
      }),
    }, { deadlineMs: 5_000 }).catch((error: unknown) => logger.warn({ err: error }, 'cannot send an ssh refusal audit event to the auth service'));
  const sshLogger = logger.child({ part: 'ssh' });
  return (socket) => acceptSshRoute(socket, {
    dialer: parts.dialer,
    userCaPems: () => credentials.userCaPems(),
    logger: sshLogger,
    onRefused: (reason) => metrics.reject(reason),
    audit,
    onConnected: (s) => metrics.meter(s, 'ssh'),
  });
}

/** Lists resources for a user certificate holder, here or in a leaf (the leaf filters by its own rules). */
async function _listResources(parts: _Parts, certificate: Buffer | undefined, cluster: string, kind: string): Promise<unknown[]> {
  if (!certificate) throw new AuthenticationError('listing resources needs your user certificate; log in with psh login');
  let pem: string;
  try {
    verifyCertificateChain(certificate, { trustedCaCerts: parts.credentials.userCaPems(), expectedKind: 'user', usage: 'client' });
    pem = new X509Certificate(certificate).toString();
  } catch (error) {
    throw new AuthenticationError(`your certificate is not accepted here: ${(error as Error).message}; log in again with psh login`);
  }
  if (parts.dialer.isLocal(cluster)) throw new BadInputError('list this cluster\'s resources through the auth API (psh ls without --cluster)');
  try {
    return await parts.dialer.list(cluster, kind, Buffer.from(pem).toString('base64'));
  } catch (error) {
    if (error instanceof ServiceDialError) throw new AccessDeniedError(error.message);
    throw error;
  }
}

function _tunnelRegistry(metrics: ProxyMetrics): TunnelRegistry {
  const registry = new TunnelRegistry();
  registry.on('add', () => metrics.tunnels.set(registry.size));
  registry.on('remove', () => metrics.tunnels.set(registry.size));
  registry.on('dial', (record) => {
    metrics.stats.dials[record.outcome]++;
    if (record.outcome !== 'no-tunnel') metrics.dialSeconds.observe(record.seconds);
  });
  return registry;
}

function _limiters(overrides: StartProxyOptions['rateLimits'] = {}): { join: RateLimiter; login: RateLimiter; signup: RateLimiter } {
  return {
    join: new RateLimiter(overrides.join ?? defaultLimits.join),
    login: new RateLimiter(overrides.login ?? defaultLimits.login),
    signup: new RateLimiter(overrides.signup ?? defaultLimits.signup),
  };
}

/** The proxy's gRPC connection to auth, replaced when its identity changes. */
interface _AuthLink {
  current: AuthConnection;
  reconnect(): void;
  close(): void;
}

function _authLink(authAddr: string, credentials: ProxyCredentials): _AuthLink {
  const retired = new Set<AuthConnection>();
  const link: _AuthLink = {
    current: connectAuth(authAddr, credentials.identity),
    reconnect() {
      const old = link.current;
      retired.add(old);
      link.current = connectAuth(authAddr, credentials.identity);
      // Calls in flight on the old connection may finish.
      setTimeout(() => { old.close(); retired.delete(old); }, 30_000).unref();
    },
    close() {
      link.current.close();
      for (const old of retired) old.close();
    },
  };
  return link;
}

function _formatAddress(bound: AddressInfo): string {
  return bound.family === 'IPv6' ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`;
}

function _defaultPublicAddr(listenAddr: string, bound: AddressInfo): string {
  const host = listenAddr.replace(/:\d+$/, '');
  const wildcard = host === '0.0.0.0' || host === '[::]' || host === '';
  return `${wildcard ? os.hostname() : host}:${bound.port}`;
}
