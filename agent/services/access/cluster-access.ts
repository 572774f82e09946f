/**
 * What the app and Kubernetes services ask the cluster for, in one place:
 *
 * - the roles (`getResources({kind:'role'})`), cached ~10 s, a stale copy for a while
 *   when auth is unreachable, then every request refused (fail closed);
 * - `checker(identity)`: an AccessChecker for a routed identity, refusing an expired one
 *   or one from another cluster;
 * - audit events to auth's `emitAudit`, queued and retried in the background so a
 *   request never waits for the audit log;
 * - app JWT assertions (`signAppToken`), cached per user and app until near expiry.
 */
import type { AuthClient } from '../../../cluster/api/auth-client.ts';
import type { RoutedIdentity } from '../../../cluster/api/routed-identity.ts';
import { AccessChecker } from '../../../cluster/access/roles/access-checker.ts';
import { roleSpecSchema, type Role } from '../../../cluster/access/roles/role.ts';
import { isExpired } from '../../../cluster/access/resources/resource.ts';
import type { Logger } from '../../../cluster/common/logger.ts';

const callDeadline = { deadlineMs: 5_000 };

/** One audit event as auth's emitAudit takes it. */
export interface AccessAuditEvent {
  type: string;
  identity: { user?: string; roles?: string[]; addr?: string };
  resource: { kind: string; name: string };
  outcome: 'allow' | 'deny' | 'success' | 'failure';
  reason?: string;
  fields: Record<string, unknown>;
}

export interface ClusterAccessOptions {
  auth: () => AuthClient;
  /** This agent's cluster name (identities from others are refused). */
  cluster: () => string;
  logger: Logger;
  now?: () => Date;
  rolesTtlMs?: number;
  rolesMaxStaleMs?: number;
  auditBufferSize?: number;
}

/** Roles, audit and JWTs from auth for the agent's app and Kubernetes services. */
export class ClusterAccess {
  readonly #options: ClusterAccessOptions;
  #roles: { at: number; byName: Map<string, Role> } | undefined;
  #rolesInFlight: Promise<Map<string, Role>> | undefined;
  readonly #queue: AccessAuditEvent[] = [];
  #flushing: Promise<void> | undefined;
  #retry: NodeJS.Timeout | undefined;
  #failures = 0;
  readonly #jwts = new Map<string, { jwt: string; refreshAt: number }>();

  constructor(options: ClusterAccessOptions) {
    this.#options = options;
  }

  #now(): Date {
    return this.#options.now?.() ?? new Date();
  }

  /** The checker for `identity`, or a refusal reason. */
  async checker(identity: RoutedIdentity): Promise<{ checker: AccessChecker } | { refused: string }> {
    if (new Date(identity.expires) <= this.#now()) return { refused: `the credentials of ${identity.username} expired at ${identity.expires}; log in again (psh login)` };
    const cluster = this.#options.cluster();
    if (identity.cluster !== cluster) return { refused: `the identity comes from cluster "${identity.cluster}", and this agent belongs to "${cluster}"` };
    let byName: Map<string, Role>;
    try {
      byName = await this.#rolesByName();
    } catch (error) {
      this.#options.logger.warn({ err: error }, 'cannot read roles from auth');
      return { refused: `this agent cannot read the roles from the auth server (${(error as Error).message}); try again later` };
    }
    const now = this.#now();
    const roles = identity.roles.map((name) => byName.get(name)).filter((role): role is Role => role !== undefined && !isExpired(role, now));
    return { checker: new AccessChecker(roles, identity.traits) };
  }

  /** A JWT assertion for `identity` to app `audience`; cached until a minute before it expires. */
  async appToken(identity: RoutedIdentity, audience: string): Promise<string> {
    const key = `${identity.username}\0${identity.roles.join(',')}\0${identity.expires}\0${audience}`;
    const cached = this.#jwts.get(key);
    const now = this.#now().getTime();
    if (cached && cached.refreshAt > now) return cached.jwt;
    const expiresUnix = Math.floor(new Date(identity.expires).getTime() / 1000);
    const { jwt } = await this.#options.auth().signAppToken({
      username: identity.username, roles: identity.roles, traitsJson: JSON.stringify(identity.traits), audience, expiresUnix: BigInt(expiresUnix),
    }, callDeadline);
    const exp = Math.min(expiresUnix * 1000, now + 3_600_000);
    if (this.#jwts.size > 10_000) this.#jwts.clear();
    this.#jwts.set(key, { jwt, refreshAt: exp - 60_000 });
    return jwt;
  }

  /** Queues an audit event; sent in order in the background. */
  audit(event: AccessAuditEvent): void {
    this.#queue.push(event);
    while (this.#queue.length > (this.#options.auditBufferSize ?? 10_000)) this.#queue.shift();
    if (this.#failures === 0) void this.#flush();
  }

  /** Sends what is queued (one short attempt); for shutdown and tests. */
  async flush(): Promise<void> {
    await this.#flush();
  }

  stop(): void {
    clearTimeout(this.#retry);
  }

  #flush(): Promise<void> {
    this.#flushing ??= (async () => {
      while (this.#queue.length > 0) {
        const event = this.#queue[0]!;
        try {
          await this.#options.auth().emitAudit({ eventJson: JSON.stringify(event) }, callDeadline);
        } catch (error) {
          if ((error as { code?: string }).code === 'PST_BAD_INPUT') {
            this.#options.logger.error({ err: error, type: event.type }, 'auth refused an audit event; dropped');
            this.#queue.shift();
            continue;
          }
          if (this.#failures++ === 0) this.#options.logger.warn({ err: error, pending: this.#queue.length }, 'cannot send audit events to auth; retrying');
          clearTimeout(this.#retry);
          this.#retry = setTimeout(() => void this.#flush(), Math.min(30_000, 500 * 2 ** Math.min(this.#failures, 6)));
          this.#retry.unref();
          return;
        }
        this.#queue.shift();
        this.#failures = 0;
      }
    })().finally(() => {
      this.#flushing = undefined;
    });
    return this.#flushing;
  }

  async #rolesByName(): Promise<Map<string, Role>> {
    const now = this.#now().getTime();
    const cached = this.#roles;
    if (cached && now - cached.at < (this.#options.rolesTtlMs ?? 10_000)) return cached.byName;
    this.#rolesInFlight ??= this.#fetchRoles().finally(() => {
      this.#rolesInFlight = undefined;
    });
    try {
      return await this.#rolesInFlight;
    } catch (error) {
      if (cached && now - cached.at < (this.#options.rolesMaxStaleMs ?? 5 * 60_000)) return cached.byName;
      throw error;
    }
  }

  async #fetchRoles(): Promise<Map<string, Role>> {
    const { resourcesJson } = await this.#options.auth().getResources({ kind: 'role', name: '' }, callDeadline);
    const list = JSON.parse(resourcesJson) as unknown;
    if (!Array.isArray(list)) throw new Error('auth answered roles with something other than a list');
    const byName = new Map<string, Role>();
    for (const item of list as Role[]) {
      if (item?.kind !== 'role' || typeof item.metadata?.name !== 'string') continue;
      const spec = roleSpecSchema.safeParse(item.spec);
      if (spec.success) byName.set(item.metadata.name, { ...item, spec: spec.data });
    }
    this.#roles = { at: this.#now().getTime(), byName };
    return byName;
  }
}
