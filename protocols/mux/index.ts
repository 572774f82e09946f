/**
 * One public port for every protocol: the proxy's listener peeks at the first bytes of
 * each connection and hands it to the right handler.
 *
 * Openings recognised (sniff.ts), each decided within 9 bytes:
 *
 * ```
 * 16 03 0v LL LL 01          TLS ClientHello  -> TLS, then routed by ALPN id (alpn.ts)
 * "SSH-2.0-" / "SSH-1.99-"   OpenSSH, `ssh -J` -> the SSH jump server (raw socket, banner unread)
 * 00 00 00 08 04 d2 16 2f    PostgreSQL SSLRequest -> 'S', TLS, the Postgres path (`psql sslmode=...`)
 * 00 00 00 08 04 d2 16 30    PostgreSQL GSSENCRequest -> 'N', then the client asks for TLS
 * anything else              dropped at once; silence is dropped at the sniff timeout
 * ```
 *
 * Path: client -> proxy port -> PortRouter -> handler (tunnel registry, join service,
 * SSH jump server, database proxy, kube forwarder, web UI). MySQL's server speaks first,
 * so MySQL clients arrive through ALPN `postern-mysql` (`psh proxy db`).
 *
 * No policy here: which certificate a route needs is a flag, what it means is the
 * handler's business. Drops are counted in `PortRouter.stats` and published on the
 * `postern:mux:drop` diagnostics channel; routed connections on `postern:mux:route`.
 */
export { ALPN, isValidAlpnId, type AlpnId } from './alpn.ts';
export { ConnectionDroppedError, RouteConfigError, type DropReason } from './errors.ts';
export {
  PortRouter,
  type PortRouterOptions,
  type PortRouterStats,
  type RawRouteHandler,
  type RouteOptions,
  type RouterTlsOptions,
  type TlsRouteHandler,
} from './port-router.ts';
export { POSTGRES_REQUEST_LENGTH, classify, sniff, type SniffKind, type SniffOptions, type SniffResult } from './sniff.ts';
