/**
 * The agent's SSH service wired to the cluster: the SshService (ssh-service.ts) with
 *
 * - the host key and certificate from the agent identity, swapped on renewal;
 * - the trusted user CAs from auth (`exportAuthorities({kind:'user'})`), refreshed
 *   every few minutes; until they are known every login is refused (fail closed);
 * - `authorize`: the certificate must come from this cluster, then the roles it names
 *   are read through the agent's access module (ClusterAccess: cached ~10 s; a stale
 *   copy is used for a while when auth is unreachable, then logins are refused) and
 *   `AccessChecker.checkNode` decides with this node's current labels;
 * - root users (trusted clusters, trusted-roots.ts): a certificate from a trusted root's
 *   user CA gets the leaf roles the role map gives its root roles, nothing else;
 * - `audit`: every event goes through ClusterAccess (batched, retried in the
 *   background), so a session never waits for (or fails on) the audit log.
 *
 * SSH certificates are checked here (SSH CA keys); X.509 identities of the other
 * protocol services are checked in ClusterAccess. Both use the same TrustedRoots.
 *
 * Runs under the ServiceSupervisor as `ssh`; the agent registers `serviceHandler` as
 * the tunnel service `ssh`.
 */
import type { AuthClient } from '../../../cluster/api/auth-client.ts';
import type { IdentityFile } from '../../../cluster/api/identity-file.ts';
import { systemClock, type Clock } from '../../../cluster/common/clock.ts';
import type { Logger } from '../../../cluster/common/logger.ts';
import { AccessChecker } from '../../../cluster/access/roles/access-checker.ts';
import type { Role } from '../../../cluster/access/roles/role.ts';
import { parseAuthorizedKey } from '../../../protocols/ssh/public-key.ts';
import type { AgentIdentity } from '../../identity/agent-identity.ts';
import type { ServiceHealth, SupervisedService } from '../../supervisor/service.ts';
import type { ServiceHandler } from '../../tunnel/service-registry.ts';
import { timingSafeEqual } from 'node:crypto';
import type { TrustedRoots, RemoteRoles } from '../../trust/trusted-roots.ts';
import { ClusterAccess } from '../access/cluster-access.ts';
import { RecordingUploader } from '../recordings/recording-uploader.ts';
import { startRecording, type SessionRecording } from '../recordings/session-recorder.ts';
import { SshService, type SshRecordingRequest, type SshAuditEvent, type SshAuthorizationDecision, type SshAuthorizationRequest } from './ssh-service.ts';

export interface AgentSshOptions {
  identity: AgentIdentity;
  auth: () => AuthClient;
  nodeName: string;
  /** This node's labels now (static and command labels). */
  labels: () => Record<string, string>;
  logger: Logger;
  clock?: Clock;
  /** How often the user CAs are re-read. Default 5 min (1 s doubling to 30 s while unknown). */
  caRefreshMs?: number;
  /** How long roles read from auth are used without asking again. Default 10 s. */
  rolesTtlMs?: number;
  /** How long a stale copy of the roles serves when auth cannot be reached. Default 5 min. */
  rolesMaxStaleMs?: number;
  /** Audit events kept while auth is unreachable; older ones are dropped beyond it. Default 10,000. */
  auditBufferSize?: number;
  /** The agent's shared access module (roles, audit, trusted roots); default one of its own. */
  access?: ClusterAccess;
  /** Where session recordings are written until auth has them (`<data_dir>/recordings`); without it nothing is recorded. */
  recordingsDir?: string;
  /** Retry period for recording uploads. Default 30 s. */
  recordingRetryMs?: number;
}

/** What auth's emitAudit takes (audit-event.ts, without id, time and cluster). */
export interface EmittedAuditEvent {
  type: string;
  identity: { user?: string; roles?: string[]; addr?: string };
  resource: { kind: 'node'; name: string };
  outcome: 'allow' | 'deny' | 'success' | 'failure';
  reason?: string;
  fields: Record<string, unknown>;
}

const callDeadline = { deadlineMs: 5_000 };

/** Turns one SshService event into the audit event auth stores. */
export function toAuditEvent(event: SshAuditEvent, nodeName: string): EmittedAuditEvent {
  const type = {
    'ssh.auth.allow': 'ssh.login',
    'ssh.auth.deny': 'access.denied',
    'ssh.request.deny': 'access.denied',
    'ssh.session.start': 'session.start',
    'ssh.session.end': 'session.end',
    'ssh.exec': 'session.exec',
    'ssh.sftp': 'session.sftp',
    'ssh.port_forward': 'session.port_forward',
    'ssh.agent_forward': 'session.agent_forward',
  }[event.event];
  const outcome = event.event === 'ssh.auth.allow' ? 'allow' : event.event.endsWith('.deny') ? 'deny' : 'success';
  const fields: Record<string, unknown> = {
    ssh_event: event.event,
    login: event.login,
    connection_id: event.connectionId,
    agent_time: event.time.toISOString(),
  };
  for (const key of ['sessionId', 'recordingId', 'keyId', 'kind', 'command', 'target', 'exitCode', 'signal', 'durationMs', 'userCluster'] as const) {
    if (event[key] !== undefined) fields[key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = event[key];
  }
  const user = event.user ? event.user.slice(0, 253) : undefined;
  return {
    type,
    identity: {
      ...(user ? { user } : {}),
      ...(event.roles ? { roles: event.roles.slice(0, 256).map((r) => r.slice(0, 253)) } : {}),
      ...(event.remoteAddress ? { addr: event.remoteAddress.slice(0, 64) } : {}),
    },
    resource: { kind: 'node', name: nodeName.slice(0, 1024) || 'unknown' },
    outcome,
    ...(event.reason ? { reason: event.reason.slice(0, 1024) } : {}),
    fields,
  };
}

/** The SSH service of an agent, with CAs, RBAC and audit from auth. */
export class AgentSsh implements SupervisedService {
  readonly name = 'ssh';
  readonly service: SshService;
  readonly #options: AgentSshOptions;
  readonly #clock: Clock;
  readonly #log: Logger;
  #userCAs: Buffer[] | undefined;
  readonly #roots: TrustedRoots;
  #caError: string | undefined;
  #caTimer: NodeJS.Timeout | undefined;
  #rootsTimer: NodeJS.Timeout | undefined;
  #caFailures = 0;
  readonly #access: ClusterAccess;
  #running = false;
  readonly #recording = new Set<string>();
  readonly #uploader: RecordingUploader | undefined;
  readonly #onIdentity = (next: IdentityFile): void => {
    try {
      this.service.updateHostCertificate(next.ssh_key_pem ?? '', next.ssh_cert ?? '');
      this.#log.info('SSH service presents the renewed host certificate');
    } catch (error) {
      this.#log.error({ err: error }, 'the renewed SSH host certificate cannot be used; keeping the previous one');
    }
  };

  constructor(options: AgentSshOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#log = options.logger;
    this.#access = options.access ?? new ClusterAccess({
      auth: options.auth, cluster: () => options.identity.current.cluster, logger: options.logger, now: () => this.#clock.now(),
      rolesTtlMs: options.rolesTtlMs, rolesMaxStaleMs: options.rolesMaxStaleMs, auditBufferSize: options.auditBufferSize,
    });
    this.#roots = this.#access.roots;
    const current = options.identity.current;
    this.service = new SshService({
      hostKeyPem: current.ssh_key_pem ?? '',
      hostCertificate: current.ssh_cert ?? '',
      trustedUserCAs: () => [...(this.#userCAs ?? []), ...this.#roots.knownKeys()],
      authorize: (request) => this.authorize(request),
      nodeLabels: options.labels,
      audit: (event) => this.#access.audit(toAuditEvent(event, options.nodeName)),
      logger: options.logger,
      now: () => this.#clock.now(),
      record: (request) => this.#record(request),
    });
    const dir = options.recordingsDir;
    this.#uploader = dir
      ? new RecordingUploader({ dir, auth: options.auth, logger: options.logger, active: () => this.#recording, intervalMs: options.recordingRetryMs })
      : undefined;
  }

  /** Starts writing a session's recording to disk; uploaded once it ends. */
  #record(request: SshRecordingRequest): SessionRecording | undefined {
    const dir = this.#options.recordingsDir;
    if (!dir) return undefined;
    this.#recording.add(request.sessionId);
    try {
      return startRecording(
        dir,
        {
          session_id: request.sessionId,
          connection_id: request.connectionId,
          user: request.user,
          ...(_remoteCluster(request.userCluster, this.#options.identity.current.cluster)),
          login: request.login,
          node: this.#options.nodeName,
          kind: request.kind,
          ...(request.command !== undefined ? { command: request.command } : {}),
          width: request.cols,
          height: request.rows,
        },
        { TERM: request.term, SHELL: request.shell },
        (id) => {
          this.#recording.delete(id);
          this.#uploader?.trigger();
        },
      );
    } catch (error) {
      this.#recording.delete(request.sessionId);
      throw error;
    }
  }

  /** Uploads pending recordings now and waits for the pass (tests, shutdown). */
  async uploadRecordings(): Promise<void> {
    await this.#uploader?.uploadAll();
  }

  /** The tunnel handler for the `ssh` service. */
  get serviceHandler(): ServiceHandler {
    return this.service.serviceHandler;
  }

  async start(): Promise<void> {
    this.#running = true;
    this.#options.identity.on('change', this.#onIdentity);
    // Not awaited: a cluster briefly out of reach must not keep the agent from starting; logins are refused until the CAs are known.
    void this.#refreshCAs();
    // Trusted roots change without notice (enable/disable, a new root): keep their keys fresh for the first
    // check. Every login re-reads them (2 s cache), so a stale copy only delays a newly trusted root.
    this.#rootsTimer = setInterval(() => void this.#roots.get().catch(() => undefined), 5_000);
    this.#rootsTimer.unref();
    this.#uploader?.start();
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#options.identity.off('change', this.#onIdentity);
    clearTimeout(this.#caTimer);
    clearInterval(this.#rootsTimer);
    this.#uploader?.stop();
    this.service.close();
    // One last, short attempt to hand over what is buffered.
    await Promise.race([this.#access.flush(), new Promise((resolve) => setTimeout(resolve, 1_000).unref())]);
  }

  health(): ServiceHealth {
    const parts = [
      this.#userCAs ? `${this.#userCAs.length} user CA key(s)` : `user CAs unknown (${this.#caError ?? 'not read yet'}); logins are refused`,
      this.#access.describe(),
      ...(this.#uploader?.pending ? [`${this.#uploader.pending} session recording(s) waiting for upload`] : []),
    ];
    // Healthy either way: the agent still serves its other parts, and SSH fails closed.
    return { ok: true, detail: parts.join('; ') };
  }

  /** Reads the user CA keys now; keeps the previous ones if auth cannot be reached. */
  async refreshCAs(): Promise<void> {
    const { authorities } = await this.#options.auth().exportAuthorities({ kind: 'user' }, callDeadline);
    const cluster = this.#options.identity.current.cluster;
    const keys: Buffer[] = [];
    for (const authority of authorities) {
      if (authority.kind !== 'user' || (cluster && authority.cluster && authority.cluster !== cluster)) continue;
      for (const line of authority.sshPublicKey.split('\n')) {
        if (!line.trim()) continue;
        keys.push(Buffer.from(parseAuthorizedKey(line).publicKey.blob));
      }
    }
    if (keys.length === 0) throw new Error('auth exported no user CA key');
    this.#userCAs = keys;
    // The roots' keys too, so a root user's certificate passes the first check; authorize() re-checks freshly.
    await this.#roots.get().catch((error: unknown) => this.#log.warn({ err: error }, 'cannot read the trusted roots; root users are refused until they are known'));
    this.#caError = undefined;
  }

  async #refreshCAs(): Promise<void> {
    try {
      await this.refreshCAs();
      this.#caFailures = 0;
    } catch (error) {
      this.#caFailures++;
      this.#caError = (error as Error).message;
      this.#log.warn({ err: error }, this.#userCAs ? 'cannot refresh the user CAs; keeping the ones known' : 'cannot read the user CAs; SSH logins are refused until they are known');
    }
    if (!this.#running) return;
    const every = this.#options.caRefreshMs ?? 5 * 60_000;
    // While none are known, retry soon (1 s doubling to 30 s): the first call may race the first tunnel.
    const delay = this.#userCAs ? every : Math.min(every, 30_000, 1_000 * 2 ** Math.min(this.#caFailures - 1, 5));
    this.#caTimer = setTimeout(() => void this.#refreshCAs(), delay);
    this.#caTimer.unref();
  }

  /** The RBAC decision for one login. */
  async authorize(request: SshAuthorizationRequest): Promise<SshAuthorizationDecision> {
    const cluster = this.#options.identity.current.cluster;
    const signer = request.certificate.signatureKey.blob;
    let roleNames = request.identity.roles;
    if (request.identity.cluster === cluster) {
      if (!_hasKey(this.#userCAs ?? [], signer)) {
        return { allowed: false, reason: `the certificate claims cluster "${cluster}" but was not signed by its user CA; refusing it` };
      }
    } else {
      const mapped = await this.#mapRemote(request);
      if (!mapped.allowed) return mapped;
      roleNames = mapped.roles;
    }
    let found: { roles: Role[]; missing: string[] };
    try {
      found = await this.#access.roles(roleNames);
    } catch (error) {
      this.#log.warn({ err: error }, 'cannot read roles from auth');
      return { allowed: false, reason: `this node cannot read the roles from the auth server (${(error as Error).message}); try again later` };
    }
    const { roles, missing } = found;
    const checker = new AccessChecker(roles, request.identity.traits);
    const decision = checker.checkNode({ name: this.#options.nodeName, labels: request.nodeLabels, login: request.login });
    if (!decision.allowed && missing.length > 0) {
      return { allowed: false, reason: `${decision.reason} (roles not found: ${missing.join(', ')})` };
    }
    if (!decision.allowed) return { allowed: false, reason: decision.reason };
    const options = checker.options();
    return {
      allowed: true,
      reason: decision.reason,
      recordSession: options.recordSession,
      permitPortForwarding: options.permitPortForwarding,
      permitAgentForwarding: options.permitAgentForwarding,
    };
  }

  /** A root user's leaf roles through the role map, or the refusal; the certificate must come from that root's CA. */
  async #mapRemote(request: SshAuthorizationRequest): Promise<RemoteRoles> {
    const { username, cluster: root, roles } = request.identity;
    const keys = (await this.#roots.get().catch(() => undefined))?.get(root)?.userCaKeys ?? [];
    if (keys.length > 0 && !_hasKey(keys, request.certificate.signatureKey.blob)) {
      return { allowed: false, reason: `the certificate claims cluster "${root}" but was not signed by that cluster's user CA; refusing it` };
    }
    // No keys: not trusted, disabled or unreadable; remoteRoles says which.
    return this.#roots.remoteRoles(root, username, roles);
  }
}

function _hasKey(keys: readonly Buffer[], blob: Buffer): boolean {
  let found = false;
  for (const key of keys) found = (key.length === blob.length && timingSafeEqual(key, blob)) || found;
  return found;
}

/** `user_cluster` for a trusted root's user (their recordings are listed for the root, not as this cluster's user of that name). */
function _remoteCluster(userCluster: string | undefined, local: string | undefined): { user_cluster?: string } {
  return userCluster && local && userCluster !== local ? { user_cluster: userCluster } : {};
}
