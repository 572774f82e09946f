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
import type { RecordingStore } from '../recordings/recording-store.ts';
import type { AuthService } from '../../api/gen/postern/auth/v1/auth_pb.ts';
import type { ServiceHandlers } from '../../api/grpc-glue.ts';
import type { Resource } from '../../access/resources/resource.ts';
import type { CallContext } from './call-context.ts';

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
  /** Session recordings uploaded by agents. */
  recordings: RecordingStore;
  /** Longest certificate a login may get, whatever the roles say. */
  maxSessionTtlMs: number;
  /** Hooks by resource kind, from the extensions (trusted clusters). */
  resourceHooks: Record<string, ResourceHooks>;
  extensions: readonly AuthExtension[];
}

export type { CallContext } from './call-context.ts';

/* Extensions (root/, leaf/): see auth-extension.ts. Defined here so the two files form no cycle. */

export type AuthHandlers = ServiceHandlers<(typeof AuthService)['method'], CallContext>;

/** Hooks for one resource kind; each runs after the caller was authorized. */
export interface ResourceHooks {
  /** Before a write: check and act (e.g. exchange CAs); returns what to store. Throw to refuse. */
  beforeWrite?(resource: Resource, context: { upsert: boolean; ctx: CallContext }): Promise<Resource>;
  /** After a delete. */
  afterDelete?(name: string, ctx: CallContext): Promise<void>;
  /** What readers see of a stored resource (e.g. without secrets, with status). */
  view?(resources: Resource[], ctx: CallContext): Promise<unknown[]>;
}

/** One extension of the Auth Service. */
export interface AuthExtension {
  handlers?(deps: AuthDeps): Partial<AuthHandlers>;
  resourceHooks?(deps: AuthDeps): Record<string, ResourceHooks>;
  /** Extra fields for a proxy's heartbeat (root: connected leaf clusters). */
  onHeartbeat?(deps: AuthDeps, beat: { hostId: string; connectedClusters: string[] }): Promise<void>;
}
