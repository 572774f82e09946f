/**
 * How code outside cluster/ (root/, leaf/) adds to the Auth Service without the core
 * importing it: extra gRPC handlers, and hooks around writes of the resource kinds it
 * owns. `postern start` passes the extensions to AuthServer.start.
 *
 * ```ts
 * AuthServer.start({ ...options, extensions: [rootAuthExtension(), leafAuthExtension()] });
 * ```
 */
import type { AuthService } from '../../api/gen/postern/auth/v1/auth_pb.ts';
import type { ServiceHandlers } from '../../api/grpc-glue.ts';
import type { Resource } from '../../access/resources/resource.ts';
import type { AuthDeps, CallContext } from './auth-deps.ts';

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
