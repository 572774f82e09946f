/**
 * The Proxy Service: one public port for agents, users and other proxies.
 *
 * ```
 *              ┌ SNI auth.postern ─────────── pass-through ──> auth gRPC (mTLS end to end)
 * public port ─┤ ALPN postern-tunnel ──────── host cert check ─> TunnelRegistry (ProxyTunnel per agent)
 *  (peek)      ├ ALPN http/1.1, h2, postern-join ─────────────> WebApi ──gRPC as the proxy──> auth
 *              ├ ALPN postern-ssh ─────────── user cert check ─> ssh-route.ts ─> dial(host, 'ssh')
 *              ├ ALPN postern-postgres ────── user cert check ─> postgres-route.ts ─> dial(host, 'db:NAME')
 *              ├ ALPN postern-mysql ───────── user cert check ─> mysql-route.ts ─> dial(host, 'db:NAME')
 *              ├ ALPN postern-kube|tcp ───────────────────────> ProtocolHandlers (later services)
 *              └ SSH-2.0- / PostgreSQL SSLRequest ────────────> ProtocolHandlers (SSLRequest: postgres-route.ts)
 *
 * user ─> proxy ─> registry.dial(hostId, service, identity) ── one HTTP/2 stream ──> agent ─> service
 * ```
 *
 * The proxy reaches the auth service only through its gRPC API, as a host with the
 * `proxy` system role; ClusterSync heartbeats, refreshes CAs and renews the identity.
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
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
import { createWebUi } from './web-ui.ts';
import { acceptSshRoute, type KnownNode, type SshRouteAuditEvent } from './ssh-route.ts';
import { SshJumpServer } from './ssh-jump.ts';
import type { Discovery } from './web-routes.ts';
import { AppWeb } from './app-web.ts';
import { KubeWeb } from './kube-web.ts';
import { AppSessions } from './app-sessions.ts';
import { acceptAppTcpRoute } from './app-tcp-route.ts';
import { readStartupPacket } from '../../protocols/postgres/startup.ts';
import { acceptMysqlRoute, type MysqlRouteOptions } from './mysql-route.ts';
import { startMysqlListener } from './mysql-listener.ts';
import { acceptPostgresCancel, acceptPostgresRoute, PostgresCancelKeys, type DatabaseDialer, type DbRouteAuditEvent } from './postgres-route.ts';
import { ServiceDialer, type ServiceDialRequest } from './service-dialer.ts';
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
  /** Web UI sessions end after this long without a request. Default 30 min. */
  webIdleTimeoutSeconds?: number;
  /** HTTP apps are served at APP.<appDomain>; default the public address host when it is a DNS name. */
  appDomain?: string;
  /** host:port of the optional dedicated MySQL listener (clients with TLS and a database certificate). */
  mysqlListenAddr?: string;
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
  /** The bound address of the MySQL listener, when one runs. */
  mysqlAddress?: string;
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
  parts.handlers.setSsh(_sshJump(parts).handle);
  const postgres = _postgresRoute(parts);
  parts.handlers.setTls(ALPN.postgres, postgres.accept);
  parts.handlers.setPostgres(postgres.accept);
  parts.handlers.setPostgresCancel(postgres.acceptCancel);
  parts.handlers.setTls(ALPN.mysql, postgres.acceptMysql);
  const mysqlListener = options.mysqlListenAddr
    ? await startMysqlListener(options.mysqlListenAddr, { ...postgres.mysqlOptions, tls: () => credentials.routerTls() })
    : undefined;
  let publicAddr = options.publicAddr ?? '';
  const appDomain = (): string | undefined => options.appDomain ?? _dnsHost(publicAddr);
  // One login budget per address for psh logins, web sign-ins and app sign-ins alike.
  const limits = _limiters(options.rateLimits);
  const sessions = new AppSessions({ auth: () => parts.auth.current.client, userCaPems: () => credentials.userCaPems(), limiter: limits.login, logger: logger.child({ part: 'apps' }) });
  const apps = new AppWeb({
    appDomain, userCaPems: () => credentials.userCaPems(), dialer, logger: logger.child({ part: 'apps' }), onRefused: (reason) => metrics.reject(reason),
    sessions: sessions.lookup, sessionsCached: sessions.cached, sessionRoutes: sessions.routes, loginUrl: sessions.loginUrl,
  });
  const kube = new KubeWeb({ userCaPems: () => credentials.userCaPems(), dialer, logger: logger.child({ part: 'kube' }), onRefused: (reason) => metrics.reject(reason) });
  parts.handlers.setTls(ALPN.kube, kube.accept);
  parts.handlers.setTls(ALPN.tcp, (socket) => acceptAppTcpRoute(socket, { userCaPems: () => credentials.userCaPems(), dialer, logger: logger.child({ part: 'tcp-apps' }), onRefused: (reason) => metrics.reject(reason) }));
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
      ...(appDomain() ? { app_domain: appDomain() } : {}),
    }),
    limits,
    jwks: _jwks(parts),
    listResources: (certificate, cluster, kind) => _listResources(parts, certificate, cluster, kind),
    logger: logger.child({ part: 'web' }),
    ui: createWebUi({
      proxyAuth: () => parts.auth.current.client,
      authAddr: options.authAddr,
      hostCaPems: () => credentials.hostCaPems(),
      clusterName: () => credentials.identity.cluster,
      dialer: parts.dialer,
      logger: logger.child({ part: 'web-ui' }),
      loginLimiter: limits.login,
      idleTimeoutSeconds: options.webIdleTimeoutSeconds,
    }),
  });
  const listener = new PublicListener({
    router: _routerSwitch(parts, (socket) => (kube.owns(socket) ? kube.accept(socket) : apps.owns(socket) ? apps.accept(socket) : web.accept(socket))),
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
    mysqlAddress: mysqlListener ? _formatAddress(mysqlListener.address() as AddressInfo) : undefined,
    close: async () => {
      for (const extension of extensions) await extension.close().catch((error: unknown) => logger.warn({ err: error }, 'closing a proxy extension failed'));
      mysqlListener?.close();
      sync.stop();
      parts.registry.closeAll();
      web.close();
      apps.close();
      kube.close();
      await listener.close();
      parts.auth.close();
    },
  };
}

/** The current router; rebuilt when the identity or the CAs change (open connections keep theirs). */
function _routerSwitch(parts: _Parts, web: (socket: TLSSocket) => void): () => PortRouter {
  const build = (): PortRouter => {
    const { options, credentials, handlers, metrics } = parts;
    const router = new PortRouter({ tls: credentials.routerTls(), sniffTimeoutMs: options.peekTimeoutMs, defaultAlpn: ALPN.http1 });
    router.route(ALPN.tunnel, _tunnelRoute(parts));
    for (const id of [ALPN.http1, ALPN.h2, ALPN.join]) router.route(id, web);
    for (const alpn of protocolAlpns) router.route(alpn, handlers.tls(alpn));
    router.ssh(handlers.ssh).postgres(handlers.postgres).postgresCancel(handlers.postgresCancel);
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

/** Sends an SSH refusal to the audit log (in the background: a slow auth never holds a connection). */
function _sshAudit(parts: _Parts, via: 'proxy' | 'jump'): (event: SshRouteAuditEvent) => void {
  const { logger } = parts;
  return (event) =>
    void parts.auth.current.client.emitAudit({
      eventJson: JSON.stringify({
        type: 'access.denied',
        identity: { addr: event.remoteAddr.slice(0, 64), ...(event.user ? { user: event.user } : {}), ...(event.roles ? { roles: event.roles } : {}) },
        resource: { kind: 'node', name: (event.node || 'unknown node').slice(0, 1024) },
        outcome: 'deny',
        reason: event.reason.slice(0, 1024),
        fields: { protocol: 'ssh', via, ...(event.login ? { login: event.login } : {}), ...(event.cluster ? { cluster: event.cluster } : {}) },
      }),
    }, { deadlineMs: 5_000 }).catch((error: unknown) => logger.warn({ err: error }, 'cannot send an ssh refusal audit event to the auth service'));
}

/** Plain SSH on the public port: the jump server for `ssh -J` (ssh-jump.ts). */
function _sshJump(parts: _Parts): SshJumpServer {
  const { logger, metrics, credentials, registry } = parts;
  return new SshJumpServer({
    hostKey: () => {
      const { ssh_key_pem: keyPem, ssh_cert: certificate } = credentials.identity;
      return keyPem && certificate ? { keyPem, certificate } : undefined;
    },
    userCaKeys: () => credentials.userSshCaKeys(),
    clusterName: () => credentials.identity.cluster,
    dialer: parts.dialer,
    logger: logger.child({ part: 'ssh-jump' }),
    onRefused: (reason) => metrics.reject(reason),
    audit: _sshAudit(parts, 'jump'),
    onConnected: (socket) => metrics.meter(socket, 'ssh'),
  });
}

/** Routes users' SSH (ALPN postern-ssh) to agents; refusals by a certificate holder are audited. */
function _sshRoute(parts: _Parts): (socket: TLSSocket) => Promise<void> {
  const { logger, metrics, credentials } = parts;
  const audit = _sshAudit(parts, 'proxy');
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

/** Routes PostgreSQL clients (single port after SSLRequest, and ALPN postern-postgres) to database agents. */
function _postgresRoute(parts: _Parts): { accept: (socket: TLSSocket) => Promise<void>; acceptCancel: (socket: Socket) => Promise<void>; acceptMysql: (socket: TLSSocket) => Promise<void>; mysqlOptions: MysqlRouteOptions } {
  const { logger, metrics, credentials } = parts;
  const audit = (event: DbRouteAuditEvent): void =>
    void parts.auth.current.client.emitAudit({
      eventJson: JSON.stringify({
        type: 'access.denied',
        identity: { addr: event.remoteAddr.slice(0, 64), ...(event.user ? { user: event.user } : {}), ...(event.roles ? { roles: event.roles } : {}) },
        resource: { kind: 'db', name: (event.database || 'unknown database').slice(0, 1024) },
        outcome: 'deny',
        reason: event.reason.slice(0, 1024),
        fields: { protocol: 'postgres', via: 'proxy' },
      }),
      eventsJson: [],
    }, { deadlineMs: 5_000 }).catch((error: unknown) => logger.warn({ err: error }, 'cannot send a database refusal audit event to the auth service'));
  const options = {
    userCaPems: () => credentials.userCaPems(),
    dial: (request: ServiceDialRequest) => parts.dialer.open(request),
    cancelKeys: new PostgresCancelKeys(),
    logger: logger.child({ part: 'postgres' }),
    onRefused: (reason: string) => metrics.reject(reason),
    audit,
    onConnected: (socket: TLSSocket) => metrics.meter(socket, 'db'),
  };
  const mysqlOptions: MysqlRouteOptions = { ...options, logger: logger.child({ part: 'mysql' }) };
  return {
    mysqlOptions,
    accept: (socket) => acceptPostgresRoute(socket, options),
    acceptMysql: (socket) => acceptMysqlRoute(socket, mysqlOptions),
    acceptCancel: async (socket) => {
      socket.on('error', () => {});
      try {
        const { parsed } = await readStartupPacket(socket, 5_000);
        if (parsed.kind === 'cancel') return await acceptPostgresCancel(socket, parsed, options);
      } catch {
        // a malformed cancel gets no answer, like PostgreSQL's
      }
      socket.destroy();
    },
  };
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

/** The host of `addr` when it is a DNS name with a dot (apps need a domain to live under). */
function _dnsHost(addr: string): string | undefined {
  const host = addr.replace(/:\d+$/, '');
  return host.includes('.') && !/^[\d.]+$/.test(host) && !host.startsWith('[') ? host : undefined;
}

/** The jwt CA's public keys from auth, cached a minute (apps verify assertions with them). */
function _jwks(parts: _Parts): () => Promise<string> {
  let cached: { at: number; json: string } | undefined;
  return async () => {
    if (cached && Date.now() - cached.at < 60_000) return cached.json;
    const { authorities } = await parts.auth.current.client.exportAuthorities({ kind: 'jwt' }, { deadlineMs: 5_000 });
    const keys = authorities.flatMap((a) => (a.jwksJson ? (JSON.parse(a.jwksJson) as { keys: unknown[] }).keys : []));
    cached = { at: Date.now(), json: JSON.stringify({ keys }) };
    return cached.json;
  };
}

function _formatAddress(bound: AddressInfo): string {
  return bound.family === 'IPv6' ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`;
}

function _defaultPublicAddr(listenAddr: string, bound: AddressInfo): string {
  const host = listenAddr.replace(/:\d+$/, '');
  const wildcard = host === '0.0.0.0' || host === '[::]' || host === '';
  return `${wildcard ? os.hostname() : host}:${bound.port}`;
}
