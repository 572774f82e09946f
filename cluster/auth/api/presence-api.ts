/** Heartbeats from agents and proxies; the record is keyed by the caller's certificate, never by the request. */
import type { AuthService } from '../../api/gen/postern/auth/v1/auth_pb.ts';
import type { ServiceHandlers } from '../../api/grpc-glue.ts';
import { AccessDeniedError } from '../../../protocols/errors.ts';
import { heartbeatIntervalMs } from '../presence/presence-store.ts';
import type { AuthDeps, CallContext } from './auth-deps.ts';

type Handlers = ServiceHandlers<(typeof AuthService)['method'], CallContext>;

/** The presence handlers. */
export function presenceApi(deps: AuthDeps): Pick<Handlers, 'heartbeat'> {
  return {
    async heartbeat(request, ctx) {
      await deps.authorizer.requireSystemRole(ctx, 'send heartbeats', ['proxy', 'node', 'db', 'app', 'kube', 'desktop']);
      const identity = deps.authorizer.requireIdentity(ctx);
      if (identity.kind !== 'host') throw new AccessDeniedError('only hosts send heartbeats');
      await deps.presence.heartbeat({
        kind: identity.systemRoles.includes('proxy') ? 'proxy' : 'node',
        hostId: identity.hostId,
        nodeName: identity.nodeName,
        systemRoles: identity.systemRoles,
        services: request.services,
        publicAddr: request.publicAddr || undefined,
        peerAddr: ctx.peerAddr,
        inventoryJson: request.inventoryJson,
        servedJson: request.servedJson,
      });
      if (identity.systemRoles.includes('proxy')) {
        for (const extension of deps.extensions) await extension.onHeartbeat?.(deps, { hostId: identity.hostId, connectedClusters: request.connectedClusters });
      }
      return { intervalSeconds: BigInt(heartbeatIntervalMs / 1000) };
    },
  };
}
