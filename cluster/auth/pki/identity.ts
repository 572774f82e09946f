/**
 * Who a certificate speaks for. The same identity is carried by a user's X.509
 * certificate (as extensions, see x509-extensions.ts) and by their SSH certificate
 * (principals = logins, extensions for the rest), so every service makes the same
 * decision whichever protocol the user came in on.
 */

/** Where a certificate sends its holder for one protocol. */
export interface DatabaseRoute {
  service: string;
  user?: string;
  database?: string;
}

export interface AppRoute {
  name: string;
  sessionId: string;
  publicAddr?: string;
}

/** Identity of a person or bot, issued by the user CA. */
export interface UserIdentity {
  kind: 'user';
  username: string;
  roles: string[];
  traits: Record<string, string[]>;
  logins: string[];
  /** The cluster that issued the certificate. */
  cluster: string;
  /** The cluster requests should be routed to (a leaf, or the issuing cluster). */
  routeToCluster: string;
  routeToDatabase?: DatabaseRoute;
  routeToKubeCluster?: string;
  routeToApp?: AppRoute;
  mfaVerified: boolean;
  bot: boolean;
  expires: Date;
}

/** System roles a host certificate may carry. */
export const systemRoles = ['auth', 'proxy', 'node', 'db', 'app', 'kube', 'desktop', 'admin', 'bot'] as const;
export type SystemRole = (typeof systemRoles)[number];

/** Identity of an agent, proxy or auth server, issued by the host CA. */
export interface HostIdentity {
  kind: 'host';
  hostId: string;
  nodeName: string;
  cluster: string;
  systemRoles: SystemRole[];
  expires: Date;
}

export type Identity = UserIdentity | HostIdentity;
