/**
 * The leaf proxy's tunnels to the roots that its cluster trusts, and what it serves
 * through them.
 *
 * ```
 * leaf auth: trusted_cluster "root" (enabled) + the root's CAs as remote CAs
 *   -> leaf proxy, every refreshMs: a RootMesh per enabled root
 *        TLS to root proxy_addr (ALPN postern-tunnel, the leaf proxy's host cert,
 *        the root's host CA; the peer must be a root proxy) -> AgentTunnel (HTTP/2 server)
 *        + GET /v1/discovery on the root -> a link to every root proxy (mesh), back-off, keepalive
 *
 * root proxy ── stream: service, postern-host, postern-identity (root user cert) ──> leaf proxy
 *   -> the identity must chain to the root's user CA and name the root
 *   -> `list:KIND`: the leaf's resources of that kind, as JSON
 *   -> `recordings:list`, `recording:ID`: that user's recordings here (root-user-recordings.ts)
 *   -> otherwise dialer.dial({host, service, identity}) in this cluster (no postern-host:
 *      a served resource, db:/app:/kube_cluster:/desktop:, whose host this proxy picks);
 *      the agent decides (role map, roles, logins) and audits
 * ```
 *
 * Disabling the trusted_cluster removes the root's CAs from the leaf's trust: the mesh
 * for that root stops at the next refresh, and identities of that root are refused.
 */
import { PosternError } from '../../protocols/errors.ts';
import { ALPN } from '../../protocols/mux/alpn.ts';
import { AgentTunnel, TunnelLink, TunnelRejectedError, connectAgentSocket, pipeBidirectional, type IncomingDial, type LinkTunnel } from '../../protocols/tunnel/index.ts';
import { callWebApi, parseProxyAddress } from '../../cluster/api/web-client.ts';
import { verifyCertificateChain } from '../../cluster/auth/pki/verify-certificate.ts';
import type { HostIdentity, UserIdentity } from '../../cluster/auth/pki/identity.ts';
import { ServiceDialError } from '../../cluster/proxy/errors.ts';
import type { ProxyExtension, ProxyExtensionContext } from '../../cluster/proxy/proxy-extension.ts';
import type { Discovery } from '../../cluster/proxy/web-routes.ts';
import { isRecordingService, serveRootUserRecordings } from './root-user-recordings.ts';

/** Header naming the target host on a stream from the root (root/tunnel/leaf-tunnels.ts). */
const HEADER_HOST = 'postern-host';
const LIST_PREFIX = 'list:';
/** The root proxy pulls audit events about its users with this service. */
const AUDIT_PULL_SERVICE = 'audit:pull';
const HEADER_AUDIT_FROM = 'postern-audit-from';
const AUDIT_BATCH = 500;
/** Kinds a root user may list in this leaf (the leaf's agents still decide access). */
const listableKinds = new Set(['node', 'db', 'app', 'kube_cluster', 'desktop']);

interface _Root {
  name: string;
  proxyAddr: string;
  userCaPems: string[];
  hostCaPems: string[];
}

type _Peer = { hostId: string };

/** The leaf side of trust in a proxy; see the file comment. */
export class RootTunnels implements ProxyExtension {
  readonly #refreshMs: number;
  readonly #discoveryMs: number;
  #ctx: ProxyExtensionContext | undefined;
  #roots = new Map<string, _Root>();
  readonly #meshes = new Map<string, RootMesh>();
  #timer: NodeJS.Timeout | undefined;

  constructor(options: { refreshMs?: number; discoveryMs?: number } = {}) {
    this.#refreshMs = options.refreshMs ?? 2_000;
    this.#discoveryMs = options.discoveryMs ?? 30_000;
  }

  async start(context: ProxyExtensionContext): Promise<void> {
    this.#ctx = context;
    await this.refresh().catch(() => undefined);
    const loop = (): void => {
      this.#timer = setTimeout(() => void this.refresh().catch(() => undefined).finally(loop), this.#refreshMs);
      this.#timer.unref();
    };
    loop();
  }

  async close(): Promise<void> {
    clearTimeout(this.#timer);
    await Promise.all([...this.#meshes.values()].map((mesh) => mesh.stop()));
    this.#meshes.clear();
  }

  /** Link status per root, for diagnostics and tests. */
  status(): Record<string, Array<{ address: string; state: string }>> {
    return Object.fromEntries([...this.#meshes].map(([name, mesh]) => [name, mesh.status()]));
  }

  /** Re-reads the trusted roots and their CAs; starts, re-points or stops meshes. */
  async refresh(): Promise<void> {
    const ctx = this.#context();
    const auth = ctx.auth();
    let roots: Map<string, _Root>;
    try {
      const [{ resourcesJson }, { authorities }] = await Promise.all([
        auth.getResources({ kind: 'trusted_cluster', name: '' }, { deadlineMs: 5_000 }),
        auth.exportAuthorities({ kind: '', includeRemote: true }, { deadlineMs: 5_000 }),
      ]);
      const local = ctx.clusterName();
      const pems = (cluster: string, kind: string): string[] =>
        authorities.filter((a) => a.cluster === cluster && a.cluster !== local && a.kind === kind).flatMap((a) => _splitPems(a.tlsCertPem));
      roots = new Map();
      for (const item of JSON.parse(resourcesJson) as Array<{ metadata: { name: string }; spec: { enabled: boolean; proxy_addr: string } }>) {
        const name = item.metadata.name;
        const root: _Root = { name, proxyAddr: item.spec.proxy_addr, userCaPems: pems(name, 'user'), hostCaPems: pems(name, 'host') };
        // Disabled trust has no remote CAs: nothing to dial, nobody to accept.
        if (item.spec.enabled && root.userCaPems.length > 0 && root.hostCaPems.length > 0) roots.set(name, root);
      }
    } catch (error) {
      ctx.logger.warn({ err: error }, 'cannot read trusted clusters from auth; keeping the current tunnels');
      return;
    }
    this.#roots = roots;
    for (const [name, mesh] of this.#meshes) {
      const root = roots.get(name);
      if (root && root.proxyAddr === mesh.seed) continue;
      ctx.logger.info({ root: name }, root ? 'trusted cluster moved: re-dialling' : 'trust in root removed or disabled: closing its tunnels');
      this.#meshes.delete(name);
      void mesh.stop();
    }
    for (const [name, root] of roots) {
      if (this.#meshes.has(name)) continue;
      const mesh = new RootMesh({ root: () => this.#roots.get(name), ctx, onStream: (dial) => this.#serve(name, dial), discoveryMs: this.#discoveryMs });
      this.#meshes.set(name, mesh);
      mesh.start(root.proxyAddr);
    }
  }

  /** One stream from the root: check the root user's certificate, then list or dial here. */
  async #serve(rootName: string, dial: IncomingDial): Promise<void> {
    const ctx = this.#context();
    const root = this.#roots.get(rootName);
    if (!root) throw new TunnelRejectedError(403, `this cluster no longer trusts ${rootName}`, { service: dial.service });
    if (dial.service === AUDIT_PULL_SERVICE) return this.#auditPull(root, dial);
    let identity: UserIdentity;
    try {
      const pem = Buffer.from(dial.identity, 'base64').toString('utf8');
      identity = verifyCertificateChain(pem, { trustedCaCerts: root.userCaPems, expectedKind: 'user', usage: 'client' }) as UserIdentity;
    } catch (error) {
      const reason = `the caller is not a user of ${rootName}: ${(error as PosternError).message}`;
      this.#auditDenied(rootName, dial, reason);
      throw new TunnelRejectedError(403, reason, { service: dial.service });
    }
    if (dial.service.startsWith(LIST_PREFIX)) return this.#list(dial, dial.service.slice(LIST_PREFIX.length));
    if (isRecordingService(dial.service)) return serveRootUserRecordings(dial, { auth: ctx.auth(), root: rootName, username: identity.username });
    // No host: a served resource (db:, app:, kube_cluster:, desktop:); this proxy picks the host serving it.
    const host = dial.headers[HEADER_HOST] || undefined;
    const { [HEADER_HOST]: _host, ...headers } = dial.headers;
    let upstream;
    try {
      upstream = await ctx.dialer.dial({ host, service: dial.service, identity: dial.identity, headers });
    } catch (error) {
      const cause = (error as { cause?: unknown }).cause;
      // The agent's own refusal (403 from the role map) keeps its status for the root's routes.
      const status = cause instanceof TunnelRejectedError ? cause.status : error instanceof ServiceDialError && error.reason !== 'dial-failed' ? 404 : 502;
      throw new TunnelRejectedError(status, `${ctx.clusterName()}: ${cause instanceof TunnelRejectedError ? cause.reason : (error as Error).message}`, { service: dial.service });
    }
    ctx.logger.info({ root: rootName, user: identity.username, host, service: dial.service }, 'root user routed to a leaf service');
    void pipeBidirectional(dial.stream, upstream);
  }

  /** A root proxy pulls this leaf's audit events about its users, from a time on (the root dedupes by id). */
  async #auditPull(root: _Root, dial: IncomingDial): Promise<void> {
    try {
      const pem = Buffer.from(dial.identity, 'base64').toString('utf8');
      const peer = verifyCertificateChain(pem, { trustedCaCerts: root.hostCaPems, expectedKind: 'host' }) as HostIdentity;
      if (peer.cluster !== root.name || !peer.systemRoles.includes('proxy')) throw new Error(`${peer.hostId} is not a proxy of ${root.name}`);
    } catch (error) {
      throw new TunnelRejectedError(403, `only a proxy of ${root.name} may pull audit events: ${(error as Error).message}`, { service: dial.service });
    }
    const from = dial.headers[HEADER_AUDIT_FROM] ?? '';
    const { eventsJson } = await this.#context().auth().searchAudit({ from, order: 'asc', limit: AUDIT_BATCH }, { deadlineMs: 10_000 });
    const about = eventsJson.filter((text) => (JSON.parse(text) as { fields?: Record<string, unknown> }).fields?.['user_cluster'] === root.name);
    // A full batch (before filtering) tells the root to ask again at once.
    setImmediate(() => dial.stream.end(JSON.stringify({ events: about, more: eventsJson.length === AUDIT_BATCH, last: _lastTime(eventsJson) })));
  }

  /** A refusal here is an access decision of this cluster: audited at its auth, in the background. */
  #auditDenied(rootName: string, dial: IncomingDial, reason: string): void {
    const ctx = this.#context();
    void ctx.auth().emitAudit({
      eventJson: JSON.stringify({
        type: 'access.denied',
        identity: {},
        resource: { kind: 'cluster', name: rootName },
        outcome: 'deny',
        reason: reason.slice(0, 1024),
        fields: { via: 'leaf proxy', service: dial.service.slice(0, 255), host: (dial.headers[HEADER_HOST] ?? '').slice(0, 253) },
      }),
    }, { deadlineMs: 5_000 }).catch((error: unknown) => ctx.logger.warn({ err: error }, 'cannot audit a refused root stream'));
  }

  async #list(dial: IncomingDial, kind: string): Promise<void> {
    if (!listableKinds.has(kind)) throw new TunnelRejectedError(403, `root users may list ${[...listableKinds].join(', ')} here, not ${kind}`, { service: dial.service });
    const ctx = this.#context();
    const { resourcesJson } = await ctx.auth().getResources({ kind, name: '' }, { deadlineMs: 5_000 });
    // After this returns the tunnel answers 200; the body follows.
    setImmediate(() => dial.stream.end(resourcesJson));
  }

  #context(): ProxyExtensionContext {
    if (!this.#ctx) throw new Error('RootTunnels used before start()');
    return this.#ctx;
  }
}

interface _MeshOptions {
  root: () => _Root | undefined;
  ctx: ProxyExtensionContext;
  onStream: (dial: IncomingDial) => Promise<void>;
  discoveryMs: number;
}

/** Tunnels to every proxy of one root: the configured address, then what its discovery lists. */
class RootMesh {
  readonly #links = new Map<string, TunnelLink<_Peer>>();
  readonly #options: _MeshOptions;
  #seed = '';
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(options: _MeshOptions) {
    this.#options = options;
  }

  get seed(): string {
    return this.#seed;
  }

  start(seed: string): void {
    this.#seed = seed;
    this.#add(seed);
    this.#timer = setInterval(() => void this.#discover(), this.#options.discoveryMs);
    this.#timer.unref();
  }

  status(): Array<{ address: string; state: string }> {
    return [...this.#links.values()].map((link) => ({ address: link.address, state: link.state }));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    await Promise.all([...this.#links.values()].map((link) => link.stop()));
    this.#links.clear();
  }

  #add(address: string): void {
    const link = new TunnelLink<_Peer>({
      address,
      dial: (target, signal) => this.#dial(target, signal),
      logger: this.#options.ctx.logger.child({ part: 'root-tunnel' }),
      backoff: { baseMs: 250, maxMs: 5_000 },
    });
    this.#links.set(address, link);
    link.on('up', (open) => {
      const twin = [...this.#links.values()].find((other) => other !== link && other.proxy?.hostId === open.proxy.hostId);
      if (twin && link.address !== this.#seed) {
        this.#links.delete(link.address);
        void link.stop();
        return;
      }
      void this.#discover();
    });
    link.start();
  }

  async #discover(): Promise<void> {
    const root = this.#options.root();
    if (!root || this.#stopped) return;
    try {
      const discovery = await callWebApi<Discovery>(parseProxyAddress(this.#seed), 'GET', '/v1/discovery', { caPems: root.hostCaPems, timeoutMs: 5_000 });
      const reached = new Set([...this.#links.values()].flatMap((l) => (l.proxy ? [l.proxy.hostId] : [])));
      for (const proxy of discovery.proxies) {
        if (!this.#stopped && proxy.public_addr && !this.#links.has(proxy.public_addr) && !reached.has(proxy.host_id)) this.#add(proxy.public_addr);
      }
    } catch (error) {
      this.#options.ctx.logger.debug({ err: error, root: root.name }, 'root proxy discovery failed; keeping the current tunnels');
    }
  }

  #dial(address: string, signal: AbortSignal): Promise<LinkTunnel<_Peer>> {
    const root = this.#options.root();
    const { ctx } = this.#options;
    if (!root) return Promise.reject(new Error('the root is no longer trusted'));
    const identity = ctx.credentials.identity;
    const { host, port } = parseProxyAddress(address);
    return new Promise((resolve, reject) => {
      // TLS over a decoupled TCP wire, so the tunnel's HTTP/2 session runs natively (agent-socket.ts).
      const socket = connectAgentSocket({
        host, port,
        ca: root.hostCaPems,
        cert: identity.cert_pem,
        key: identity.key_pem,
        ALPNProtocols: [ALPN.tunnel],
        // The chain is checked against the root's host CA; the name below, by the certificate's identity.
        checkServerIdentity: () => undefined,
        servername: /^[\d.]+$|:/.test(host) ? undefined : host,
      });
      const fail = (error: Error): void => {
        clearTimeout(timer);
        socket.destroy();
        reject(error);
      };
      const timer = setTimeout(() => fail(new Error(`no TLS handshake with ${address} within 10 s`)), 10_000);
      signal.addEventListener('abort', () => fail(new Error('cancelled')), { once: true });
      socket.once('error', fail);
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        socket.off('error', fail);
        try {
          if (socket.alpnProtocol !== ALPN.tunnel) throw new Error(`${address} did not accept ALPN ${ALPN.tunnel}; is it a Postern proxy?`);
          const peer = verifyCertificateChain(socket.getPeerCertificate().raw, { trustedCaCerts: root.hostCaPems, expectedKind: 'host', usage: 'server' }) as HostIdentity;
          if (peer.cluster !== root.name || !peer.systemRoles.includes('proxy')) throw new Error(`${address} is ${peer.hostId} of ${peer.cluster}, not a proxy of ${root.name}`);
          const tunnel = new AgentTunnel(socket, { onStream: this.#options.onStream });
          resolve({ tunnel, proxy: { hostId: peer.hostId } });
        } catch (error) {
          fail(error as Error);
        }
      });
    });
  }
}

function _lastTime(eventsJson: string[]): string {
  const last = eventsJson.at(-1);
  return last ? (JSON.parse(last) as { time: string }).time : '';
}

function _splitPems(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
}
