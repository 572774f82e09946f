/**
 * The web UI's parts at the proxy, built in one place: the static files, the
 * sessions, the /v1/webapi endpoints and the terminal websockets (docs/web-ui.md).
 */
import type { AuthClient } from '../api/auth-client.ts';
import type { Logger } from '../common/logger.ts';
import type { RateLimiter } from './rate-limiter.ts';
import type { ServiceDialer } from './service-dialer.ts';
import { WebAssets, type WebAssetSource } from './web-assets.ts';
import { WebSessionRoutes } from './web-session-routes.ts';
import { WebSessions } from './web-sessions.ts';
import type { Duplex } from 'node:stream';
import type http from 'node:http';
import { WebTerminals, type WebTerminalAuditEvent } from './web-terminal.ts';
import { WebDesktops } from './web-desktop.ts';

export interface WebUi {
  assets: WebAssets;
  sessions: WebSessions;
  routes: WebSessionRoutes;
  terminals: WebTerminals;
  desktops: WebDesktops;
  /** Websocket upgrades: desktops by their path, terminals (and refusals) otherwise. */
  upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void>;
  close(): void;
}

export interface WebUiOptions {
  proxyAuth: () => AuthClient;
  authAddr: string;
  hostCaPems: () => readonly string[];
  clusterName: () => string;
  /** Reaches nodes and desktops here and in leaves; lists leaves' resources. */
  dialer: ServiceDialer;
  logger: Logger;
  /** Shared with the /v1/login endpoint. */
  loginLimiter: RateLimiter;
  idleTimeoutSeconds?: number;
  assetSource?: WebAssetSource;
}

/** Builds the web UI's parts. */
export function createWebUi(options: WebUiOptions): WebUi {
  const { logger } = options;
  const sessions = new WebSessions({ proxyAuth: options.proxyAuth, authAddr: options.authAddr, hostCaPems: options.hostCaPems, logger, idleTimeoutSeconds: options.idleTimeoutSeconds });
  const emit = (event: Record<string, unknown>): void =>
    void options.proxyAuth().emitAudit({ eventJson: JSON.stringify(event) }, { deadlineMs: 5_000 })
      .catch((error: unknown) => logger.warn({ err: error }, 'cannot send a web UI audit event to the auth service'));
  const routes = new WebSessionRoutes({
    sessions,
    clusterName: options.clusterName,
    loginLimiter: options.loginLimiter,
    dialer: options.dialer,
    audit: (event) => emit({
      type: 'access.denied',
      identity: { user: event.user, roles: event.roles, addr: event.clientIp.slice(0, 64) },
      resource: { kind: 'api', name: `${event.method} ${event.path}`.slice(0, 1024) },
      outcome: 'deny',
      reason: event.reason.slice(0, 1024),
      fields: { via: 'web' },
    }),
  });
  const audit = (event: WebTerminalAuditEvent): void => emit({
    type: 'access.denied',
    identity: { user: event.user, roles: event.roles, addr: event.remoteAddr.slice(0, 64) },
    resource: { kind: 'node', name: event.node.slice(0, 1024) || 'unknown node' },
    outcome: 'deny',
    reason: event.reason.slice(0, 1024),
    fields: { protocol: 'ssh', via: 'web', login: event.login, cluster: event.cluster },
  });
  const terminals = new WebTerminals({ routes, dialer: options.dialer, logger: logger.child({ part: 'web-terminal' }), audit });
  const desktops = new WebDesktops({ routes, dialer: options.dialer, logger: logger.child({ part: 'web-desktop' }) });
  return {
    assets: new WebAssets(options.assetSource),
    sessions,
    routes,
    terminals,
    desktops,
    upgrade: (req, socket, head) => (/^\/v1\/webapi\/clusters\/[^/]+\/desktops\//.test(req.url ?? '') ? desktops.upgrade(req, socket, head) : terminals.upgrade(req, socket, head)),
    close() {
      terminals.close();
      desktops.close();
      sessions.close();
    },
  };
}
