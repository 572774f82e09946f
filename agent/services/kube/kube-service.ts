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
 *       one `kube.request` audit event per request (verb, resource, namespace, name)
 * ```
 */
import type { OutgoingHttpHeaders } from 'node:http';
import type { Logger } from '../../../cluster/common/logger.ts';
import { TunnelRejectedError, type IncomingDial } from '../../../protocols/tunnel/index.ts';
import type { ServiceHealth, SupervisedService } from '../../supervisor/service.ts';
import type { ServiceRegistry } from '../../tunnel/service-registry.ts';
import type { ClusterAccess } from '../access/cluster-access.ts';
import { HttpForwarder, type StreamCaller } from '../app/http-forwarder.ts';
import { loadKubeCredentials, type KubeClusterConfig, type KubeCredentials } from './kube-credentials.ts';
import { kubeRequestInfo } from './kube-request.ts';

export interface AgentKubeOptions {
  clusters: readonly KubeClusterConfig[];
  access: ClusterAccess;
  services: ServiceRegistry;
  nodeName: string;
  logger: Logger;
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
  #requests = 0;
  #denied = 0;

  constructor(options: AgentKubeOptions) {
    this.#options = options;
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
  }

  async stop(): Promise<void> {
    await Promise.race([this.#options.access.flush(), new Promise((resolve) => setTimeout(resolve, 1_000).unref())]);
  }

  close(): void {
    for (const remove of this.#removals) remove();
    for (const served of this.#served.values()) served.forwarder.close();
  }

  health(): ServiceHealth {
    return { ok: true, detail: `${this.#served.size} cluster(s); ${this.#requests} request(s), ${this.#denied} refused` };
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
    };
    served.forwarder.serve(dial.stream, caller);
  }
}
