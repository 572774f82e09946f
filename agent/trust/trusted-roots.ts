/**
 * What an agent knows of the roots its cluster trusts, for every protocol service that
 * admits root users: each enabled root's user CA (SSH keys and X.509 certificates) and
 * the leaf's role map for it. Read from the
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
import type { AuthClient } from '../../cluster/api/auth-client.ts';
import type { RoleMapEntry } from '../../cluster/access/resources/trusted-cluster.ts';
import { mapRoles } from '../../cluster/access/roles/role-map.ts';
import { parseAuthorizedKey } from '../../protocols/ssh/public-key.ts';

/** One trusted root as the agent sees it. */
export interface TrustedRoot {
  name: string;
  roleMap: RoleMapEntry[];
  /** SSH user CA key blobs of the root (empty while trust is disabled). */
  userCaKeys: Buffer[];
  /** X.509 user CA certificates of the root, PEM (empty while trust is disabled). */
  userCaTlsPems: string[];
}

/** A root user's leaf roles, or why there are none. */
export type RemoteRoles = { allowed: true; roles: string[]; reason: string } | { allowed: false; reason: string };

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

  /**
   * The leaf roles of a user of `root` with `remoteRoles`, once the caller checked the
   * certificate against that root's CA (`userCaKeys` / `userCaTlsPems`).
   */
  async remoteRoles(root: string, username: string, remoteRoles: readonly string[]): Promise<RemoteRoles> {
    let roots;
    try {
      roots = await this.get();
    } catch (error) {
      return { allowed: false, reason: `this node cannot read the trusted clusters from the auth server (${(error as Error).message}); try again later` };
    }
    const trusted = roots.get(root);
    if (!trusted) return { allowed: false, reason: `the certificate was issued by cluster "${root}", which cluster ${this.#localCluster()} does not trust` };
    if (trusted.userCaKeys.length === 0) return { allowed: false, reason: `trust in cluster "${root}" is disabled on ${this.#localCluster()}` };
    const roles = mapRoles(trusted.roleMap, remoteRoles);
    if (roles.length === 0) return { allowed: false, reason: `no roles mapped for remote user ${username} from cluster ${root}` };
    return { allowed: true, roles, reason: `remote user ${username} from cluster ${root} maps to ${roles.join(', ')}` };
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
      const ours = item.spec.enabled ? authorities.filter((a) => a.kind === 'user' && a.cluster === name) : [];
      const tlsPems = ours.flatMap((a) => a.tlsCertPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? []);
      const keys = item.spec.enabled
        ? authorities
            .filter((a) => a.kind === 'user' && a.cluster === name)
            .flatMap((a) => a.sshPublicKey.split('\n').filter((line) => line.trim()).map((line) => Buffer.from(parseAuthorizedKey(line).publicKey.blob)))
        : [];
      roots.set(name, { name, roleMap: item.spec.role_map ?? [], userCaKeys: keys, userCaTlsPems: tlsPems });
    }
    this.#cached = { at: Date.now(), roots };
    return roots;
  }
}
