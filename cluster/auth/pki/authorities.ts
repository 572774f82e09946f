/**
 * The cluster's certificate authorities over the Backend (record format in
 * authority-record.ts): created once per cluster, read by every auth server.
 *
 *   ensure('root') --get /authorities/root/<kind>--> found: parse and keep
 *                                                 \-> absent: generate keys, create()
 *                                                       won  -> keep ours
 *                                                       lost -> AlreadyExists: read and keep the winner's
 *
 * `create` (never `put`) is what makes two auth servers starting at once agree on one
 * CA per kind. Remote CAs (a trusted root's host and user CAs, public only) live
 * beside them under the remote cluster's name.
 *
 * ```ts
 * const cas = new CertAuthorities({ backend });
 * await cas.ensure('root');
 * const pem = issueCertificate({ ca: cas.x509Signer('user'), publicKey, identity, notAfter, usage: 'client' });
 * ```
 */
import type { KeyObject } from 'node:crypto';
import { AlreadyExistsError, BadInputError, CompareFailedError, NotFoundError } from '../../../protocols/errors.ts';
import { systemClock, type Clock } from '../../common/clock.ts';
import { silentLogger, type Logger } from '../../common/logger.ts';
import type { Backend } from '../backend/backend.ts';
import {
  authorityKey,
  generateAuthority,
  parseStoredAuthority,
  remoteAuthorityRecord,
  type AuthorityKeys,
  type CertAuthority,
  type RemoteAuthorityInput,
} from './authority-record.ts';
import { caKinds, type CaKind, type SshCaKind, type X509CaKind } from './ca-kinds.ts';
import { AuthorityError } from './errors.ts';
import type { Es256PublicJwk } from './jwk.ts';
import type { X509Ca } from './x509.ts';

export type { CertAuthority, AuthorityKeys, RemoteAuthorityInput } from './authority-record.ts';

export interface CertAuthoritiesOptions {
  backend: Backend;
  clock?: Clock;
  logger?: Logger;
  /** Lifetime of newly created X.509 CA certificates; default 3650 days. */
  caValidityDays?: number;
}

/** What anyone may see of a CA: certificates, SSH keys, pins and JWKS; active first, then additionally trusted. */
export interface PublicAuthority {
  cluster: string;
  kind: CaKind;
  remote: boolean;
  tlsCertPems: string[];
  /** `sha256:<hex>` of each certificate's SubjectPublicKeyInfo. */
  tlsPins: string[];
  /** `authorized_keys` lines (`ssh-ed25519 AAAA… <cluster>-<kind>-ca`). */
  sshPublicKeys: string[];
  /** OpenSSH fingerprints, `SHA256:<base64>`. */
  sshFingerprints: string[];
  /** For the jwt CA. */
  jwks?: { keys: Es256PublicJwk[] };
}

const clusterNamePattern = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$/;
const maxWriteAttempts = 5;

/** The local cluster's four CAs, and the remote CAs it trusts; see the file comment. */
export class CertAuthorities {
  readonly #backend: Backend;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #validityDays: number | undefined;
  readonly #local = new Map<CaKind, CertAuthority>();
  /**
   * The last record read at each key and what it parsed to: agents and trusted clusters
   * poll the remote CAs every few seconds, and parsing a record (schema, certificates,
   * private keys) was most of an idle auth server's CPU. Keyed by the stored text itself.
   */
  readonly #parsed = new Map<string, { value: string; authority: CertAuthority }>();
  #cluster: string | undefined;
  #ensuring: Promise<void> | undefined;

  constructor(options: CertAuthoritiesOptions) {
    this.#backend = options.backend;
    this.#clock = options.clock ?? systemClock;
    this.#log = options.logger ?? silentLogger();
    this.#validityDays = options.caValidityDays;
  }

  /** The local cluster's name; AuthorityError before ensure(). */
  get clusterName(): string {
    if (this.#cluster === undefined) throw new AuthorityError('The certificate authorities are not loaded yet: call ensure(clusterName) at start-up');
    return this.#cluster;
  }

  /** Creates the cluster's CAs that do not exist yet (racing other auth servers safely) and loads all four. */
  async ensure(clusterName: string): Promise<void> {
    _checkClusterName(clusterName);
    if (this.#cluster !== undefined && this.#cluster !== clusterName) {
      throw new AuthorityError(`The certificate authorities are loaded for cluster ${this.#cluster}, not ${clusterName}; use one CertAuthorities per cluster`);
    }
    this.#cluster = clusterName;
    // Concurrent calls in this process share one run.
    this.#ensuring ??= this.#ensureAll(clusterName).catch((error: unknown) => {
      this.#ensuring = undefined; // let a later call retry (a busy or closed backend)
      throw error;
    });
    return this.#ensuring;
  }

  /** Re-reads the local CAs (after another auth server changed them, e.g. a rotation). */
  async reload(): Promise<void> {
    const cluster = this.clusterName;
    await Promise.all(caKinds.map(async (kind) => this.#local.set(kind, await this.#read(cluster, kind) ?? _missing(cluster, kind))));
  }

  /** A local CA, as loaded by ensure(). */
  get(kind: CaKind): CertAuthority {
    const authority = this.#local.get(kind);
    if (authority === undefined) {
      throw new AuthorityError(`The ${kind} certificate authority is not loaded: call ensure(clusterName) at start-up (or the kind is unknown)`);
    }
    return authority;
  }

  /** The active X.509 CA of `kind`, ready for issueCertificate. */
  x509Signer(kind: X509CaKind): X509Ca {
    const signer = this.get(kind).active.tls?.signer;
    if (signer === undefined) throw new AuthorityError(`The ${kind} CA of cluster ${this.clusterName} has no X.509 signing key`);
    return signer;
  }

  /** The active SSH CA private key (Ed25519) of `kind`. */
  sshSigner(kind: SshCaKind): KeyObject {
    const key = this.get(kind).active.ssh?.privateKey;
    if (key === undefined) throw new AuthorityError(`The ${kind} CA of cluster ${this.clusterName} has no SSH signing key`);
    return key;
  }

  /** The jwt CA's ES256 private key and the kid to put in JWT headers. */
  jwtSigner(): { key: KeyObject; kid: string } {
    const jwt = this.get('jwt').active.jwt;
    if (jwt?.privateKey === undefined) throw new AuthorityError(`The jwt CA of cluster ${this.clusterName} has no signing key`);
    return { key: jwt.privateKey, kid: jwt.jwk.kid };
  }

  /** The public side of a local CA. */
  publicAuthority(kind: CaKind): PublicAuthority {
    return publicAuthorityOf(this.get(kind));
  }

  /** X.509 CA certificates a verifier of `kinds` should trust: active and additionally trusted, local only. */
  trustedTlsCerts(...kinds: X509CaKind[]): string[] {
    return kinds.flatMap((kind) => publicAuthorityOf(this.get(kind)).tlsCertPems);
  }

  /** The JWKS the proxy serves: every trusted jwt key, active first. */
  jwks(): { keys: Es256PublicJwk[] } {
    return publicAuthorityOf(this.get('jwt')).jwks ?? { keys: [] };
  }

  /** Stores (or replaces) a trusted cluster's host or user CA, public material only. */
  async putRemote(input: RemoteAuthorityInput): Promise<CertAuthority> {
    _checkClusterName(input.cluster);
    if (input.cluster === this.#cluster) {
      throw new AuthorityError(`Cannot store a remote CA for cluster ${input.cluster}: that is this cluster's own name; trusted clusters need distinct names`);
    }
    if (input.kind !== 'host' && input.kind !== 'user') throw new BadInputError(`Cannot store a remote ${String(input.kind)} CA: only host and user CAs are exchanged`);
    const key = authorityKey(input.cluster, input.kind);
    const value = JSON.stringify(remoteAuthorityRecord(input, this.#clock.now()));
    for (let attempt = 0; attempt < maxWriteAttempts; attempt++) {
      const existing = await this.#backend.get(key);
      try {
        if (existing === undefined) return parseStoredAuthority(value, await this.#backend.create({ key, value }));
        if (!parseStoredAuthority(existing.value, existing).remote) {
          throw new AuthorityError(`Cannot store a remote CA at ${key}: a local CA of cluster ${input.cluster} is stored there`);
        }
        return parseStoredAuthority(value, await this.#backend.compareAndSwap(existing.revision, { key, value }));
      } catch (error) {
        // Lost a race with another writer (created, changed or removed meanwhile): read again.
        if (!(error instanceof AlreadyExistsError || error instanceof CompareFailedError || error instanceof NotFoundError)) throw error;
      }
    }
    throw new AuthorityError(`Cannot store the remote CA at ${key}: it kept changing under concurrent writers; try again`);
  }

  /** A remote CA, or undefined when none is stored. */
  async getRemote(cluster: string, kind: CaKind): Promise<CertAuthority | undefined> {
    _checkClusterName(cluster);
    const authority = await this.#read(cluster, kind);
    return authority?.remote ? authority : undefined;
  }

  /** Every stored remote CA, in key order. */
  async listRemote(): Promise<CertAuthority[]> {
    const items = await this.#backend.range('/authorities/');
    return items.map((item) => this.#parse(item)).filter((authority) => authority.remote);
  }

  /** Removes a remote cluster's CAs (trust torn down); returns how many were removed. */
  async removeRemote(cluster: string): Promise<number> {
    _checkClusterName(cluster);
    if (cluster === this.#cluster) throw new AuthorityError(`Refusing to remove the CAs of ${cluster}: it is this cluster`);
    let removed = 0;
    for (const kind of caKinds) {
      const item = await this.#backend.get(authorityKey(cluster, kind));
      if (item === undefined || !this.#parse(item).remote) continue;
      await this.#backend.delete(item.key);
      removed++;
    }
    return removed;
  }

  async #ensureAll(cluster: string): Promise<void> {
    for (const kind of caKinds) this.#local.set(kind, await this.#ensureOne(cluster, kind));
  }

  async #ensureOne(cluster: string, kind: CaKind): Promise<CertAuthority> {
    const existing = await this.#read(cluster, kind);
    if (existing !== undefined) {
      if (existing.remote) throw new AuthorityError(`${authorityKey(cluster, kind)} holds a remote CA, not this cluster's own; is another cluster named ${cluster}?`);
      return existing;
    }
    const key = authorityKey(cluster, kind);
    const value = JSON.stringify(generateAuthority(cluster, kind, { now: this.#clock.now(), validityDays: this.#validityDays }));
    try {
      const created = parseStoredAuthority(value, await this.#backend.create({ key, value }));
      this.#log.info({ cluster, kind, pin: created.active.tls?.pin, ssh: created.active.ssh?.fingerprint, kid: created.active.jwt?.jwk.kid }, 'created certificate authority');
      return created;
    } catch (error) {
      if (!(error instanceof AlreadyExistsError)) throw error;
      // Another auth server created it between our get and create: use theirs.
      return (await this.#read(cluster, kind)) ?? _missing(cluster, kind);
    }
  }

  async #read(cluster: string, kind: CaKind): Promise<CertAuthority | undefined> {
    const item = await this.#backend.get(authorityKey(cluster, kind));
    return item === undefined ? undefined : this.#parse(item);
  }

  /** parseStoredAuthority, once per distinct stored text at a key. */
  #parse(item: { key: string; value: string; revision: number }): CertAuthority {
    const known = this.#parsed.get(item.key);
    if (known !== undefined && known.value === item.value) {
      return known.authority.revision === item.revision ? known.authority : { ...known.authority, revision: item.revision };
    }
    const authority = parseStoredAuthority(item.value, item);
    this.#parsed.set(item.key, { value: item.value, authority });
    return authority;
  }
}

/** The public side of any CA (local or remote). */
export function publicAuthorityOf(authority: CertAuthority): PublicAuthority {
  const sets: AuthorityKeys[] = [authority.active, ...authority.additionalTrusted];
  const jwks = sets.flatMap((set) => (set.jwt ? [set.jwt.jwk] : []));
  return {
    cluster: authority.cluster,
    kind: authority.kind,
    remote: authority.remote,
    tlsCertPems: sets.flatMap((set) => (set.tls ? [set.tls.certPem] : [])),
    tlsPins: sets.flatMap((set) => (set.tls ? [set.tls.pin] : [])),
    sshPublicKeys: sets.flatMap((set) => (set.ssh ? [set.ssh.authorizedKey] : [])),
    sshFingerprints: sets.flatMap((set) => (set.ssh ? [set.ssh.fingerprint] : [])),
    ...(jwks.length > 0 && { jwks: { keys: jwks } }),
  };
}

function _checkClusterName(cluster: string): void {
  if (typeof cluster !== 'string' || !clusterNamePattern.test(cluster)) {
    throw new BadInputError(`"${String(cluster)}" is not a cluster name: use 1-253 letters, digits, '.', '_' or '-', starting and ending with a letter or digit`);
  }
}

function _missing(cluster: string, kind: CaKind): never {
  throw new AuthorityError(`The ${kind} CA of cluster ${cluster} vanished from the backend while it was being loaded; restart the auth server`);
}
