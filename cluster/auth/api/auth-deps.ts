/** What the Auth API's handlers are built from; assembled once by auth-server.ts. */
import type { Backend } from '../backend/backend.ts';
import type { Clock } from '../../common/clock.ts';
import type { Logger } from '../../common/logger.ts';
import type { UserStore } from '../users/user-store.ts';
import type { TokenStore } from '../tokens/token-store.ts';
import type { AuditLog } from '../audit/audit-log.ts';
import type { ResourceStore } from '../resources/resource-store.ts';
import type { ResourceRegistry } from '../../access/resources/registry.ts';
import type { CertAuthorities } from '../pki/authorities.ts';
import type { CertIssuer } from '../pki/cert-issuer.ts';
import type { Authorizer } from './authorizer.ts';
import type { PresenceStore } from '../presence/presence-store.ts';
import type { AuthExtension, ResourceHooks } from './auth-extension.ts';

export interface AuthDeps {
  clusterName: string;
  version: string;
  backendName: string;
  backend: Backend;
  clock: Clock;
  logger: Logger;
  users: UserStore;
  tokens: TokenStore;
  audit: AuditLog;
  resources: ResourceStore;
  registry: ResourceRegistry;
  authorities: CertAuthorities;
  issuer: CertIssuer;
  authorizer: Authorizer;
  presence: PresenceStore;
  /** Longest certificate a login may get, whatever the roles say. */
  maxSessionTtlMs: number;
  /** Hooks by resource kind, from the extensions (trusted clusters). */
  resourceHooks: Record<string, ResourceHooks>;
  extensions: readonly AuthExtension[];
}

export type { CallContext } from './call-context.ts';
