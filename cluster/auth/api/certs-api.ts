/**
 * Certificates: user login (the proxy relays a person's password and public keys) and
 * host join (the proxy relays an agent's token and public keys; a joined host renews
 * with its own certificate). Private keys never reach the auth server.
 */
import { randomUUID } from 'node:crypto';
import type { AuthService } from '../../api/gen/postern/auth/v1/auth_pb.ts';
import type { ServiceHandlers } from '../../api/grpc-glue.ts';
import { AccessDeniedError, BadInputError, NotFoundError } from '../../../protocols/errors.ts';
import type { AccessChecker } from '../../access/roles/access-checker.ts';
import { publicAuthorityOf } from '../pki/authorities.ts';
import { LoginFailedError, AccountLockedError } from '../users/errors.ts';
import type { TokenRole } from '../tokens/token-store.ts';
import { systemRoles, type HostIdentity, type SystemRole, type UserIdentity } from '../pki/identity.ts';
import type { AuthDeps, CallContext } from './auth-deps.ts';

type Handlers = ServiceHandlers<(typeof AuthService)['method'], CallContext>;

/** Hosts renew well before this; see agent identity renewal. */
export const hostCertTtlMs = 7 * 86_400_000;
const joinableRoles: readonly SystemRole[] = ['node', 'proxy', 'db', 'app', 'kube', 'desktop'];

/** The login and join handlers. */
export function certsApi(deps: AuthDeps): Pick<Handlers, 'login' | 'join' | 'reissueUserCertificates'> {
  return {
    /** `psh login LEAF`: the same identity, no longer-lived, routed to a leaf the user's cluster_labels reach. */
    async reissueUserCertificates(request, ctx) {
      const caller = deps.authorizer.requireIdentity(ctx);
      if (caller.kind !== 'user' || caller.cluster !== deps.clusterName) {
        throw new AccessDeniedError('only a user logged in to this cluster may ask for new certificates; log in with psh login');
      }
      const user = await deps.users.get(caller.username);
      const checker = await deps.authorizer.checkerFor({ roles: user.roles, traits: user.traits });
      const route = request.routeToCluster || deps.clusterName;
      if (route !== deps.clusterName) await checkClusterRoute(deps, ctx, checker, caller.username, route);
      const identity: UserIdentity = {
        kind: 'user',
        username: user.name,
        roles: user.roles,
        traits: user.traits,
        logins: checker.logins(),
        cluster: deps.clusterName,
        routeToCluster: route,
        mfaVerified: caller.mfaVerified,
        bot: caller.bot,
        expires: caller.expires,
      };
      const options = checker.options();
      const pair = deps.issuer.issueUser({
        identity,
        sshPublicKey: request.sshPublicKey,
        tlsPublicKey: request.tlsPublicKey,
        permit: { pty: true, portForwarding: options.permitPortForwarding, agentForwarding: options.permitAgentForwarding },
      });
      await deps.audit.emit({
        type: 'cert.issue',
        identity: { user: user.name, roles: user.roles, addr: ctx.peerAddr },
        resource: { kind: 'cluster', name: route },
        outcome: 'success',
        fields: { route_to_cluster: route, expires: caller.expires.toISOString() },
      });
      const hostKeys = [...deps.authorities.publicAuthority('host').sshPublicKeys, ...(await reachableLeafHostKeys(deps, checker))];
      return {
        sshCertificate: pair.sshCertificate,
        tlsCertificatePem: pair.tlsCertPem,
        tlsCaPems: deps.authorities.trustedTlsCerts('host'),
        sshHostCaKeys: hostKeys,
        expires: caller.expires.toISOString(),
        username: user.name,
        roles: user.roles,
        logins: identity.logins,
      };
    },

    async login(request, ctx) {
      await deps.authorizer.requireSystemRole(ctx, 'log users in', ['proxy']);
      const user = await authenticate(deps, ctx, request.user, request.password, request.totpCode);
      const checker = await deps.authorizer.checkerFor({ roles: user.roles, traits: user.traits });
      if (request.routeToCluster && request.routeToCluster !== deps.clusterName) await checkClusterRoute(deps, ctx, checker, user.name, request.routeToCluster);
      const requestedMs = request.ttlSeconds > 0n ? Number(request.ttlSeconds) * 1000 : deps.maxSessionTtlMs;
      const ttlMs = Math.min(requestedMs, checker.maxSessionTtlMs() || deps.maxSessionTtlMs, deps.maxSessionTtlMs);
      const expires = new Date(deps.clock.now().getTime() + ttlMs);
      const identity: UserIdentity = {
        kind: 'user',
        username: user.name,
        roles: user.roles,
        traits: user.traits,
        logins: checker.logins(),
        cluster: deps.clusterName,
        routeToCluster: request.routeToCluster || deps.clusterName,
        mfaVerified: user.totpEnabled,
        bot: false,
        expires,
      };
      const options = checker.options();
      const pair = deps.issuer.issueUser({
        identity,
        sshPublicKey: request.sshPublicKey,
        tlsPublicKey: request.tlsPublicKey,
        permit: { pty: true, portForwarding: options.permitPortForwarding, agentForwarding: options.permitAgentForwarding },
      });
      await deps.audit.emit({
        type: 'user.login',
        identity: { user: user.name, roles: user.roles, addr: ctx.peerAddr },
        outcome: 'success',
        fields: { method: user.totpEnabled ? 'password+totp' : 'password', expires: expires.toISOString(), via: hostOf(ctx) },
      });
      return {
        sshCertificate: pair.sshCertificate,
        tlsCertificatePem: pair.tlsCertPem,
        tlsCaPems: deps.authorities.trustedTlsCerts('host'),
        // Leaves this user may reach too, so the OpenSSH config checks their nodes' host certificates.
        sshHostCaKeys: [...deps.authorities.publicAuthority('host').sshPublicKeys, ...(await reachableLeafHostKeys(deps, checker))],
        expires: expires.toISOString(),
        username: user.name,
        roles: user.roles,
        logins: identity.logins,
      };
    },

    async join(request, ctx) {
      const roles = request.roles.map(checkJoinRole);
      if (roles.length === 0) throw new BadInputError(`join: name at least one role: ${joinableRoles.join(', ')}`);
      const { hostId, labels } = request.token ? await joinWithToken(deps, ctx, request.token, roles, request.nodeName) : renew(ctx, request.hostId, roles);
      const identity: HostIdentity = {
        kind: 'host',
        hostId,
        nodeName: request.nodeName || hostId,
        cluster: deps.clusterName,
        systemRoles: roles,
        expires: new Date(deps.clock.now().getTime() + hostCertTtlMs),
      };
      const ipAddresses = request.addresses.filter((a) => /^[\d.]+$|:/.test(a));
      const dnsNames = [identity.nodeName, ...request.addresses.filter((a) => !ipAddresses.includes(a))];
      const pair = deps.issuer.issueHost({
        identity,
        sshPublicKey: request.sshPublicKey || undefined,
        tlsPublicKey: request.tlsPublicKey,
        dnsNames,
        ipAddresses,
      });
      await deps.audit.emit({
        type: request.token ? 'token.consume' : 'cert.issue',
        identity: { host: hostId, roles, addr: ctx.peerAddr },
        resource: { kind: 'host', name: identity.nodeName },
        outcome: 'success',
        fields: { roles, via: hostOf(ctx) },
      });
      return {
        hostId,
        tokenLabels: labels,
        certificates: {
          sshCertificate: pair.sshCertificate ?? '',
          tlsCertificatePem: pair.tlsCertPem,
          tlsCaPems: deps.authorities.trustedTlsCerts('host'),
          sshHostCaKeys: deps.authorities.publicAuthority('host').sshPublicKeys,
          expires: pair.expires.toISOString(),
          username: hostId,
          roles,
          logins: [],
        },
      };
    },
  };
}

/** The SSH host CA keys of the leaves whose labels the user's cluster_labels reach. */
async function reachableLeafHostKeys(deps: AuthDeps, checker: AccessChecker): Promise<string[]> {
  const keys: string[] = [];
  for (const leaf of await deps.resources.list('remote_cluster')) {
    if (!checker.checkCluster({ name: leaf.metadata.name, labels: leaf.metadata.labels ?? {} }).allowed) continue;
    const host = await deps.authorities.getRemote(leaf.metadata.name, 'host');
    if (host) keys.push(...publicAuthorityOf(host).sshPublicKeys);
  }
  return keys;
}

/** Refuses (and audits) a route to a leaf that is not trusted or that the user's cluster_labels do not reach. */
export async function checkClusterRoute(deps: AuthDeps, ctx: CallContext, checker: AccessChecker, username: string, cluster: string): Promise<void> {
  let labels: Record<string, string> | undefined;
  try {
    labels = (await deps.resources.get('remote_cluster', cluster)).metadata.labels ?? {};
  } catch (error) {
    if (!(error instanceof NotFoundError)) throw error;
  }
  const decision = labels === undefined
    ? { allowed: false, reason: `no leaf cluster "${cluster}" trusts ${deps.clusterName}; list them with psh clusters` }
    : checker.checkCluster({ name: cluster, labels });
  if (decision.allowed) return;
  await deps.audit.emit({
    type: 'access.denied',
    identity: { user: username, addr: ctx.peerAddr },
    resource: { kind: 'cluster', name: cluster },
    outcome: 'deny',
    reason: decision.reason,
  });
  throw new AccessDeniedError(`cannot route to cluster "${cluster}": ${decision.reason}`);
}

async function authenticate(deps: AuthDeps, ctx: CallContext, name: string, password: string, totp: string) {
  try {
    return await deps.users.authenticate(name, password, totp || undefined);
  } catch (error) {
    if (error instanceof LoginFailedError || error instanceof AccountLockedError) {
      await deps.audit.emit({
        type: 'user.login.failed',
        identity: { user: name.slice(0, 253) || 'unknown', addr: ctx.peerAddr },
        outcome: 'failure',
        reason: error instanceof LoginFailedError ? error.auditReason : 'account locked',
      });
    }
    throw error;
  }
}

/** The token is the proof: a proxy relays an agent's join, or a new proxy joins directly without a certificate. */
async function joinWithToken(deps: AuthDeps, ctx: CallContext, token: string, roles: SystemRole[], nodeName: string) {
  const hostId = randomUUID();
  try {
    const record = await deps.tokens.consume(token, { role: roles[0] as TokenRole, consumer: nodeName || hostId });
    const missing = roles.filter((r) => !record.roles.includes(r as TokenRole));
    if (missing.length) throw new AccessDeniedError(`join token ${record.id} does not allow role ${missing.join(', ')}; it allows ${record.roles.join(', ')}`);
    return { hostId, labels: record.labels };
  } catch (error) {
    await deps.audit.emit({
      type: 'token.consume.failed',
      identity: { host: nodeName.slice(0, 253) || 'unknown', addr: ctx.peerAddr },
      outcome: 'failure',
      reason: (error as Error).message,
      fields: { roles, via: hostOf(ctx) },
    });
    throw error;
  }
}

/** A joined host renews its own certificate for the same id and no more roles than it has. */
function renew(ctx: CallContext, hostId: string, roles: SystemRole[]) {
  const caller = ctx.identity;
  if (caller?.kind !== 'host' || !hostId || caller.hostId !== hostId) {
    throw new AccessDeniedError('join without a token is a renewal: present the host certificate of that host id');
  }
  const extra = roles.filter((r) => !caller.systemRoles.includes(r));
  if (extra.length) throw new AccessDeniedError(`renewal cannot add roles (${extra.join(', ')}); join again with a token that allows them`);
  return { hostId, labels: {} as Record<string, string> };
}

function checkJoinRole(role: string): SystemRole {
  if (joinableRoles.includes(role as SystemRole) && (systemRoles as readonly string[]).includes(role)) return role as SystemRole;
  throw new BadInputError(`cannot join as "${role}"; joinable roles: ${joinableRoles.join(', ')}`);
}

function hostOf(ctx: CallContext): string {
  if (!ctx.identity) return 'direct';
  return ctx.identity.kind === 'host' ? ctx.identity.hostId : ctx.identity.username;
}

