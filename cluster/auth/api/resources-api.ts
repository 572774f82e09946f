/**
 * `pctl get | create -f | rm` for every kind: generic kinds live in the resource
 * store; users and tokens are views of their own stores (never with secrets).
 */
import type { AuthService } from '../../api/gen/postern/auth/v1/auth_pb.ts';
import type { ServiceHandlers } from '../../api/grpc-glue.ts';
import { BadInputError, NotFoundError } from '../../../protocols/errors.ts';
import { parseResources } from '../../access/resources/parse-resources.ts';
import type { Resource } from '../../access/resources/resource.ts';
import type { User } from '../users/user-record.ts';
import type { JoinToken } from '../tokens/token-store.ts';
import type { AuthDeps, CallContext } from './auth-deps.ts';
import { auditIdentity } from './authorizer.ts';
import { isServedKind, type ServedKind } from '../../access/resources/served-resource.ts';
import type { CallContext as Ctx } from './call-context.ts';

type Handlers = ServiceHandlers<(typeof AuthService)['method'], CallContext>;

/** Accepts plural and short forms (`roles`, `users`, `tokens`) for the kind. */
export function normalizeKind(kind: string): string {
  const lower = kind.toLowerCase();
  return lower.endsWith('s') && lower !== 'status' ? lower.slice(0, -1) : lower;
}

/** The resource handlers. */
export function resourcesApi(deps: AuthDeps): Pick<Handlers, 'getResources' | 'createResources' | 'deleteResource'> {
  const list = async (kind: string, name: string, ctx: CallContext): Promise<unknown[]> => {
    if (kind === 'user') return (name ? [await deps.users.get(name)] : await deps.users.list()).map(userResource);
    if (kind === 'token') {
      const tokens = (await deps.tokens.list()).map(tokenResource);
      return name ? tokens.filter((t) => t.metadata.name.startsWith(name)) : tokens;
    }
    if (kind === 'node' || kind === 'proxy') {
      const hosts = await deps.presence.list(kind);
      return name ? hosts.filter((h) => h.host_id === name || h.node_name === name) : hosts;
    }
    if (!deps.registry.get(kind)) throw unknownKind(deps, kind);
    const found = name ? [await deps.resources.get(kind, name)] : await deps.resources.list(kind);
    const view = deps.resourceHooks[kind]?.view;
    return view ? view(found, ctx) : found;
  };
  // Hosts read what they decide with: proxies route (nodes, proxies, roles, clusters), agents authorize (roles, role maps).
  const hostReads: Record<string, readonly string[]> = {
    proxy: ['proxy', 'node', 'role', 'trusted_cluster', 'remote_cluster'],
    node: ['role', 'trusted_cluster'],
    db: ['role', 'trusted_cluster'],
  };

  return {
    async getResources(request, ctx) {
      const kind = normalizeKind(request.kind);
      if (isServedKind(kind) && !request.stored) return { resourcesJson: JSON.stringify(await listServed(deps, ctx, kind, request.name)) };
      if (request.stored) {
        if (!deps.registry.get(kind)) throw unknownKind(deps, kind);
        // Agents read the database definitions they may be asked to serve.
        const agentReads = kind === 'db' && ctx.identity?.kind === 'host' && ctx.identity.systemRoles.some((r) => r === 'node' || r === 'db');
        if (!agentReads) await deps.authorizer.requireResource(ctx, kind, request.name ? 'read' : 'list');
        return { resourcesJson: JSON.stringify(request.name ? [await deps.resources.get(kind, request.name)] : await deps.resources.list(kind)) };
      }
      const identity = ctx.identity;
      const hostMayRead = identity?.kind === 'host' && identity.systemRoles.some((role) => hostReads[role]?.includes(kind));
      // Any user lists the leaf clusters their roles' cluster_labels reach (psh clusters); the view filters.
      const userListsClusters = kind === 'remote_cluster' && identity?.kind === 'user';
      if (!hostMayRead && !userListsClusters) await deps.authorizer.requireResource(ctx, kind, request.name ? 'read' : 'list');
      return { resourcesJson: JSON.stringify(await list(kind, request.name, ctx)) };
    },

    async createResources(request, ctx) {
      const resources = parseResources(request.text, { source: request.source || 'input', registry: deps.registry });
      // Authorize every document before writing any, so a refusal leaves nothing half-applied.
      for (const resource of resources) {
        await deps.authorizer.requireResource(ctx, resource.kind, request.upsert ? 'update' : 'create');
      }
      const created: string[] = [];
      for (const parsed of resources) {
        const resource = (await deps.resourceHooks[parsed.kind]?.beforeWrite?.(parsed, { upsert: request.upsert, ctx })) ?? parsed;
        await writeResource(deps, resource, request.upsert);
        created.push(`${resource.kind}/${resource.metadata.name}`);
        await deps.audit.emit({
          type: request.upsert ? 'resource.update' : 'resource.create',
          identity: auditIdentity(ctx),
          resource: { kind: resource.kind, name: resource.metadata.name },
          outcome: 'success',
        });
      }
      return { created };
    },

    async deleteResource(request, ctx) {
      const kind = normalizeKind(request.kind);
      await deps.authorizer.requireResource(ctx, kind, 'delete');
      if (kind === 'user') await deps.users.delete(request.name);
      else if (kind === 'token') await deps.tokens.remove(request.name);
      else if (deps.registry.get(kind)) await deps.resources.delete(kind, request.name);
      else throw unknownKind(deps, kind);
      await deps.resourceHooks[kind]?.afterDelete?.(request.name, ctx);
      await deps.audit.emit({
        type: kind === 'user' ? 'user.delete' : kind === 'token' ? 'token.delete' : 'resource.delete',
        identity: auditIdentity(ctx),
        resource: { kind, name: request.name },
        outcome: 'success',
      });
      return {};
    },
  };
}

async function writeResource(deps: AuthDeps, resource: Resource, upsert: boolean): Promise<void> {
  if (resource.kind !== 'user') {
    await deps.resources.put(resource, { upsert });
    return;
  }
  const spec = resource.spec as { roles: string[]; traits: Record<string, string[]> };
  try {
    await deps.users.get(resource.metadata.name);
    if (!upsert) throw new BadInputError(`user "${resource.metadata.name}" already exists; use --force to update it`);
    await deps.users.update(resource.metadata.name, spec);
  } catch (error) {
    if (!(error instanceof NotFoundError)) throw error;
    await deps.users.create(resource.metadata.name, spec);
  }
}

/**
 * Databases, apps, Kubernetes clusters and desktops, as their agents announce them.
 * Proxies (routing) and admin hosts see all; a user sees those their roles' labels
 * allow; other hosts see none.
 */
async function listServed(deps: AuthDeps, ctx: Ctx, kind: ServedKind, name: string): Promise<unknown[]> {
  const identity = deps.authorizer.requireIdentity(ctx);
  let rows = await deps.presence.listServed(kind);
  if (name) rows = rows.filter((row) => row.metadata.name === name);
  if (identity.kind === 'host') {
    if (identity.systemRoles.some((role) => role === 'proxy' || role === 'admin')) return rows;
    await deps.authorizer.requireResource(ctx, kind, 'list'); // audits and throws
    return [];
  }
  const checker = await deps.authorizer.checkerFor(identity);
  return rows.filter((row) => checker.checkVisible(kind, { name: row.metadata.name, labels: row.metadata.labels }).allowed);
}

function unknownKind(deps: AuthDeps, kind: string): BadInputError {
  return new BadInputError(`unknown resource kind "${kind}"; known kinds: ${[...deps.registry.kinds(), 'token', 'node', 'proxy', 'db', 'app', 'kube_cluster', 'desktop'].join(', ')}`);
}

function userResource(user: User) {
  return {
    kind: 'user',
    version: 'v1',
    metadata: { name: user.name, revision: user.revision },
    spec: { roles: user.roles, traits: user.traits },
    status: {
      created: user.createdAt.toISOString(),
      password_set: user.hasPassword,
      totp: user.totpEnabled,
      ...(user.lockedUntil ? { locked_until: user.lockedUntil.toISOString() } : {}),
    },
  };
}

function tokenResource(token: JoinToken) {
  return {
    kind: 'token',
    version: 'v1',
    metadata: { name: token.id, expires: token.expires.toISOString(), labels: token.labels },
    spec: { roles: token.roles, single_use: token.singleUse },
    status: { state: token.status, uses: token.uses, ...(token.lastUsedBy ? { last_used_by: token.lastUsedBy } : {}) },
  };
}
