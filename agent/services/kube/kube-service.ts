/**
 * The Kubernetes Service: each configured API server served through the tunnels as
 * `kube_cluster:NAME` and announced in the heartbeat.
 *
 * ```
 * proxy ──dial kube_cluster:NAME, user certificate──> ClusterAccess.identify (this cluster's
 *   user, or a trusted root's through the role map) ─> checkKube(labels) ─ deny: 403 + audit
 *   └ allow: kubeIdentity (kubernetes_users/groups, traits expanded) -> every request:
 *       client Authorization and every Impersonate-* header dropped;
 *       Impersonate-User (first allowed user, else the Postern user name) and
 *       Impersonate-Group (each allowed group) set; the service's own token or client
 *       certificate used; upgrades (exec, attach, port-forward) and watches stream;
 *       one `kube.request` audit event per request (verb, resource, namespace, name);
 *       an accepted exec/attach upgrade is a session: session.start/session.end audit
 *       events with its session id, and (unless every role says record_session: false)
 *       its output (websocket channels or SPDY streams) recorded as asciicast
 *       (kube-exec-session.ts) in `<data_dir>/recordings/kube`, uploaded to auth when
 *       it ends like SSH sessions
 * ```
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import type { AuthClient } from '../../../cluster/api/auth-client.ts';
import type { Logger } from '../../../cluster/common/logger.ts';
import { TunnelRejectedError, type IncomingDial } from '../../../protocols/tunnel/index.ts';
import type { ServiceHealth, SupervisedService } from '../../supervisor/service.ts';
import type { ServiceRegistry } from '../../tunnel/service-registry.ts';
import type { Caller, ClusterAccess } from '../access/cluster-access.ts';
import { HttpForwarder, type StreamCaller, type UpgradeTap } from '../app/http-forwarder.ts';
import { RecordingUploader } from '../recordings/recording-uploader.ts';
import { startRecording, type SessionRecording } from '../recordings/session-recorder.ts';
import { loadKubeCredentials, type KubeClusterConfig, type KubeCredentials } from './kube-credentials.ts';
import { ExecSession, recordedWebSocketProtocols, spdyExecTap, webSocketExecTap, type ExecSessionSummary } from './kube-exec-session.ts';
import { execRequestInfo, kubeRequestInfo, type ExecRequestInfo } from './kube-request.ts';

export interface AgentKubeOptions {
  clusters: readonly KubeClusterConfig[];
  access: ClusterAccess;
  services: ServiceRegistry;
  nodeName: string;
  logger: Logger;
  /** Auth, for uploading exec recordings; without it (or recordingsDir) nothing is recorded. */
  auth?: () => AuthClient;
  /** Where exec recordings are written until auth has them (`<data_dir>/recordings/kube`). */
  recordingsDir?: string;
  /** Retry period for recording uploads. Default 30 s. */
  recordingRetryMs?: number;
}

/** Who runs an exec, as decided when the stream was dialed. */
interface _SessionContext {
  cluster: string;
  identity: Caller;
  base: { identity: ReturnType<ClusterAccess['auditIdentity']>; resource: { kind: string; name: string } };
  kubeUser: string;
  kubeGroups: string[];
  record: boolean;
}

interface _Served {
  config: KubeClusterConfig;
  credentials: KubeCredentials;
  forwarder: HttpForwarder;
}

/** Serves the configured Kubernetes clusters through the tunnels. */
export class AgentKube implements SupervisedService {
  readonly name = 'kube';
  readonly #options: AgentKubeOptions;
  readonly #served = new Map<string, _Served>();
  readonly #removals: Array<() => void> = [];
  readonly #recording = new Set<string>();
  readonly #uploader: RecordingUploader | undefined;
  #requests = 0;
  #denied = 0;
  #sessions = 0;

  constructor(options: AgentKubeOptions) {
    this.#options = options;
    this.#uploader = options.recordingsDir && options.auth
      ? new RecordingUploader({ dir: options.recordingsDir, auth: options.auth, logger: options.logger, active: () => this.#recording, intervalMs: options.recordingRetryMs })
      : undefined;
  }

  /** Reads every cluster's credentials and registers it; a bad one fails the start with its reason. */
  async start(): Promise<void> {
    for (const config of this.#options.clusters) {
      if (this.#served.has(config.name)) continue;
      const credentials = await loadKubeCredentials(config);
      const forwarder = new HttpForwarder({
        upstream: credentials.server,
        rewriteHeaders: {},
        insecureSkipVerify: credentials.insecureSkipVerify,
        dropHeaders: (name) => name === 'authorization' || name.startsWith('impersonate-'),
        tls: { ca: credentials.ca, cert: credentials.cert, key: credentials.key },
        onError: (error, req) => this.#options.logger.warn({ cluster: config.name, err: error, method: req.method, url: req.url }, 'kube request failed'),
      });
      this.#served.set(config.name, { config, credentials, forwarder });
      this.#removals.push(this.#options.services.registerServed({ kind: 'kube_cluster', name: config.name, labels: config.labels, spec: { server: credentials.server.origin } }, (dial) => this.#serve(config.name, dial)));
    }
    this.#uploader?.start();
  }

  /** Uploads pending exec recordings now and waits for the pass (tests, shutdown). */
  async uploadRecordings(): Promise<void> {
    await this.#uploader?.uploadAll();
  }

  async stop(): Promise<void> {
    this.#uploader?.stop();
    await Promise.race([this.#options.access.flush(), new Promise((resolve) => setTimeout(resolve, 1_000).unref())]);
  }

  close(): void {
    for (const remove of this.#removals) remove();
    for (const served of this.#served.values()) served.forwarder.close();
  }

  health(): ServiceHealth {
    const pending = this.#uploader?.pending ? `; ${this.#uploader.pending} exec recording(s) waiting for upload` : '';
    return { ok: true, detail: `${this.#served.size} cluster(s); ${this.#requests} request(s), ${this.#denied} refused, ${this.#sessions} exec session(s)${pending}` };
  }

  async #serve(name: string, dial: IncomingDial): Promise<void> {
    const served = this.#served.get(name)!;
    const access = this.#options.access;
    const identified = await access.identify(dial.identity, dial.headers);
    if ('refused' in identified) {
      this.#denied++;
      // A malformed identity is the proxy's bug, not a decision about anyone: logged by the tunnel, not audited.
      if (identified.status !== 400) access.audit({ type: 'access.denied', identity: identified.who ?? {}, resource: { kind: 'kube_cluster', name }, outcome: 'deny', reason: identified.refused, fields: { node: this.#options.nodeName } }, identified.about);
      throw new TunnelRejectedError(identified.status, identified.refused, { service: dial.service });
    }
    const identity = identified.caller;
    const base = { identity: access.auditIdentity(identity), resource: { kind: 'kube_cluster', name } };
    const target = { name, labels: served.config.labels };
    const got = await this.#options.access.checker(identity);
    const decision = 'refused' in got ? { allowed: false, reason: got.refused } : got.checker.checkKube(target);
    const kube = 'checker' in got && decision.allowed ? got.checker.kubeIdentity(target) : { users: [], groups: [] };
    if (!decision.allowed) {
      this.#denied++;
      access.audit({ ...base, type: 'access.denied', outcome: 'deny', reason: decision.reason, fields: { node: this.#options.nodeName } }, identity);
      throw new TunnelRejectedError(403, decision.reason, { service: dial.service });
    }
    const user = kube.users[0] ?? identity.username;
    const record = 'checker' in got && got.checker.options().recordSession;
    const context: _SessionContext = { cluster: name, identity, base, kubeUser: user, kubeGroups: kube.groups, record };
    const caller: StreamCaller = {
      addr: identity.addr,
      decorate: (out: OutgoingHttpHeaders) => {
        out['impersonate-user'] = user;
        if (kube.groups.length > 0) out['impersonate-group'] = kube.groups;
        if (served.credentials.token) out.authorization = `Bearer ${served.credentials.token}`;
      },
      onRequest: (req) => {
        this.#requests++;
        const info = kubeRequestInfo(req.method ?? 'GET', req.url ?? '/');
        this.#options.access.audit({ ...base, type: 'kube.request', outcome: 'allow', fields: { ...info, path: (req.url ?? '').slice(0, 512), kube_user: user, kube_groups: kube.groups, node: this.#options.nodeName } }, identity);
      },
      onUpgrade: (req, res) => this.#session(context, req, res),
    };
    served.forwarder.serve(dial.stream, caller);
  }

  /**
   * An upgrade the API server accepted: exec and attach are sessions (audited with their
   * id, recorded when the roles ask and the stream's protocol is one this agent reads);
   * port-forward and the rest stay plain byte pipes with their request's audit event.
   */
  #session(context: _SessionContext, req: IncomingMessage, res: IncomingMessage): UpgradeTap | undefined {
    const exec = execRequestInfo(req.method ?? 'GET', req.url ?? '/');
    if (!exec) return undefined;
    const { access, logger, nodeName } = this.#options;
    const upgrade = String(res.headers.upgrade ?? '').toLowerCase();
    const spdy = upgrade === 'spdy/3.1';
    const subprotocol = String((spdy ? res.headers['x-stream-protocol-version'] : res.headers['sec-websocket-protocol']) ?? '');
    const protocol = `${spdy ? 'SPDY/3.1' : upgrade}+${subprotocol}`.slice(0, 80);
    const readable = spdy || (upgrade === 'websocket' && recordedWebSocketProtocols.has(subprotocol));
    const sessionId = randomUUID();
    this.#sessions++;
    const fields = {
      session_id: sessionId, kind: 'kube', subresource: exec.subresource, pod: exec.pod, ...(exec.container ? { container: exec.container } : {}),
      ...(exec.command !== undefined ? { command: exec.command } : {}), tty: exec.tty, protocol, kube_user: context.kubeUser, kube_groups: context.kubeGroups, node: nodeName,
    };
    let recording: SessionRecording | undefined;
    let unrecorded: string | undefined;
    if (!context.record) unrecorded = 'the roles say record_session: false';
    else if (!readable) unrecorded = `this agent does not read the ${JSON.stringify(protocol)} stream protocol`;
    else if (!this.#uploader) unrecorded = 'this agent has no recordings directory';
    else {
      try {
        recording = this.#startRecording(context, sessionId, exec);
      } catch (error) {
        unrecorded = `the recording could not start: ${(error as Error).message}`;
        logger.error({ err: error, session_id: sessionId }, 'cannot start the exec recording; the session runs unrecorded');
      }
    }
    if (context.record && unrecorded) logger.warn({ session_id: sessionId, protocol, reason: unrecorded }, 'a Kubernetes exec session is not recorded');
    access.audit({ ...context.base, type: 'session.start', outcome: 'success', fields: { ...fields, recorded: recording !== undefined, ...(unrecorded ? { unrecorded_reason: unrecorded } : {}) } }, context.identity);
    const session = new ExecSession({
      recording,
      onStopped: (reason) => {
        logger.warn({ session_id: sessionId, reason }, 'a Kubernetes exec session stopped being recorded');
        access.audit({ ...context.base, type: 'session.recording_stopped', outcome: 'failure', reason, fields: { session_id: sessionId, node: nodeName } }, context.identity);
      },
      onEnd: (summary: ExecSessionSummary) => {
        access.audit({
          ...context.base, type: 'session.end', outcome: 'success',
          fields: {
            ...fields, ...(recording ? { recording_id: sessionId } : {}), duration_ms: summary.durationMs,
            ...(summary.exitCode !== undefined ? { exit_code: summary.exitCode } : {}), ...(summary.failure ? { failure: summary.failure } : {}),
            ...(summary.stopped ? { recording_stopped: summary.stopped } : {}),
          },
        }, context.identity);
      },
    });
    if (readable) return spdy ? spdyExecTap(session) : webSocketExecTap(session);
    return { fromClient: () => {}, fromUpstream: () => {}, end: () => void session.end() };
  }

  /** Starts writing a session's recording to disk; uploaded once it ends. */
  #startRecording(context: _SessionContext, sessionId: string, exec: ExecRequestInfo): SessionRecording {
    const dir = this.#options.recordingsDir!;
    this.#recording.add(sessionId);
    try {
      return startRecording(
        dir,
        {
          session_id: sessionId,
          user: context.identity.username,
          ...(context.identity.remote ? { user_cluster: context.identity.cluster } : {}),
          login: context.kubeUser.slice(0, 253),
          node: context.cluster,
          kind: 'kube',
          pod: exec.pod,
          ...(exec.container ? { container: exec.container } : {}),
          command: exec.command ?? `attach ${exec.pod}`,
        },
        { TERM: exec.tty ? 'xterm' : 'dumb', SHELL: '' },
        (id) => {
          this.#recording.delete(id);
          this.#uploader?.trigger();
        },
      );
    } catch (error) {
      this.#recording.delete(sessionId);
      throw error;
    }
  }
}
