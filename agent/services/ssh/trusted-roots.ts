/**
 * What an agent knows of the roots its cluster trusts, for SSH logins by root users:
 * each enabled root's user CA keys and the leaf's role map for it. Read from the
 * agent's auth (`exportAuthorities` with remote CAs, `getResources trusted_cluster`,
 * which never carries the trust token), cached for `ttlMs` so a role map or
 * enable/disable change applies to new connections within seconds, without restarts.
 *
 * ```
 * root user cert (SSH, signed by the root's user CA, cluster@postern.dev = root)
 *   -> the signing key must be one of *that* root's user CA keys (a third cluster's or
 *      a forged "cluster" extension is refused)
 *   -> mapRoles(role_map, root roles) -> leaf roles; none: "no roles mapped for remote
 *      user NAME from cluster ROOT"
 * ```
 */
import type { AuthClient } from '../../../cluster/api/auth-client.ts';
import type { RoleMapEntry } from '../../../cluster/access/resources/trusted-cluster.ts';
import { parseAuthorizedKey } from '../../../protocols/ssh/public-key.ts';

/** One trusted root as the agent sees it. */
export interface TrustedRoot {
  name: string;
  roleMap: RoleMapEntry[];
  /** SSH user CA key blobs of the root (empty while trust is disabled). */
  userCaKeys: Buffer[];
}

const callDeadline = { deadlineMs: 5_000 };

/** The trusted roots, cached; see the file comment. */
export class TrustedRoots {
  readonly #auth: () => AuthClient;
  readonly #localCluster: () => string;
  readonly #ttlMs: number;
  #cached: { at: number; roots: Map<string, TrustedRoot> } | undefined;
  #inFlight: Promise<Map<string, TrustedRoot>> | undefined;

  constructor(options: { auth: () => AuthClient; localCluster: () => string; ttlMs?: number }) {
    this.#auth = options.auth;
    this.#localCluster = options.localCluster;
    this.#ttlMs = options.ttlMs ?? 2_000;
  }

  /** The user CA keys of every enabled root, as last read (for the SSH service's first check). */
  knownKeys(): Buffer[] {
    return [...(this.#cached?.roots.values() ?? [])].flatMap((root) => root.userCaKeys);
  }

  /** The roots now (cached for ttlMs); throws when auth cannot be asked and nothing is cached. */
  async get(): Promise<Map<string, TrustedRoot>> {
    const cached = this.#cached;
    if (cached && Date.now() - cached.at < this.#ttlMs) return cached.roots;
    this.#inFlight ??= this.#fetch().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  async #fetch(): Promise<Map<string, TrustedRoot>> {
    const auth = this.#auth();
    const [{ resourcesJson }, { authorities }] = await Promise.all([
      auth.getResources({ kind: 'trusted_cluster', name: '' }, callDeadline),
      auth.exportAuthorities({ kind: 'user', includeRemote: true }, callDeadline),
    ]);
    const local = this.#localCluster();
    const roots = new Map<string, TrustedRoot>();
    for (const item of JSON.parse(resourcesJson) as Array<{ metadata: { name: string }; spec: { enabled: boolean; role_map?: RoleMapEntry[] } }>) {
      const name = item.metadata.name;
      if (name === local) continue;
      const keys = item.spec.enabled
        ? authorities
            .filter((a) => a.kind === 'user' && a.cluster === name)
            .flatMap((a) => a.sshPublicKey.split('\n').filter((line) => line.trim()).map((line) => Buffer.from(parseAuthorizedKey(line).publicKey.blob)))
        : [];
      roots.set(name, { name, roleMap: item.spec.role_map ?? [], userCaKeys: keys });
    }
    this.#cached = { at: Date.now(), roots };
    return roots;
  }
}
