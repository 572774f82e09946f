/**
 * The Application Service: HTTP and TCP apps from `agent.apps[]`, each served through
 * the tunnels as `app:NAME` and announced in the heartbeat (kind `app`).
 *
 * ```
 * proxy ──dial app:NAME, identity──> ClusterAccess.identify (certificate of this cluster or a
 *   trusted root through the role map, or an app session's routed identity) ─ refused: 4xx + audit
 *   ─ checkApp(app labels) ─ deny: 403 + access.denied audit
 *                          └ allow: app.session.start audit, then
 *                               http(s):  AppStreamForwarder (JWT assertion on every request of the stream)
 *                               tcp:      raw byte pipe to host:port
 * ```
 */
import net from 'node:net';
import type { Logger } from '../../../cluster/common/logger.ts';
import type { PosternConfig } from '../../../cluster/common/config.ts';
import { pipeBidirectional, TunnelRejectedError, type IncomingDial } from '../../../protocols/tunnel/index.ts';
import type { ServiceHealth, SupervisedService } from '../../supervisor/service.ts';
import type { ServiceRegistry } from '../../tunnel/service-registry.ts';
import type { Caller, ClusterAccess } from '../access/cluster-access.ts';
import { AppStreamForwarder } from './app-stream-forwarder.ts';

export type AppConfig = NonNullable<PosternConfig['agent']>['apps'][number];

export interface AgentAppsOptions {
  apps: readonly AppConfig[];
  access: ClusterAccess;
  services: ServiceRegistry;
  nodeName: string;
  logger: Logger;
}

/** Serves the configured apps through the tunnels. */
export class AgentApps implements SupervisedService {
  readonly name = 'apps';
  readonly #options: AgentAppsOptions;
  readonly #forwarders = new Map<string, AppStreamForwarder>();
  readonly #removals: Array<() => void> = [];
  #served = 0;
  #denied = 0;

  constructor(options: AgentAppsOptions) {
    this.#options = options;
    for (const app of options.apps) this.#register(app);
  }

  async start(): Promise<void> {}

  async stop(): Promise<void> {
    await Promise.race([this.#options.access.flush(), new Promise((resolve) => setTimeout(resolve, 1_000).unref())]);
  }

  /** Unregisters every app and closes the forwarders (agent shutdown). */
  close(): void {
    for (const remove of this.#removals) remove();
    for (const forwarder of this.#forwarders.values()) forwarder.close();
  }

  health(): ServiceHealth {
    return { ok: true, detail: `${this.#options.apps.length} app(s); ${this.#served} stream(s) served, ${this.#denied} refused` };
  }

  #register(app: AppConfig): void {
    const uri = new URL(app.uri);
    const protocol = uri.protocol === 'tcp:' ? 'tcp' : 'http';
    if (protocol === 'http') {
      this.#forwarders.set(app.name, new AppStreamForwarder({
        upstream: uri,
        rewriteHeaders: app.rewrite.headers,
        insecureSkipVerify: app.insecure_skip_verify,
        onError: (error, req) => this.#options.logger.warn({ app: app.name, err: error, method: req.method, url: req.url }, 'app request failed'),
      }));
    }
    const spec = { protocol, uri: `${uri.protocol}//${uri.host}`, ...(app.public_addr ? { public_addr: app.public_addr } : {}) };
    this.#removals.push(this.#options.services.registerServed({ kind: 'app', name: app.name, labels: app.labels, spec }, (dial) => this.#serve(app, dial)));
  }

  async #serve(app: AppConfig, dial: IncomingDial): Promise<void> {
    const access = this.#options.access;
    const identified = await access.identify(dial.identity, dial.headers);
    if ('refused' in identified) {
      this.#denied++;
      // A refusal without a trusted identity is still a decision: audited without a user.
      // A malformed identity is the proxy's bug, not a decision about anyone: logged by the tunnel, not audited.
      if (identified.status !== 400) access.audit({ type: 'access.denied', identity: identified.who ?? {}, resource: { kind: 'app', name: app.name }, outcome: 'deny', reason: identified.refused, fields: { app_uri: app.uri, node: this.#options.nodeName } }, identified.about);
      throw new TunnelRejectedError(identified.status, identified.refused, { service: dial.service });
    }
    const identity = identified.caller;
    const decision = await this.#decide(app, identity);
    const base = {
      identity: access.auditIdentity(identity),
      resource: { kind: 'app', name: app.name },
      fields: { app_uri: app.uri, via: identity.via, node: this.#options.nodeName },
    };
    if (!decision.allowed) {
      this.#denied++;
      access.audit({ ...base, type: 'access.denied', outcome: 'deny', reason: decision.reason }, identity);
      this.#options.logger.info({ app: app.name, user: identity.username, cluster: identity.cluster, reason: decision.reason }, 'app access refused');
      throw new TunnelRejectedError(403, decision.reason, { service: dial.service });
    }
    const uri = new URL(app.uri);
    if (uri.protocol === 'tcp:') return this.#pipeTcp(app, uri, dial, base, identity);
    let jwt: string;
    try {
      jwt = await this.#options.access.appToken(identity, app.uri);
    } catch (error) {
      throw new TunnelRejectedError(503, `cannot get a JWT assertion from the auth server: ${(error as Error).message}; try again`, { service: dial.service });
    }
    this.#served++;
    this.#options.access.audit({ ...base, type: 'app.session.start', outcome: 'allow', reason: decision.reason }, identity);
    this.#forwarders.get(app.name)!.serve(dial.stream, { jwt, addr: identity.addr });
  }

  async #decide(app: AppConfig, identity: Caller): Promise<{ allowed: boolean; reason: string }> {
    const got = await this.#options.access.checker(identity);
    if ('refused' in got) return { allowed: false, reason: got.refused };
    return got.checker.checkApp({ name: app.name, labels: app.labels });
  }

  async #pipeTcp(app: AppConfig, uri: URL, dial: IncomingDial, base: { identity: { user?: string; roles?: string[]; addr?: string }; resource: { kind: string; name: string }; fields: Record<string, unknown> }, caller: Caller): Promise<void> {
    const upstream = net.connect({ host: uri.hostname, port: Number(uri.port), noDelay: true });
    await new Promise<void>((resolve, reject) => {
      upstream.once('connect', resolve);
      upstream.once('error', (error) => reject(new TunnelRejectedError(502, `app ${app.name}: cannot connect to ${uri.host}: ${error.message}`, { service: dial.service })));
    });
    this.#served++;
    this.#options.access.audit({ ...base, type: 'app.session.start', outcome: 'allow' }, caller);
    const started = Date.now();
    void pipeBidirectional(dial.stream, upstream).then((result) => {
      this.#options.access.audit({ ...base, type: 'app.session.end', outcome: 'success', fields: { ...base.fields, bytes_in: result.bytesAToB, bytes_out: result.bytesBToA, duration_ms: Date.now() - started } }, caller);
    });
  }
}
