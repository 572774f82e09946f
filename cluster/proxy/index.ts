/**
 * The Proxy Service: the cluster's one public port (see start-proxy.ts for the picture).
 * `postern start` uses {@link startProxyService}; tests and embedders use {@link startProxy}.
 * Later protocol services plug into `RunningProxy.handlers` and dial agents through
 * `RunningProxy.registry`.
 */
export { startProxy, type RunningProxy, type StartProxyOptions } from './start-proxy.ts';
export { startProxyService, type ProxyServiceContext } from './proxy-service.ts';
export { TunnelRegistry, type DialRecord, type TunnelEntry, type TunnelInfo } from './tunnel-registry.ts';
export { ProtocolHandlers, protocolAlpns, type ProtocolAlpn, type SshHandler, type TlsProtocolHandler } from './protocol-handlers.ts';
export { proxyIdentityPath, type LocalAuth } from './proxy-identity.ts';
export { RateLimitedError, RequestTooLargeError, TunnelNotFoundError, ProxyIdentityError } from './errors.ts';
export type { Discovery } from './web-routes.ts';
