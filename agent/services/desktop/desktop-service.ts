/**
 * The agent's Desktop Service: every `agent.desktops[]` entry served through the
 * tunnels as `desktop:NAME` and announced in the heartbeat (kind desktop, its labels,
 * spec {addr}).
 *
 * ```
 * proxy ── dial desktop:NAME, postern-identity = base64(user X.509 PEM) ──> handler
 *   verify the certificate against this cluster's user CAs (exportAuthorities user)  401
 *     or a trusted root's (agent/trust): then its roles map through the role_map      403 when none map
 *   a local certificate's cluster must be this agent's                                403
 *   roles from auth (RolesCache): desktop_labels must match this desktop              403 + access.denied
 *   accept -> desktop-session.ts: connect{login} -> checkDesktop(login) -> RDP engine
 * ```
 *
 * Passwords are read from `password_file` / `password_env` when a session starts (so
 * a rotated file applies at once) and never logged. Sessions are recorded to
 * `recordings_dir` (default <data_dir>/recordings/desktop/<session id>.pdr) unless every
 * role of the user says `record_session: false`, and uploaded to auth when the session
 * ends (desktop-recordings.ts, the SSH uploader). Audit events go to auth through an
 * AuditQueue.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { AuthClient } from '../../../cluster/api/auth-client.ts';
import { verifyUserCertificate, type UserIdentity } from '../../../cluster/api/verify-user-certificate.ts';
import { AccessChecker } from '../../../cluster/access/roles/access-checker.ts';
import type { PosternConfig } from '../../../cluster/common/config.ts';
import type { Logger } from '../../../cluster/common/logger.ts';
import { PosternError } from '../../../protocols/errors.ts';
import { TunnelRejectedError, type IncomingDial } from '../../../protocols/tunnel/index.ts';
import type { DesktopRecorder } from '../../../protocols/rdp/desktop-recording.ts';
import type { RdpCredentials, RdpEngine } from '../../../protocols/rdp/rdp-engine.ts';
import type { AgentIdentity } from '../../identity/agent-identity.ts';
import type { ServiceHealth, SupervisedService } from '../../supervisor/service.ts';
import type { ServiceRegistry } from '../../tunnel/service-registry.ts';
import { TrustedRoots } from '../../trust/trusted-roots.ts';
import { AuditQueue } from '../audit-queue.ts';
import { RolesCache } from '../roles-cache.ts';
import { DesktopRecordings } from './desktop-recordings.ts';
import { serveDesktopSession, type DesktopSessionEvent, type DesktopTarget } from './desktop-session.ts';

export type DesktopConfig = NonNullable<PosternConfig['agent']>['desktops'][number];

export interface AgentDesktopsOptions {
  identity: AgentIdentity;
  auth: () => AuthClient;
  desktops: readonly DesktopConfig[];
  dataDir: string;
  logger: Logger;
  /** The RDP client; default ironrdp-wasm (loaded at the first session). */
  engine?: RdpEngine;
  /** How often the user CAs are re-read. Default 5 min (1 s doubling to 30 s while unknown). */
  caRefreshMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Retry period for recording uploads. Default 30 s. */
  recordingRetryMs?: number;
}

/** Longest identity header accepted (a PEM certificate, base64). */
const MAX_IDENTITY_HEADER = 16 * 1024;

export class AgentDesktops implements SupervisedService {
  readonly name = 'desktop';
  readonly #o: AgentDesktopsOptions;
  readonly #log: Logger;
  readonly #roles: RolesCache;
  readonly #audit: AuditQueue;
  readonly #recordings: DesktopRecordings;
  readonly #roots: TrustedRoots;
  #engine: RdpEngine | undefined;
  #userCaPems: string[] | undefined;
  #caError: string | undefined;
  #caFailures = 0;
  #caTimer: NodeJS.Timeout | undefined;
  #running = false;
  readonly #streams = new Set<IncomingDial['stream']>();

  constructor(options: AgentDesktopsOptions) {
    this.#o = options;
    this.#log = options.logger;
    this.#engine = options.engine;
    this.#roles = new RolesCache({ auth: options.auth, logger: options.logger });
    this.#audit = new AuditQueue({ auth: options.auth, logger: options.logger });
    this.#recordings = new DesktopRecordings({ auth: options.auth, logger: options.logger, intervalMs: options.recordingRetryMs });
    for (const desktop of options.desktops) this.#recordings.watch(this.#recordingsDir(desktop));
    this.#roots = new TrustedRoots({ auth: options.auth, localCluster: () => options.identity.current.cluster });
  }

  /** Registers every desktop with the tunnel registry; returns the removal. */
  register(services: ServiceRegistry): () => void {
    const removals = this.#o.desktops.map((desktop) =>
      services.registerServed({ kind: 'desktop', name: desktop.name, labels: desktop.labels, spec: { addr: desktop.addr, protocol: 'rdp' } }, (dial) => this.handle(desktop, dial)));
    return () => removals.forEach((remove) => remove());
  }

  async start(): Promise<void> {
    this.#running = true;
    this.#audit.start();
    this.#recordings.startUploads();
    void this.#refreshCAs();
  }

  async stop(): Promise<void> {
    this.#running = false;
    clearTimeout(this.#caTimer);
    // Sessions end with the service: their RDP connections close and their end events are queued first.
    for (const stream of this.#streams) stream.destroy();
    await new Promise((resolve) => setImmediate(resolve));
    this.#recordings.stopUploads();
    await this.#audit.stop();
  }

  health(): ServiceHealth {
    const parts = [
      `${this.#o.desktops.length} desktop(s), ${this.#streams.size} session(s)`,
      this.#userCaPems ? `${this.#userCaPems.length} user CA certificate(s)` : `user CAs unknown (${this.#caError ?? 'not read yet'}); sessions are refused`,
      `${this.#audit.pending} audit event(s) pending`,
      ...(this.#recordings.pending ? [`${this.#recordings.pending} desktop recording(s) waiting for upload`] : []),
    ];
    return { ok: true, detail: parts.join('; ') };
  }

  /** Reads the user CA certificates now. */
  async refreshCAs(): Promise<void> {
    const { authorities } = await this.#o.auth().exportAuthorities({ kind: 'user' }, { deadlineMs: 5_000 });
    const cluster = this.#o.identity.current.cluster;
    const pems = authorities.filter((a) => a.kind === 'user' && (!cluster || !a.cluster || a.cluster === cluster) && a.tlsCertPem).map((a) => a.tlsCertPem);
    if (pems.length === 0) throw new Error('auth exported no user CA certificate');
    this.#userCaPems = pems;
    this.#caError = undefined;
  }

  /** Decides on one dial to `desktop`, then serves it in the background. */
  async handle(desktop: DesktopConfig, dial: IncomingDial): Promise<void> {
    let identity: UserIdentity;
    try {
      identity = await this.#verify(dial.identity);
    } catch (error) {
      // A refusal without a trusted identity is still a decision: audited without a user.
      if (error instanceof TunnelRejectedError && error.status !== 503) {
        this.#emit({ type: 'access.denied', outcome: 'deny', user: { username: '', roles: [] }, desktop: desktop.name, sessionId: '', reason: error.reason });
      }
      throw error;
    }
    const target = _target(desktop);
    const user = { username: identity.username, roles: identity.roles };
    // A root's user: the event names their cluster, so the root pulls it into its own audit log (docs/trusted-clusters.md).
    const local = this.#o.identity.current.cluster;
    const emit = (event: DesktopSessionEvent): void => this.#emit(local && identity.cluster !== local ? { ...event, fields: { ...event.fields, user_cluster: identity.cluster } } : event);
    let checker: AccessChecker;
    try {
      checker = await this.#checker(identity);
    } catch (error) {
      throw new TunnelRejectedError(503, `this agent cannot read the roles from the auth server (${(error as Error).message}); try again later`);
    }
    const visible = checker.checkVisible('desktop', { name: desktop.name, labels: desktop.labels });
    if (!visible.allowed) {
      emit({ type: 'access.denied', outcome: 'deny', user, desktop: desktop.name, sessionId: '', reason: visible.reason });
      throw new TunnelRejectedError(403, visible.reason);
    }
    const record = checker.options().recordSession;
    this.#streams.add(dial.stream);
    void serveDesktopSession(dial.stream, {
      target,
      user,
      engine: this.#engineOrDefault(),
      authorize: async (login) => {
        const decision = checker.checkDesktop({ name: desktop.name, labels: desktop.labels, login });
        if (decision.allowed && !desktop.logins.some((l) => l.login === login)) {
          return { allowed: false, reason: `desktop "${desktop.name}" has no credentials for login "${login}"; it offers ${desktop.logins.map((l) => l.login).join(', ')}` };
        }
        return decision;
      },
      credentials: (login) => this.#credentials(desktop, login),
      audit: emit,
      record: record ? (header) => this.#recorder(desktop, header, local && identity.cluster !== local ? identity.cluster : undefined) : undefined,
      logger: this.#log,
    }).finally(() => this.#streams.delete(dial.stream));
  }

  async #verify(header: string): Promise<UserIdentity> {
    if (!this.#userCaPems) throw new TunnelRejectedError(503, `this agent has not loaded the user CAs from the auth server yet (${this.#caError ?? 'not read yet'}); try again in a few seconds`);
    if (!header || header.length > MAX_IDENTITY_HEADER) throw new TunnelRejectedError(401, 'the dial carries no user certificate; desktops are reached with a user certificate forwarded by the proxy');
    const pem = Buffer.from(header, 'base64').toString('utf8');
    let identity: UserIdentity;
    try {
      identity = verifyUserCertificate(pem, this.#userCaPems);
    } catch (error) {
      const remote = await this.#verifyRemote(pem);
      if (remote) return remote;
      throw new TunnelRejectedError(401, error instanceof PosternError ? error.message : `the user certificate cannot be checked: ${String(error)}`);
    }
    const cluster = this.#o.identity.current.cluster;
    if (cluster && identity.cluster !== cluster) {
      throw new TunnelRejectedError(403, `the certificate was issued by cluster "${identity.cluster}", and this agent belongs to "${cluster}"`);
    }
    return identity;
  }

  /**
   * A user of a root this cluster trusts: the certificate must chain to *that* root's
   * user CA and name it; the roles become the leaf roles the role map gives (none: 403).
   * Undefined when no trusted root issued it.
   */
  async #verifyRemote(pem: string): Promise<UserIdentity | undefined> {
    const roots = await this.#roots.get().catch(() => undefined);
    for (const root of roots?.values() ?? []) {
      if (root.userCaTlsPems.length === 0) continue;
      let identity: UserIdentity;
      try {
        identity = verifyUserCertificate(pem, root.userCaTlsPems);
      } catch {
        continue;
      }
      if (identity.cluster !== root.name) throw new TunnelRejectedError(403, `the certificate was signed by cluster "${root.name}"'s user CA but names cluster "${identity.cluster}"; refusing it`);
      const mapped = await this.#roots.remoteRoles(root.name, identity.username, identity.roles);
      if (!mapped.allowed) throw new TunnelRejectedError(403, mapped.reason);
      return { ...identity, roles: mapped.roles };
    }
    return undefined;
  }

  async #checker(identity: UserIdentity): Promise<AccessChecker> {
    const { roles } = await this.#roles.resolve(identity.roles);
    return new AccessChecker(roles, identity.traits);
  }

  async #credentials(desktop: DesktopConfig, login: string): Promise<RdpCredentials> {
    const entry = desktop.logins.find((l) => l.login === login);
    if (!entry) throw new PosternError('PST_NOT_FOUND', `desktop "${desktop.name}" has no credentials for login "${login}"`);
    let password: string | undefined;
    if (entry.password_file) {
      try {
        password = (await readFile(entry.password_file, 'utf8')).replace(/\r?\n$/, '');
      } catch (error) {
        throw new PosternError('PST_DESKTOP_CREDENTIALS', `desktop "${desktop.name}" login "${login}": cannot read password_file ${entry.password_file} (${(error as NodeJS.ErrnoException).code ?? 'error'}); check the agent config`);
      }
    } else if (entry.password_env) {
      password = (this.#o.env ?? process.env)[entry.password_env];
      if (password === undefined) throw new PosternError('PST_DESKTOP_CREDENTIALS', `desktop "${desktop.name}" login "${login}": environment variable ${entry.password_env} is not set in the agent's environment`);
    }
    return { username: entry.username ?? entry.login, password: password ?? '', ...(entry.domain ? { domain: entry.domain } : {}) };
  }

  /** Uploads pending desktop recordings now and waits for the pass (tests, shutdown). */
  async uploadRecordings(): Promise<void> {
    await this.#recordings.uploadAll();
  }

  #recordingsDir(desktop: DesktopConfig): string {
    return desktop.recordings_dir ?? path.join(this.#o.dataDir, 'recordings', 'desktop');
  }

  #recorder(desktop: DesktopConfig, header: ConstructorParameters<typeof DesktopRecorder>[1], userCluster: string | undefined): DesktopRecorder | undefined {
    const dir = this.#recordingsDir(desktop);
    try {
      return this.#recordings.start(dir, header, userCluster);
    } catch (error) {
      this.#log.error({ err: error, dir }, 'cannot record the desktop session');
      return undefined;
    }
  }

  #engineOrDefault(): RdpEngine {
    // Loaded lazily: the wasm is 4 MB and only agents serving desktops need it.
    this.#engine ??= new LazyIronRdpEngine();
    return this.#engine;
  }

  #emit(event: DesktopSessionEvent): void {
    this.#audit.push({
      type: event.type,
      identity: event.user.username ? { user: event.user.username.slice(0, 253), roles: event.user.roles.slice(0, 256).map((r) => r.slice(0, 253)) } : {},
      resource: { kind: 'desktop', name: event.desktop },
      outcome: event.outcome,
      ...(event.reason ? { reason: event.reason.slice(0, 1024) } : {}),
      fields: { ...(event.login ? { login: event.login } : {}), ...(event.sessionId ? { session_id: event.sessionId } : {}), ...event.fields },
    });
  }

  async #refreshCAs(): Promise<void> {
    try {
      await this.refreshCAs();
      this.#caFailures = 0;
    } catch (error) {
      this.#caFailures++;
      this.#caError = (error as Error).message;
      this.#log.warn({ err: error }, this.#userCaPems ? 'cannot refresh the user CAs; keeping the ones known' : 'cannot read the user CAs; desktop sessions are refused until they are known');
    }
    if (!this.#running) return;
    const every = this.#o.caRefreshMs ?? 5 * 60_000;
    const delay = this.#userCaPems ? every : Math.min(every, 30_000, 1_000 * 2 ** Math.min(this.#caFailures - 1, 5));
    this.#caTimer = setTimeout(() => void this.#refreshCAs(), delay);
    this.#caTimer.unref();
  }
}

/** The ironrdp-wasm engine, imported at the first connection. */
class LazyIronRdpEngine implements RdpEngine {
  #engine: Promise<RdpEngine> | undefined;

  async connect(options: Parameters<RdpEngine['connect']>[0]): ReturnType<RdpEngine['connect']> {
    this.#engine ??= import('../../../protocols/rdp/ironrdp-engine.ts').then((m) => new m.IronRdpEngine());
    return (await this.#engine).connect(options);
  }
}

function _target(desktop: DesktopConfig): DesktopTarget {
  const at = desktop.addr.lastIndexOf(':');
  return {
    name: desktop.name,
    host: desktop.addr.slice(0, at).replace(/^\[(.*)\]$/, '$1'),
    port: Number(desktop.addr.slice(at + 1)),
    labels: desktop.labels,
    ...(desktop.server_cert_sha256 ? { serverCertSha256: desktop.server_cert_sha256 } : {}),
  };
}
