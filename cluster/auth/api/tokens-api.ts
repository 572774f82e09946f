/** Join tokens: add and remove (listing goes through resources-api as kind `token`). */
import type { AuthService } from '../../api/gen/postern/auth/v1/auth_pb.ts';
import type { ServiceHandlers } from '../../api/grpc-glue.ts';
import { BadInputError } from '../../../protocols/errors.ts';
import { tokenRoles, type TokenRole } from '../tokens/token-store.ts';
import type { AuthDeps, CallContext } from './auth-deps.ts';
import { auditIdentity } from './authorizer.ts';

type Handlers = ServiceHandlers<(typeof AuthService)['method'], CallContext>;

const defaultTokenTtlMs = 30 * 60_000;
const maxTokenTtlMs = 30 * 86_400_000;

/** The join-token handlers. */
export function tokensApi(deps: AuthDeps): Pick<Handlers, 'addToken' | 'removeToken'> {
  return {
    async addToken(request, ctx) {
      await deps.authorizer.requireResource(ctx, 'token', 'create');
      const roles = request.roles.map(checkTokenRole);
      if (roles.length === 0) throw new BadInputError(`a token needs at least one role: ${tokenRoles.join(', ')}`);
      const ttlMs = request.ttlSeconds > 0n ? Number(request.ttlSeconds) * 1000 : defaultTokenTtlMs;
      if (ttlMs > maxTokenTtlMs) throw new BadInputError('token ttl: at most 30 days; prefer short-lived tokens');
      const { secret, token } = await deps.tokens.add({ roles, ttlMs, labels: request.labels, singleUse: request.singleUse });
      await deps.audit.emit({
        type: 'token.create',
        identity: auditIdentity(ctx),
        resource: { kind: 'token', name: token.id },
        outcome: 'success',
        fields: { roles, single_use: request.singleUse, expires: token.expires.toISOString() },
      });
      return { token: secret, id: token.id, expires: token.expires.toISOString() };
    },

    async removeToken(request, ctx) {
      await deps.authorizer.requireResource(ctx, 'token', 'delete');
      await deps.tokens.remove(request.id);
      await deps.audit.emit({
        type: 'token.delete',
        identity: auditIdentity(ctx),
        resource: { kind: 'token', name: request.id.slice(0, 12) },
        outcome: 'success',
      });
      return {};
    },
  };
}

function checkTokenRole(role: string): TokenRole {
  if ((tokenRoles as readonly string[]).includes(role)) return role as TokenRole;
  throw new BadInputError(`unknown token role "${role}"; expected one of ${tokenRoles.join(', ')}`);
}
