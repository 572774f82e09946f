/**
 * Roles read from auth (`getResources({kind:'role'})`) for an agent service's RBAC,
 * cached for a short while (one read serves concurrent callers); when auth cannot be
 * reached a stale copy serves for a while longer, then decisions fail closed.
 * The same policy as the SSH service's (ssh-wiring.ts), as a reusable part.
 */
import type { AuthClient } from '../../cluster/api/auth-client.ts';
import { roleSpecSchema, type Role } from '../../cluster/access/roles/role.ts';
import { isExpired } from '../../cluster/access/resources/resource.ts';
import type { Logger } from '../../cluster/common/logger.ts';

export interface RolesCacheOptions {
  auth: () => AuthClient;
  logger: Logger;
  now?: () => Date;
  /** Default 10 s. */
  ttlMs?: number;
  /** Default 5 min. */
  maxStaleMs?: number;
}

export class RolesCache {
  readonly #options: RolesCacheOptions;
  #cached: { at: number; byName: Map<string, Role> } | undefined;
  #inFlight: Promise<Map<string, Role>> | undefined;

  constructor(options: RolesCacheOptions) {
    this.#options = options;
  }

  /** The current, unexpired roles among `names`, and the names auth does not know. */
  async resolve(names: readonly string[]): Promise<{ roles: Role[]; missing: string[] }> {
    const byName = await this.#byName();
    const now = this.#now();
    return {
      roles: names.map((name) => byName.get(name)).filter((role): role is Role => role !== undefined && !isExpired(role, now)),
      missing: names.filter((name) => !byName.has(name)),
    };
  }

  #now(): Date {
    return this.#options.now?.() ?? new Date();
  }

  async #byName(): Promise<Map<string, Role>> {
    const now = this.#now().getTime();
    const cached = this.#cached;
    if (cached && now - cached.at < (this.#options.ttlMs ?? 10_000)) return cached.byName;
    this.#inFlight ??= this.#fetch().finally(() => {
      this.#inFlight = undefined;
    });
    try {
      return await this.#inFlight;
    } catch (error) {
      if (cached && now - cached.at < (this.#options.maxStaleMs ?? 5 * 60_000)) return cached.byName;
      throw error;
    }
  }

  async #fetch(): Promise<Map<string, Role>> {
    const { resourcesJson } = await this.#options.auth().getResources({ kind: 'role', name: '' }, { deadlineMs: 5_000 });
    const list = JSON.parse(resourcesJson) as unknown;
    if (!Array.isArray(list)) throw new Error('auth answered roles with something other than a list');
    const byName = new Map<string, Role>();
    for (const item of list as Role[]) {
      if (item?.kind !== 'role' || typeof item.metadata?.name !== 'string') continue;
      const spec = roleSpecSchema.safeParse(item.spec);
      if (!spec.success) {
        this.#options.logger.warn({ role: item.metadata.name }, 'role from auth does not parse; ignored');
        continue;
      }
      byName.set(item.metadata.name, { ...item, spec: spec.data });
    }
    this.#cached = { at: this.#now().getTime(), byName };
    return byName;
  }
}
