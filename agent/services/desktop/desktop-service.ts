/**
 * The agent's Desktop Service: every `agent.desktops[]` entry served through the
 * tunnels as `desktop:NAME` and announced in the heartbeat (kind desktop, its labels,
 * spec {addr}).
 *
 * ```
 * proxy ── dial desktop:NAME, postern-identity = base64(user X.509 PEM) ──> handler
 *   ClusterAccess.identify: a user certificate of this cluster, or of a trusted root
 *   (roles through the role map)                                                      401/403 + access.denied
 *   roles from auth (ClusterAccess): desktop_labels must match this desktop           403 + access.denied
 *   accept -> desktop-session.ts: connect{login} -> checkDesktop(login) -> RDP engine
 * ```
 *
 * Passwords are read from `password_file` / `password_env` when a session starts (so
 * a rotated file applies at once) and never logged. Sessions are recorded to
 * `recordings_dir` (default <data_dir>/recordings/desktop/<session id>.pdr) unless every
 * role of the user says `record_session: false`. Audit events go to auth through the
 * agent's ClusterAccess.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { AuthClient } from '../../../cluster/api/auth-client.ts';
import type { AccessChecker } from '../../../cluster/access/roles/access-checker.ts';
import type { PosternConfig } from '../../../cluster/common/config.ts';
import type { Logger } from '../../../cluster/common/logger.ts';
import { PosternError } from '../../../protocols/errors.ts';
import { TunnelRejectedError, type IncomingDial } from '../../../protocols/tunnel/index.ts';
import type { DesktopRecorder } from '../../../protocols/rdp/desktop-recording.ts';
import type { RdpCredentials, RdpEngine } from '../../../protocols/rdp/rdp-engine.ts';
import type { AgentIdentity } from '../../identity/agent-identity.ts';
import type { ServiceHealth, SupervisedService } from '../../supervisor/service.ts';
import type { ServiceRegistry } from '../../tunnel/service-registry.ts';
import { ClusterAccess, type Caller } from '../access/cluster-access.ts';
import { DesktopRecordings } from './desktop-recordings.ts';
import { serveDesktopSession, type DesktopSessionEvent, type DesktopTarget } from './desktop-session.ts';

export type DesktopConfig = NonNullable<PosternConfig['agent']>['desktops'][number];

export interface AgentDesktopsOptions {
  identity: AgentIdentity;
  auth: () => AuthClient;
  /** The agent's shared access module; default one of its own. */
  access?: ClusterAccess;
  desktops: readonly DesktopConfig[];
  dataDir: string;
  logger: Logger;
  /** The RDP client; default ironrdp-wasm (loaded at the first session). */
  engine?: RdpEngine;
  env?: NodeJS.ProcessEnv;
  /** How often recordings not yet uploaded are retried. Default 30 s. */
  recordingRetryMs?: number;
}

export class AgentDesktops implements SupervisedService {
  readonly name = 'desktop';
  readonly #o: AgentDesktopsOptions;
  readonly #log: Logger;
  readonly #access: ClusterAccess;
  readonly #recordings: DesktopRecordings;
  #engine: RdpEngine | undefined;
  readonly #streams = new Set<IncomingDial['stream']>();

  constructor(options: AgentDesktopsOptions) {
    this.#o = options;
    this.#log = options.logger;
    this.#engine = options.engine;
    this.#access = options.access ?? new ClusterAccess({ auth: options.auth, cluster: () => options.identity.current.cluster, logger: options.logger });
    this.#recordings = new DesktopRecordings({ auth: options.auth, logger: options.logger, intervalMs: options.recordingRetryMs });
    for (const desktop of options.desktops) this.#recordings.watch(this.#recordingsDir(desktop));
  }

  /** Registers every desktop with the tunnel registry; returns the removal. */
  register(services: ServiceRegistry): () => void {
    const removals = this.#o.desktops.map((desktop) =>
      services.registerServed({ kind: 'desktop', name: desktop.name, labels: desktop.labels, spec: { addr: desktop.addr, protocol: 'rdp' } }, (dial) => this.handle(desktop, dial)));
    return () => removals.forEach((remove) => remove());
  }

  async start(): Promise<void> {
    void this.#access.warm();
    this.#recordings.startUploads();
  }

  async stop(): Promise<void> {
    // Sessions end with the service: their RDP connections close and their end events are queued first.
    for (const stream of this.#streams) stream.destroy();
    await new Promise((resolve) => setImmediate(resolve));
    this.#recordings.stopUploads();
    await Promise.race([this.#access.flush(), new Promise((resolve) => setTimeout(resolve, 1_000).unref())]);
  }

  health(): ServiceHealth {
    const parts = [
      `${this.#o.desktops.length} desktop(s), ${this.#streams.size} session(s)`,
      this.#access.describe(),
      ...(this.#recordings.pending ? [`${this.#recordings.pending} desktop recording(s) waiting for upload`] : []),
    ];
    return { ok: true, detail: parts.join('; ') };
  }

  /** Decides on one dial to `desktop`, then serves it in the background. */
  async handle(desktop: DesktopConfig, dial: IncomingDial): Promise<void> {
    const identified = await this.#access.identify(dial.identity, dial.headers);
    if ('refused' in identified) {
      // A refusal without a trusted identity is still a decision: audited (without a user when none is known).
      if (identified.status !== 503) {
        this.#emit({ type: 'access.denied', outcome: 'deny', user: { username: identified.who?.user ?? '', roles: identified.who?.roles ?? [] }, desktop: desktop.name, sessionId: '', reason: identified.refused }, identified.about);
      }
      throw new TunnelRejectedError(identified.status, identified.refused);
    }
    const identity = identified.caller;
    if (!identity.certificate) throw new TunnelRejectedError(401, 'the dial carries no user certificate; desktops are reached with a user certificate forwarded by the proxy');
    const target = _target(desktop);
    const user = { username: identity.username, roles: identity.roles };
    let checker: AccessChecker;
    try {
      checker = await this.#checker(identity);
    } catch (error) {
      throw new TunnelRejectedError(503, `this agent cannot read the roles from the auth server (${(error as Error).message}); try again later`);
    }
    const visible = checker.checkVisible('desktop', { name: desktop.name, labels: desktop.labels });
    if (!visible.allowed) {
      this.#emit({ type: 'access.denied', outcome: 'deny', user, desktop: desktop.name, sessionId: '', reason: visible.reason });
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
      audit: (event) => this.#emit(event, identity),
      record: record ? (header) => this.#recorder(desktop, header, identity.remote ? identity.cluster : undefined) : undefined,
      logger: this.#log,
    }).finally(() => this.#streams.delete(dial.stream));
  }

  async #checker(identity: Caller): Promise<AccessChecker> {
    const got = await this.#access.checker(identity);
    if ('refused' in got) throw new Error(got.refused);
    return got.checker;
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

  #emit(event: DesktopSessionEvent, caller?: Pick<Caller, 'remote' | 'cluster'>): void {
    this.#access.audit({
      type: event.type,
      identity: event.user.username ? { user: event.user.username.slice(0, 253), roles: event.user.roles.slice(0, 256).map((r) => r.slice(0, 253)) } : {},
      resource: { kind: 'desktop', name: event.desktop },
      outcome: event.outcome,
      ...(event.reason ? { reason: event.reason.slice(0, 1024) } : {}),
      fields: { ...(event.login ? { login: event.login } : {}), ...(event.sessionId ? { session_id: event.sessionId } : {}), ...event.fields },
    }, caller);
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
