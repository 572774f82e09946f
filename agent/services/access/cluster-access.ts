/**
 * The agent's one access module: every protocol service (databases, apps, Kubernetes,
 * desktops) asks it who is calling and what their roles allow, and sends its audit
 * events through it. Trust lives here, so no service special-cases a root user.
 *
 * ```
 * postern-identity ─┬─ base64 PEM user certificate (proxy forwarded it)
 *                   │    issued by this cluster -> verify against this cluster's user CA
 *                   │    issued by a root       -> verify against *that* root's user CA
 *                   │                              (TrustedRoots), roles through the leaf's
 *                   │                              role map; none: "no roles mapped for
 *                   │                              remote user NAME from cluster ROOT"
 *                   └─ base64url routed identity (an app session the proxy vouches for;
 *                        this cluster only)
 *   -> Caller { username, roles (this cluster's), traits, certificate routes }
 *   -> checker(caller): AccessChecker over the roles read from auth (cached ~10 s, a
 *      stale copy for a while when auth is unreachable, then fail closed)
 * audit(event, caller): batched (~250 ms, up to 500 per call) and retried in the
 *   background; events about a root user carry fields.user_cluster (forwarded to it)
 * appToken(caller, audience): app JWT assertions, cached per user and app
 * ```
 */
import type { AuthClient } from '../../../cluster/api/auth-client.ts';
import { decodeRoutedIdentity } from '../../../cluster/api/routed-identity.ts';
import { verifyUserCertificate, type UserIdentity } from '../../../cluster/api/user-certificate.ts';
import { AccessChecker } from '../../../cluster/access/roles/access-checker.ts';
import { roleSpecSchema, type Role } from '../../../cluster/access/roles/role.ts';
import { isExpired } from '../../../cluster/access/resources/resource.ts';
import type { Logger } from '../../../cluster/common/logger.ts';
import { PosternError } from '../../../protocols/errors.ts';
import { TrustedRoots } from '../../trust/trusted-roots.ts';

const callDeadline = { deadlineMs: 5_000 };
/** Longest identity header accepted (a PEM certificate, base64). */
const maxIdentityHeader = 16 * 1024;
/** Header with the client's address as the proxy saw it (cluster/proxy/user-certificate.ts). */
const clientAddrHeader = 'postern-client-addr';

/** One audit event as auth's emitAudit takes it. */
export interface AccessAuditEvent {
  type: string;
  identity: { user?: string; roles?: string[]; addr?: string };
  resource: { kind: string; name: string };
  outcome: 'allow' | 'deny' | 'success' | 'failure';
  reason?: string;
  fields: Record<string, unknown>;
}

/** Who is calling, in this cluster's terms. */
export interface Caller {
  username: string;
  /** Roles in this cluster: the certificate's own, or a root user's through the role map. */
  roles: string[];
  traits: Record<string, string[]>;
  /** ISO time the credentials expire. */
  expires: string;
  /** The cluster that issued the identity: this one, or a trusted root. */
  cluster: string;
  /** True for a root cluster's user. */
  remote: boolean;
  via: 'certificate' | 'app-session';
  addr: string;
  /** The verified certificate (routes to a database, app or Kubernetes cluster), when via certificate. */
  certificate?: UserIdentity;
}

/** A caller, or why there is none (status fit for a tunnel refusal). */
export type Identified = { caller: Caller } | {
  refused: string;
  status: number;
  /** Who asked, when known (audited). */
  who?: AccessAuditEvent['identity'];
  /** The trusted root the refused user belongs to (their refusal is forwarded to it). */
  about?: Pick<Caller, 'remote' | 'cluster'>;
};

export interface ClusterAccessOptions {
  auth: () => AuthClient;
  /** This agent's cluster name. */
  cluster: () => string;
  logger: Logger;
  now?: () => Date;
  rolesTtlMs?: number;
  rolesMaxStaleMs?: number;
  /** How long this cluster's user CAs are reused. Default 60 s. */
  caTtlMs?: number;
  auditBufferSize?: number;
  /** How long an event waits for others to travel with. Default 250 ms. */
  auditDelayMs?: number;
  /** Trusted roots (tests pass their own); default read from auth. */
  roots?: TrustedRoots;
}

/** Identities, roles, audit and JWTs for the agent's protocol services; see the file comment. */
export class ClusterAccess {
  readonly #options: ClusterAccessOptions;
  readonly #roots: TrustedRoots;
  #roles: { at: number; byName: Map<string, Role> } | undefined;
  #rolesInFlight: Promise<Map<string, Role>> | undefined;
  #cas: { at: number; pems: string[] } | undefined;
  #casInFlight: Promise<string[]> | undefined;
  readonly #queue: AccessAuditEvent[] = [];
  #dropped = 0;
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  #stopped = false;
  readonly #jwts = new Map<string, { jwt: string; refreshAt: number }>();

  constructor(options: ClusterAccessOptions) {
    this.#options = options;
    this.#roots = options.roots ?? new TrustedRoots({ auth: options.auth, localCluster: options.cluster });
  }

  #now(): Date {
    return this.#options.now?.() ?? new Date();
  }

  /** The trusted roots this module maps through (the SSH service checks SSH certificates against their keys). */
  get roots(): TrustedRoots {
    return this.#roots;
  }

  /** Who the dial's identity header speaks for; see the file comment. */
  async identify(identityHeader: string, headers: Record<string, string | undefined> = {}): Promise<Identified> {
    if (!identityHeader || identityHeader.length > maxIdentityHeader) return { refused: 'the dial carries no user certificate (or an oversized one); the proxy forwards the caller\'s certificate', status: 401 };
    const text = Buffer.from(identityHeader, 'base64').toString('utf8');
    const addr = (headers[clientAddrHeader] ?? '').slice(0, 64);
    const identified = text.startsWith('-----BEGIN CERTIFICATE-----') ? await this.#fromCertificate(text, addr) : this.#fromRouted(identityHeader);
    if ('refused' in identified) return identified;
    const { caller } = identified;
    if (new Date(caller.expires) <= this.#now()) return { refused: `the credentials of ${caller.username} expired at ${caller.expires}; log in again (psh login)`, status: 403, who: this.auditIdentity(caller), about: caller };
    return identified;
  }

  async #fromCertificate(pem: string, addr: string): Promise<Identified> {
    const local = this.#options.cluster();
    let localCas: string[];
    try {
      localCas = await this.#localCas();
    } catch (error) {
      return { refused: `this agent cannot read the user CAs from the auth server (${(error as Error).message}); try again in a few seconds`, status: 503 };
    }
    // Whichever CA signed it, the certificate must name that CA's cluster: a root's CA cannot speak for another cluster.
    let identity: UserIdentity | undefined;
    let signer = local;
    let why = '';
    try {
      identity = verifyUserCertificate(pem, localCas, this.#now());
    } catch (error) {
      why = error instanceof PosternError ? error.message : String(error);
      const roots = await this.#roots.get().catch(() => new Map<string, { userCaTlsPems: string[] }>());
      for (const [name, root] of roots) {
        if (root.userCaTlsPems.length === 0) continue;
        try {
          identity = verifyUserCertificate(pem, root.userCaTlsPems, this.#now());
          signer = name;
          break;
        } catch {
          // not this root's
        }
      }
    }
    if (!identity) return { refused: `the user certificate is not valid here: ${why}`, status: 401 };
    const who = { user: identity.username, roles: identity.roles.slice(0, 256), ...(addr ? { addr } : {}) };
    const about = identity.cluster === local ? undefined : { remote: true, cluster: identity.cluster };
    if (identity.cluster !== signer) return { refused: `the certificate claims cluster "${identity.cluster}" but was signed by the user CA of "${signer}"; refusing it`, status: 403, who };
    // The signer is the claimed cluster's CA, so the claim holds.
    const base = { username: identity.username, traits: identity.traits, expires: identity.expires.toISOString(), cluster: identity.cluster, via: 'certificate' as const, addr, certificate: identity };
    if (identity.cluster === local) return { caller: { ...base, roles: identity.roles, remote: false } };
    const mapped = await this.#roots.remoteRoles(identity.cluster, identity.username, identity.roles);
    if (!mapped.allowed) return { refused: mapped.reason, status: 403, who, about };
    return { caller: { ...base, roles: mapped.roles, remote: true } };
  }

  #fromRouted(header: string): Identified {
    let routed;
    try {
      routed = decodeRoutedIdentity(header);
    } catch (error) {
      return { refused: (error as Error).message, status: 400 };
    }
    const cluster = this.#options.cluster();
    // A routed identity is vouched for by a proxy of this cluster only; root users come with their certificate.
    if (routed.cluster !== cluster) return { refused: `the identity comes from cluster "${routed.cluster}", and this agent belongs to "${cluster}"`, status: 403, who: { user: routed.username, roles: routed.roles, addr: routed.addr } };
    return { caller: { username: routed.username, roles: routed.roles, traits: routed.traits, expires: routed.expires, cluster, remote: false, via: routed.via, addr: routed.addr } };
  }

  /** The checker for a caller's roles, or a refusal reason (roles unreadable). */
  async checker(caller: Caller): Promise<{ checker: AccessChecker; missing: string[] } | { refused: string }> {
    let found;
    try {
      found = await this.roles(caller.roles);
    } catch (error) {
      this.#options.logger.warn({ err: error }, 'cannot read roles from auth');
      return { refused: `this agent cannot read the roles from the auth server (${(error as Error).message}); try again later` };
    }
    return { checker: new AccessChecker(found.roles, caller.traits), missing: found.missing };
  }

  /** The roles named, in force now; names auth does not know are returned apart. */
  async roles(names: readonly string[]): Promise<{ roles: Role[]; missing: string[] }> {
    const byName = await this.#rolesByName();
    const now = this.#now();
    return {
      roles: names.map((n) => byName.get(n)).filter((r): r is Role => r !== undefined && !isExpired(r, now)),
      missing: names.filter((n) => !byName.has(n)),
    };
  }

  /** The audit identity of a caller. */
  auditIdentity(caller: Caller): AccessAuditEvent['identity'] {
    return { user: caller.username, roles: caller.roles.slice(0, 256), ...(caller.addr ? { addr: caller.addr } : {}) };
  }

  /** A JWT assertion for `caller` to app `audience`; cached until a minute before it expires. */
  async appToken(caller: Caller, audience: string): Promise<string> {
    const key = `${caller.cluster}\0${caller.username}\0${caller.roles.join(',')}\0${caller.expires}\0${audience}`;
    const cached = this.#jwts.get(key);
    const now = this.#now().getTime();
    if (cached && cached.refreshAt > now) return cached.jwt;
    const expiresUnix = Math.floor(new Date(caller.expires).getTime() / 1000);
    const { jwt } = await this.#options.auth().signAppToken({
      username: caller.username, roles: caller.roles, traitsJson: JSON.stringify(caller.traits), audience, expiresUnix: BigInt(expiresUnix),
    }, callDeadline);
    const exp = Math.min(expiresUnix * 1000, now + 3_600_000);
    if (this.#jwts.size > 10_000) this.#jwts.clear();
    this.#jwts.set(key, { jwt, refreshAt: exp - 60_000 });
    return jwt;
  }

  /** Queues an audit event (about `caller`, when given); sent in batches in the background. */
  audit(event: AccessAuditEvent, caller?: Pick<Caller, 'remote' | 'cluster'>): void {
    const about = caller?.remote ? { ...event, fields: { ...event.fields, user_cluster: caller.cluster } } : event;
    const max = this.#options.auditBufferSize ?? 10_000;
    if (this.#queue.length >= max) {
      this.#queue.shift();
      if (this.#dropped++ === 0) this.#options.logger.error({ max }, 'audit buffer full: dropping the oldest audit events');
    }
    this.#queue.push(about);
    this.#schedule();
  }

  /** Reads this cluster's user CAs now (a service's start), so the first session does not wait. */
  async warm(): Promise<void> {
    for (let failures = 0; !this.#stopped; failures++) {
      try {
        await this.#localCas();
        return;
      } catch (error) {
        if (failures === 0) this.#options.logger.warn({ err: error }, 'cannot read the user CAs yet; retrying (sessions wait for them)');
        await new Promise((resolve) => setTimeout(resolve, Math.min(30_000, 1_000 * 2 ** Math.min(failures, 5))).unref());
      }
    }
  }

  /** CAs known, pending and dropped audit events, for health. */
  describe(): string {
    return [this.#cas ? `${this.#cas.pems.length} user CA certificate(s)` : 'user CAs not read yet', `${this.#queue.length} audit event(s) pending`, ...(this.#dropped ? [`${this.#dropped} audit event(s) dropped`] : [])].join('; ');
  }

  /** Sends what is queued; for shutdown and tests. */
  flush(): Promise<void> {
    this.#flushing ??= this.#send().finally(() => {
      this.#flushing = undefined;
      if (this.#queue.length > 0 && !this.#stopped) this.#schedule();
    });
    return this.#flushing;
  }

  /** Stops retrying in the background (agent shutdown). */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  #schedule(): void {
    if (this.#timer || this.#flushing) return;
    // The delay lets a busy session's events travel together.
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.flush();
    }, this.#options.auditDelayMs ?? 250);
    this.#timer.unref();
  }

  async #send(): Promise<void> {
    let failures = 0;
    // What is queued now; later events wait for the next timer.
    let due = this.#queue.length;
    while (due > 0 && this.#queue.length > 0) {
      const batch = this.#queue.slice(0, Math.min(500, due));
      try {
        await this.#options.auth().emitAudit({ eventJson: '', eventsJson: batch.map((e) => JSON.stringify(e)) }, callDeadline);
      } catch (error) {
        if ((error as { code?: string }).code === 'PST_BAD_INPUT') {
          this.#options.logger.error({ err: error }, 'auth refused a batch of audit events; dropped');
        } else {
          if (failures++ === 0) this.#options.logger.warn({ err: error, pending: this.#queue.length }, 'cannot send audit events to auth; retrying');
          if (this.#stopped) return;
          await new Promise((resolve) => setTimeout(resolve, Math.min(30_000, 500 * 2 ** failures)).unref());
          continue;
        }
      }
      this.#queue.splice(0, batch.length);
      due -= batch.length;
    }
  }

  async #localCas(): Promise<string[]> {
    const now = this.#now().getTime();
    const cached = this.#cas;
    if (cached && now - cached.at < (this.#options.caTtlMs ?? 60_000)) return cached.pems;
    this.#casInFlight ??= this.#fetchCas().finally(() => {
      this.#casInFlight = undefined;
    });
    try {
      return await this.#casInFlight;
    } catch (error) {
      if (cached) return cached.pems;
      throw error;
    }
  }

  async #fetchCas(): Promise<string[]> {
    const { authorities } = await this.#options.auth().exportAuthorities({ kind: 'user' }, callDeadline);
    const cluster = this.#options.cluster();
    const pems = authorities
      .filter((a) => a.kind === 'user' && (!a.cluster || a.cluster === cluster) && a.tlsCertPem)
      .flatMap((a) => a.tlsCertPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? []);
    if (pems.length === 0) throw new Error('auth exported no user CA certificate');
    this.#cas = { at: this.#now().getTime(), pems };
    return pems;
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
      else this.#options.logger.warn({ role: item.metadata.name }, 'ignoring a role auth sent that does not parse');
    }
    this.#roles = { at: this.#now().getTime(), byName };
    return byName;
  }
}
