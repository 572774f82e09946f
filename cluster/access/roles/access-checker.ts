/**
 * The role-based access engine: given a user's roles and traits, may they reach this
 * node, database, Kubernetes cluster, app, desktop, leaf cluster or admin API call?
 *
 * Rules, in order, for every check:
 *
 *   1. deny   any role whose deny conditions match -> denied, naming that role;
 *   2. allow  a role whose allow conditions all match -> allowed, naming that role;
 *   3. default nothing matched -> denied ("no role allows …").
 *
 * So access is denied by default, and deny wins over allow. A deny condition applies
 * field by field (deny `node_labels` that match deny the node for every login; a deny
 * `logins: [root]` denies root on every node; `'*'` denies every value). An allow needs
 * one role that matches the labels *and* lists the login (or database user and name).
 * Every decision carries a reason fit for an audit event and for the person denied.
 *
 * ```yaml
 * kind: role
 * version: v1
 * metadata: { name: dev }
 * spec:
 *   allow:
 *     logins: ['{{internal.logins}}', ubuntu]
 *     node_labels: { env: [staging, dev] }
 *     db_labels: { env: staging }
 *     db_users: ['{{email.local(external.email)}}']
 *     db_names: ['*']
 *     cluster_labels: { env: staging }
 *     resources: [{ kinds: [node], verbs: [list, read] }]
 *   deny:
 *     logins: [root]
 *   options: { max_session_ttl: 8h }
 * ```
 *
 * ```ts
 * const checker = new AccessChecker([dev], { logins: ['alice'], email: ['alice@example.com'] });
 * checker.checkNode({ name: 'web1', labels: { env: 'staging' }, login: 'alice' });
 * // { allowed: true, reason: 'allowed by role "dev"', role: 'dev' }
 * checker.checkNode({ name: 'web1', labels: { env: 'staging' }, login: 'root' });
 * // { allowed: false, reason: 'role "dev" denies login "root"', role: 'dev' }
 * checker.logins(); // ['alice', 'ubuntu'] -> the SSH certificate's principals
 * ```
 *
 * Trait templates (traits.ts) are expanded once, at construction. Whether a role has
 * expired (metadata.expires) is the caller's concern: pass only roles in force.
 * `checkCluster` is for reaching a leaf through trust: a role without `cluster_labels`
 * reaches no leaf.
 */
import { parseDuration } from '../../common/duration.ts';
import { compileRole, nameSetHas, type CompiledConditions, type CompiledRole } from './compiled-role.ts';
import { formatLabels, matchLabels, type Labels } from './label-matcher.ts';
import type { LabelField, NameField, ResourceVerb, Role } from './role.ts';
import type { Traits } from './traits.ts';

/** The outcome of one check; `role` names the role that decided, if one did. */
export interface Decision {
  allowed: boolean;
  reason: string;
  role?: string;
}

/** Options in force for a user, combined strictly across their roles. */
export interface EffectiveOptions {
  maxSessionTtlMs: number;
  permitPortForwarding: boolean;
  permitAgentForwarding: boolean;
  recordSession: boolean;
  requireMfa: boolean;
}

export interface LabeledTarget {
  name: string;
  labels: Labels;
}

/** Session length when a role does not set max_session_ttl. */
export const defaultMaxSessionTtlMs = 12 * 3_600_000;

/** A name the check asks about (login "root"), with the fields that allow and deny it. */
interface NameQuery {
  field: NameField;
  what: string;
  value: string;
}

/** Decides access for one user from their roles and traits. */
export class AccessChecker {
  readonly #roles: readonly CompiledRole[];

  constructor(roles: readonly Role[], traits: Traits = {}) {
    this.#roles = roles.map((role) => compileRole(role, traits));
  }

  /** Names of the roles this checker evaluates. */
  get roleNames(): string[] {
    return this.#roles.map((r) => r.name);
  }

  /** SSH to a node as `login`. */
  checkNode(target: LabeledTarget & { login: string }): Decision {
    return this.#check('node', target, 'node_labels', [{ field: 'logins', what: 'login', value: target.login }]);
  }

  /** A database session as `dbUser` (and `dbName`, when the protocol names one). */
  checkDatabase(target: LabeledTarget & { dbUser: string; dbName?: string }): Decision {
    const names: NameQuery[] = [{ field: 'db_users', what: 'database user', value: target.dbUser }];
    if (target.dbName !== undefined) names.push({ field: 'db_names', what: 'database name', value: target.dbName });
    return this.#check('database', target, 'db_labels', names);
  }

  /** A Kubernetes cluster (labels only; see kubeIdentity for who the user becomes there). */
  checkKube(target: LabeledTarget): Decision {
    return this.#check('kubernetes cluster', target, 'kubernetes_labels', []);
  }

  /**
   * The Kubernetes users and groups to impersonate: from roles that allow the target
   * cluster (or every role, without a target), minus every denied user and group.
   * Empty when the target is denied.
   */
  kubeIdentity(target?: LabeledTarget): { users: string[]; groups: string[] } {
    if (target && !this.checkKube(target).allowed) return { users: [], groups: [] };
    const roles = target ? this.#roles.filter((r) => matchLabels(r.allow.kubernetes_labels, target.labels)) : this.#roles;
    return {
      users: this.#allowedNames('kubernetes_users', roles),
      groups: this.#allowedNames('kubernetes_groups', roles),
    };
  }

  /** An HTTP or TCP application. */
  checkApp(target: LabeledTarget): Decision {
    return this.#check('app', target, 'app_labels', []);
  }

  /** A Windows desktop as `login`. */
  checkDesktop(target: LabeledTarget & { login: string }): Decision {
    return this.#check('desktop', target, 'desktop_labels', [
      { field: 'desktop_logins', what: 'desktop login', value: target.login },
    ]);
  }

  /**
   * Whether a listing may show a served resource: its labels alone, before the protocol
   * names a login or database user. Connecting still runs the full check.
   */
  checkVisible(kind: 'db' | 'app' | 'kube_cluster' | 'desktop', target: LabeledTarget): Decision {
    const fields = { db: ['database', 'db_labels'], app: ['app', 'app_labels'], kube_cluster: ['kubernetes cluster', 'kubernetes_labels'], desktop: ['desktop', 'desktop_labels'] } as const;
    const [noun, field] = fields[kind];
    return this.#check(noun, target, field, []);
  }

  /** A leaf cluster reached through trust, by its labels (set on the trust token). */
  checkCluster(target: LabeledTarget): Decision {
    return this.#check('cluster', target, 'cluster_labels', []);
  }

  /** An admin API call: `verb` on resources of `kind`. */
  checkResource(kind: string, verb: ResourceVerb): Decision {
    const matches = (c: CompiledConditions) =>
      c.resources.some(
        (rule) => (rule.kinds.has('*') || rule.kinds.has(kind)) && (rule.verbs.has('*') || rule.verbs.has(verb)),
      );
    const denier = this.#roles.find((r) => matches(r.deny));
    if (denier) return deny(`role "${denier.name}" denies ${verb} on ${kind}`, denier.name);
    const allower = this.#roles.find((r) => matches(r.allow));
    if (allower) return allow(allower.name);
    return deny(`no role allows ${verb} on ${kind}${this.#noRolesNote()}`);
  }

  /** Logins for an SSH certificate: every allowed login, minus every denied one. */
  logins(): string[] {
    return this.#allowedNames('logins', this.#roles);
  }

  /** The shortest max_session_ttl across roles (default 12h each); 0 with no roles. */
  maxSessionTtlMs(): number {
    if (this.#roles.length === 0) return 0;
    return Math.min(
      ...this.#roles.map((r) =>
        r.options.max_session_ttl ? parseTtl(r.options.max_session_ttl) : defaultMaxSessionTtlMs,
      ),
    );
  }

  /** Options combined strictly: forwarding if some role permits and none forbids; recording and MFA if any role wants them. */
  options(): EffectiveOptions {
    const permitted = (key: 'permit_port_forwarding' | 'permit_agent_forwarding') =>
      this.#roles.some((r) => r.options[key] === true) && !this.#roles.some((r) => r.options[key] === false);
    return {
      maxSessionTtlMs: this.maxSessionTtlMs(),
      permitPortForwarding: permitted('permit_port_forwarding'),
      permitAgentForwarding: permitted('permit_agent_forwarding'),
      recordSession: this.#roles.length === 0 || this.#roles.some((r) => r.options.record_session !== false),
      requireMfa: this.#roles.some((r) => r.options.require_mfa === true),
    };
  }

  #check(noun: string, target: LabeledTarget, labelField: LabelField, names: readonly NameQuery[]): Decision {
    // Built only when denying: allowed decisions sit on every connection's path.
    const subject = () => `${noun} "${target.name}" (labels ${formatLabels(target.labels)})`;
    for (const role of this.#roles) {
      if (matchLabels(role.deny[labelField], target.labels)) {
        return deny(`role "${role.name}" denies ${subject()} by ${labelField}`, role.name);
      }
      for (const q of names) {
        if (nameSetHas(role.deny[q.field], q.value)) {
          return deny(`role "${role.name}" denies ${q.what} "${q.value}"`, role.name);
        }
      }
    }
    const matching = this.#roles.filter((r) => matchLabels(r.allow[labelField], target.labels));
    const allower = matching.find((r) => names.every((q) => nameSetHas(r.allow[q.field], q.value)));
    if (allower) return allow(allower.name);
    const asked = names.map((q) => `${q.what} "${q.value}"`).join(' and ');
    let reason = asked === '' ? `no role allows ${subject()}` : `no role allows ${asked} on ${subject()}`;
    if (matching.length > 0) {
      const which = matching.map((r) => `"${r.name}"`).join(', ');
      const verb = matching.length > 1 ? `roles ${which} match` : `role ${which} matches`;
      reason += `; ${verb} the ${noun} but not the ${names.map((q) => q.what).join(' and ')}`;
    }
    return deny(reason + this.#noRolesNote());
  }

  /** Union of a name field over `roles`' allow, minus every role's deny; in first-seen order. */
  #allowedNames(field: NameField, roles: readonly CompiledRole[]): string[] {
    const out = new Set<string>();
    for (const role of roles) for (const value of role.allow[field].values) out.add(value);
    for (const role of this.#roles) {
      const denied = role.deny[field];
      if (denied.wildcard) return [];
      for (const value of denied.values) out.delete(value);
    }
    return [...out];
  }

  #noRolesNote(): string {
    return this.#roles.length === 0 ? '; the user has no roles, so nothing is allowed' : '';
  }
}

function allow(role: string): Decision {
  return { allowed: true, reason: `allowed by role "${role}"`, role };
}

function deny(reason: string, role?: string): Decision {
  return role === undefined ? { allowed: false, reason } : { allowed: false, reason, role };
}

function parseTtl(text: string): number {
  // Validated when the role was parsed; a value that still fails grants the least.
  try {
    return parseDuration(text);
  } catch {
    return 0;
  }
}
