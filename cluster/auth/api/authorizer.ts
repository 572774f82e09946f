/**
 * Who may call what. Hosts act through their system roles (an `admin` host identity is
 * the local administrator on the auth host, like Teleport's tctl); users act through
 * the `resources` rules of their roles. Every refusal is an audit event, and the error
 * says which role or rule is missing.
 */
import { AccessDeniedError, AuthenticationError } from '../../../protocols/errors.ts';
import { AccessChecker } from '../../access/roles/access-checker.ts';
import type { Role, ResourceVerb } from '../../access/roles/role.ts';
import type { ResourceStore } from '../resources/resource-store.ts';
import type { AuditLog } from '../audit/audit-log.ts';
import type { Identity, SystemRole, UserIdentity } from '../pki/identity.ts';
import type { CallContext } from './call-context.ts';

export class Authorizer {
  readonly #resources: ResourceStore;
  readonly #audit: AuditLog;

  constructor(resources: ResourceStore, audit: AuditLog) {
    this.#resources = resources;
    this.#audit = audit;
  }

  /** The access checker for a user identity: its roles as stored now, its traits from the certificate. */
  async checkerFor(identity: Pick<UserIdentity, 'roles' | 'traits'>): Promise<AccessChecker> {
    const roles = (await this.#resources.getMany('role', identity.roles)) as Role[];
    return new AccessChecker(roles, identity.traits);
  }

  /** The caller's identity, or an AuthenticationError for a caller without a certificate. */
  requireIdentity(ctx: CallContext): Identity {
    if (!ctx.identity) throw new AuthenticationError('this call needs a valid client certificate issued by this cluster (none was presented, or it expired or comes from another cluster); log in again (psh login) or use a current identity file (-i)');
    return ctx.identity;
  }

  /** Allows `verb` on `kind` for admin hosts and for users whose roles grant it; otherwise audits and throws. */
  async requireResource(ctx: CallContext, kind: string, verb: ResourceVerb): Promise<void> {
    const identity = this.requireIdentity(ctx);
    if (identity.kind === 'host') {
      if (identity.systemRoles.includes('admin')) return;
      await this.#deny(ctx, `${verb} ${kind}`, `host ${identity.hostId} (${identity.systemRoles.join(',')}) may not ${verb} ${kind}`);
    } else {
      const decision = (await this.checkerFor(identity)).checkResource(kind, verb);
      if (!decision.allowed) await this.#deny(ctx, `${verb} ${kind}`, `user ${identity.username}: ${decision.reason}`);
    }
  }

  /** Allows hosts holding one of `roles` (and admin hosts); otherwise audits and throws. */
  async requireSystemRole(ctx: CallContext, action: string, roles: readonly SystemRole[]): Promise<void> {
    const identity = this.requireIdentity(ctx);
    if (identity.kind === 'host' && identity.systemRoles.some((r) => r === 'admin' || roles.includes(r))) return;
    const who = identity.kind === 'host' ? `host ${identity.hostId}` : `user ${identity.username}`;
    await this.#deny(ctx, action, `${who} may not ${action}; only ${roles.join(', ')} hosts may`);
  }

  async #deny(ctx: CallContext, action: string, reason: string): Promise<never> {
    await this.#audit.emit({
      type: 'access.denied',
      identity: auditIdentity(ctx),
      resource: { kind: 'api', name: action },
      outcome: 'deny',
      reason,
    });
    throw new AccessDeniedError(`access denied: ${reason}`);
  }
}

/** The identity part of an audit event for a call. */
export function auditIdentity(ctx: CallContext): { user?: string; host?: string; roles?: string[]; addr: string } {
  const identity = ctx.identity;
  if (!identity) return { addr: ctx.peerAddr };
  return identity.kind === 'user'
    ? { user: identity.username, roles: identity.roles, addr: ctx.peerAddr }
    : { host: identity.hostId, roles: identity.systemRoles, addr: ctx.peerAddr };
}
