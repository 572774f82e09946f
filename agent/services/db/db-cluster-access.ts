/**
 * What the database service needs from the cluster, read through the auth API:
 *
 * - the user CA certificates (X.509), to verify the certificate a proxy forwards as the
 *   caller's identity; refreshed every few minutes; until known every session is
 *   refused (fail closed);
 * - roles by name (cached ~10 s, a stale copy serves a while when auth is unreachable);
 * - db-client certificates (CN = database user) for upstream logins, cached until two
 *   thirds of their life; one key pair per agent run;
 * - audit events, batched (sent every ~250 ms, up to 500 per call, one backend
 *   transaction at auth) and retried in the background, so a query never waits for the
 *   audit log, and auth syncs its disk a few times a second rather than per query.
 */
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import type { AuthClient } from '../../../cluster/api/auth-client.ts';
import type { Logger } from '../../../cluster/common/logger.ts';
import { roleSpecSchema, type Role } from '../../../cluster/access/roles/role.ts';
import { isExpired } from '../../../cluster/access/resources/resource.ts';

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
  cluster: () => string;
  logger: Logger;
  caRefreshMs?: number;
  rolesTtlMs?: number;
  rolesMaxStaleMs?: number;
  auditBufferSize?: number;
  /** How long an event waits for others to travel with. Default 250 ms. */
  auditDelayMs?: number;
}

export class DbClusterAccess {
  readonly #options: DbClusterAccessOptions;
  readonly #log: Logger;
  #userCaPems: string[] | undefined;
  #caError: string | undefined;
  #caTimer: NodeJS.Timeout | undefined;
  #caFailures = 0;
  #roles: { at: number; byName: Map<string, Role> } | undefined;
  #rolesInFlight: Promise<Map<string, Role>> | undefined;
  readonly #clientKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  readonly #clientCerts = new Map<string, { renewAt: number; cert: Promise<DbClientCertificate> }>();
  readonly #auditQueue: DbAuditEvent[] = [];
  #auditDropped = 0;
  #auditTimer: NodeJS.Timeout | undefined;
  #auditFlushing: Promise<void> | undefined;
  #running = false;

  constructor(options: DbClusterAccessOptions) {
    this.#options = options;
    this.#log = options.logger;
  }

  start(): void {
    this.#running = true;
    void this.#refreshCAs();
  }

  async stop(): Promise<void> {
    this.#running = false;
    clearTimeout(this.#caTimer);
    clearTimeout(this.#auditTimer);
    await Promise.race([this.flushAudit(), new Promise((resolve) => setTimeout(resolve, 1_000).unref())]);
  }

  /** User CA certificates, or undefined while unknown. */
  userCaPems(): string[] | undefined {
    return this.#userCaPems;
  }

  describe(): string {
    return [
      this.#userCaPems ? `${this.#userCaPems.length} user CA certificate(s)` : `user CAs unknown (${this.#caError ?? 'not read yet'}); sessions are refused`,
      `${this.#auditQueue.length} audit event(s) pending`,
      ...(this.#auditDropped ? [`${this.#auditDropped} audit event(s) dropped`] : []),
    ].join('; ');
  }

  async refreshCAs(): Promise<void> {
    const { authorities } = await this.#options.auth().exportAuthorities({ kind: 'user' }, callDeadline);
    const cluster = this.#options.cluster();
    const pems = authorities.filter((a) => a.kind === 'user' && (!cluster || !a.cluster || a.cluster === cluster) && a.tlsCertPem).map((a) => a.tlsCertPem);
    const certs = pems.flatMap((pem) => pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? []);
    if (certs.length === 0) throw new Error('auth exported no user CA certificate');
    this.#userCaPems = certs;
    this.#caError = undefined;
  }

  async #refreshCAs(): Promise<void> {
    try {
      await this.refreshCAs();
      this.#caFailures = 0;
    } catch (error) {
      this.#caFailures++;
      this.#caError = (error as Error).message;
      this.#log.warn({ err: error }, this.#userCaPems ? 'cannot refresh the user CAs; keeping the ones known' : 'cannot read the user CAs; database sessions are refused until they are known');
    }
    if (!this.#running) return;
    const every = this.#options.caRefreshMs ?? 5 * 60_000;
    const delay = this.#userCaPems ? every : Math.min(every, 30_000, 1_000 * 2 ** Math.min(this.#caFailures - 1, 5));
    this.#caTimer = setTimeout(() => void this.#refreshCAs(), delay);
    this.#caTimer.unref();
  }

  /** The roles named, in force now; names auth does not know are returned apart. */
  async roles(names: readonly string[]): Promise<{ roles: Role[]; missing: string[] }> {
    const byName = await this.#rolesByName();
    const now = new Date();
    return {
      roles: names.map((n) => byName.get(n)).filter((r): r is Role => r !== undefined && !isExpired(r, now)),
      missing: names.filter((n) => !byName.has(n)),
    };
  }

  async #rolesByName(): Promise<Map<string, Role>> {
    const now = Date.now();
    const cached = this.#roles;
    if (cached && now - cached.at < (this.#options.rolesTtlMs ?? 10_000)) return cached.byName;
    this.#rolesInFlight ??= this.#fetchRoles().finally(() => {
      this.#rolesInFlight = undefined;
    });
    try {
      return await this.#rolesInFlight;
    } catch (error) {
      if (cached && now - cached.at < (this.#options.rolesMaxStaleMs ?? 5 * 60_000)) {
        this.#log.warn({ err: error }, 'cannot read roles from auth; using the copy read earlier');
        return cached.byName;
      }
      throw error;
    }
  }

  async #fetchRoles(): Promise<Map<string, Role>> {
    const { resourcesJson } = await this.#options.auth().getResources({ kind: 'role', name: '' }, callDeadline);
    const byName = new Map<string, Role>();
    for (const raw of JSON.parse(resourcesJson) as Role[]) {
      const spec = roleSpecSchema.safeParse(raw.spec);
      if (!spec.success) {
        this.#log.warn({ role: raw.metadata?.name }, 'ignoring a role auth sent that does not parse');
        continue;
      }
      byName.set(raw.metadata.name, { ...raw, spec: spec.data });
    }
    this.#roles = { at: Date.now(), byName };
    return byName;
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

  /** Queues an audit event; sent in the background. */
  audit(event: DbAuditEvent): void {
    const max = this.#options.auditBufferSize ?? 10_000;
    if (this.#auditQueue.length >= max) {
      this.#auditQueue.shift();
      if (this.#auditDropped++ === 0) this.#log.error({ max }, 'audit buffer full: dropping the oldest database audit events');
    }
    this.#auditQueue.push(event);
    if (!this.#auditTimer && !this.#auditFlushing) {
      // The delay lets a busy session's events travel together.
      this.#auditTimer = setTimeout(() => {
        this.#auditTimer = undefined;
        void this.flushAudit();
      }, this.#options.auditDelayMs ?? 250);
      this.#auditTimer.unref();
    }
  }

  flushAudit(): Promise<void> {
    this.#auditFlushing ??= (async () => {
      let failures = 0;
      // What is queued now; later events wait for the next timer, so a busy agent sends a few batches a second.
      let due = this.#auditQueue.length;
      while (due > 0 && this.#auditQueue.length > 0) {
        const batch = this.#auditQueue.slice(0, Math.min(500, due));
        try {
          await this.#options.auth().emitAudit({ eventJson: '', eventsJson: batch.map((e) => JSON.stringify(e)) }, callDeadline);
        } catch (error) {
          if ((error as { code?: string }).code === 'PST_BAD_INPUT') {
            this.#log.error({ err: error }, 'auth refused a batch of database audit events; dropped');
            this.#auditQueue.splice(0, batch.length);
            due -= batch.length;
            continue;
          }
          if (failures++ === 0) this.#log.warn({ err: error, pending: this.#auditQueue.length }, 'cannot send database audit events to auth; retrying');
          if (!this.#running) return;
          await new Promise((resolve) => setTimeout(resolve, Math.min(30_000, 500 * 2 ** failures)).unref());
          continue;
        }
        this.#auditQueue.splice(0, batch.length);
        due -= batch.length;
      }
    })().finally(() => {
      this.#auditFlushing = undefined;
      if (this.#auditQueue.length > 0 && this.#running && !this.#auditTimer) {
        this.#auditTimer = setTimeout(() => {
          this.#auditTimer = undefined;
          void this.flushAudit();
        }, this.#options.auditDelayMs ?? 250);
        this.#auditTimer.unref();
      }
    });
    return this.#auditFlushing;
  }
}
