/**
 * What the database service needs from the cluster: the agent's shared access module
 * (ClusterAccess: who the caller is, through the role map for a root's user; roles;
 * batched audit), plus db-client certificates (CN = database user) for upstream
 * logins, cached until two thirds of their life, one key pair per agent run.
 */
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import type { AuthClient } from '../../../cluster/api/auth-client.ts';
import type { Role } from '../../../cluster/access/roles/role.ts';
import type { Caller, ClusterAccess, Identified } from '../access/cluster-access.ts';

const callDeadline = { deadlineMs: 5_000 };

/** What auth's emitAudit takes (audit-event.ts, without id, time and cluster). */
export interface DbAuditEvent {
  type: string;
  identity: { user?: string; roles?: string[]; addr?: string };
  resource: { kind: 'db'; name: string };
  outcome: 'allow' | 'deny' | 'success' | 'failure';
  reason?: string;
  fields: Record<string, unknown>;
}

export interface DbClientCertificate {
  certPem: string;
  keyPem: string;
  caPems: string[];
}

export interface DbClusterAccessOptions {
  auth: () => AuthClient;
  /** The agent's access module, shared with its other services. */
  shared: ClusterAccess;
}

export class DbClusterAccess {
  readonly #options: DbClusterAccessOptions;
  readonly #clientKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  readonly #clientCerts = new Map<string, { renewAt: number; cert: Promise<DbClientCertificate> }>();

  constructor(options: DbClusterAccessOptions) {
    this.#options = options;
  }

  describe(): string {
    return this.#options.shared.describe();
  }

  /** Who the forwarded identity speaks for (ClusterAccess.identify). */
  identify(identityHeader: string, headers?: Record<string, string | undefined>): Promise<Identified> {
    return this.#options.shared.identify(identityHeader, headers);
  }

  /** The roles named, in force now; names auth does not know are returned apart. */
  roles(names: readonly string[]): Promise<{ roles: Role[]; missing: string[] }> {
    return this.#options.shared.roles(names);
  }

  /** Queues an audit event (batched by the shared module). */
  audit(event: DbAuditEvent, caller?: Pick<Caller, 'remote' | 'cluster'>): void {
    this.#options.shared.audit(event, caller);
  }

  flushAudit(): Promise<void> {
    return this.#options.shared.flush();
  }

  /** A db-client certificate for `dbUser`, from auth (cached). */
  clientCertificate(dbUser: string, database: string): Promise<DbClientCertificate> {
    const cached = this.#clientCerts.get(dbUser);
    if (cached && Date.now() < cached.renewAt) return cached.cert;
    const keyPem = this.#clientKey.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const cert = this.#options.auth().signDatabaseCertificate({
      purpose: 'client',
      name: dbUser,
      tlsPublicKey: this.#clientKey.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      ttlSeconds: 0n,
      altNames: [],
      database,
    }, callDeadline).then((signed) => {
      const x509 = new X509Certificate(signed.tlsCertificatePem);
      const from = x509.validFromDate.getTime();
      const entry = this.#clientCerts.get(dbUser);
      if (entry) entry.renewAt = from + ((x509.validToDate.getTime() - from) * 2) / 3;
      return { certPem: signed.tlsCertificatePem, keyPem, caPems: signed.signerCaPems };
    });
    // Until it is known, concurrent sessions share the one request; a failure is not cached.
    this.#clientCerts.set(dbUser, { renewAt: Number.POSITIVE_INFINITY, cert });
    cert.catch(() => this.#clientCerts.delete(dbUser));
    return cert;
  }
}
