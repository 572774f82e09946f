/**
 * The root proxy's side of leaf tunnels, and the RemoteClusters the ServiceDialer uses.
 *
 * ```
 * leaf proxy ──TLS, ALPN postern-tunnel, leaf host cert──> root proxy
 *   acceptTunnel: not our host CA -> acceptForeignTunnel: the cert chains to the host CA
 *   of a leaf with a remote_cluster record, names that leaf and has role proxy
 *   -> ProxyTunnel (the root is the HTTP/2 client), kept per leaf
 *
 * root user ─> route ─> dialer.dial({cluster: leaf, host, service, identity})
 *   -> cluster_labels of the user's roles vs the leaf's labels (deny: audited here)
 *   -> one stream on the leaf's newest tunnel: postern-service = service,
 *      postern-host = host (none for a served resource: the leaf picks),
 *      postern-identity = the user's certificate
 * ```
 *
 * What the root knows of its leaves (their host CAs, records and labels) is re-read
 * from auth every `refreshMs`; a leaf whose record was deleted loses its tunnels then.
 */
import type { Duplex } from 'node:stream';
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { PosternError } from '../../protocols/errors.ts';
import { ProxyTunnel, TunnelDialTimeoutError, TunnelRejectedError } from '../../protocols/tunnel/index.ts';
import { AccessChecker } from '../../cluster/access/roles/access-checker.ts';
import { roleSpecSchema, type Role } from '../../cluster/access/roles/role.ts';
import { verifyCertificateChain } from '../../cluster/auth/pki/verify-certificate.ts';
import type { HostIdentity, UserIdentity } from '../../cluster/auth/pki/identity.ts';
import { ServiceDialError } from '../../cluster/proxy/errors.ts';
import type { ProxyExtension, ProxyExtensionContext } from '../../cluster/proxy/proxy-extension.ts';
import type { RemoteClusters, ServiceDialRequest } from '../../cluster/proxy/service-dialer.ts';

/** Header naming the target host on a stream into a leaf. */
export const HEADER_HOST = 'postern-host';
/** Service prefix of a listing stream: `list:node`. */
export const LIST_SERVICE_PREFIX = 'list:';

interface _Leaf {
  labels: Record<string, string>;
  hostCaPems: string[];
}

interface _LeafTunnel {
  tunnel: ProxyTunnel;
  proxyHostId: string;
  connectedAt: Date;
}

/** The root side of trust in a proxy; see the file comment. */
export class LeafTunnels implements ProxyExtension, RemoteClusters {
  readonly #refreshMs: number;
  #ctx: ProxyExtensionContext | undefined;
  #leaves = new Map<string, _Leaf>();
  readonly #tunnels = new Map<string, _LeafTunnel[]>();
  #roles: { at: number; byName: Map<string, Role> } | undefined;
  #timer: NodeJS.Timeout | undefined;
  #auditTimer: NodeJS.Timeout | undefined;
  readonly #auditMs: number;
  readonly #pulling = new Set<string>();

  constructor(options: { refreshMs?: number; auditPullMs?: number } = {}) {
    this.#refreshMs = options.refreshMs ?? 2_000;
    this.#auditMs = options.auditPullMs ?? 3_000;
  }

  /**
   * Pulls each connected leaf's audit events about this root's users into this root's
   * audit log. The cursor lives at the root's auth (the newest leaf time stored), the
   * events at the leaf: a broken link or a restart resumes from the cursor, and the
   * root's auth stores each leaf event id once, so nothing is lost or doubled.
   */
  async #pullAudit(): Promise<void> {
    const ctx = this.#context();
    for (const cluster of this.connectedClusters()) {
      if (this.#pulling.has(cluster)) continue;
      this.#pulling.add(cluster);
      try {
        for (let batch = 0; batch < 20; batch++) {
          const { cursor } = await ctx.auth().forwardLeafAudit({ leafCluster: cluster, eventsJson: [] }, { deadlineMs: 5_000 });
          const me = Buffer.from(ctx.credentials.identity.cert_pem).toString('base64');
          const stream = await this.#onTunnel(cluster, (tunnel) => tunnel.dial('audit:pull', me, { headers: { 'postern-audit-from': cursor } }));
          const answer = JSON.parse((await _readAll(stream, 64 * 1024 * 1024)).toString('utf8')) as { events: string[]; more: boolean; last: string };
          if (answer.events.length > 0 || answer.last) {
            await ctx.auth().forwardLeafAudit({ leafCluster: cluster, eventsJson: answer.events, scannedTo: answer.last }, { deadlineMs: 10_000 });
          }
          if (!answer.more) break;
        }
      } catch (error) {
        ctx.logger.debug({ err: error, cluster }, 'pulling audit events from the leaf failed; retrying later');
      } finally {
        this.#pulling.delete(cluster);
      }
    }
  }

  async start(context: ProxyExtensionContext): Promise<void> {
    this.#ctx = context;
    await this.refresh().catch(() => undefined);
    const loop = (): void => {
      this.#timer = setTimeout(() => void this.refresh().catch(() => undefined).finally(loop), this.#refreshMs);
      this.#timer.unref();
    };
    loop();
    this.#auditTimer = setInterval(() => void this.#pullAudit(), this.#auditMs);
    this.#auditTimer.unref();
  }

  async close(): Promise<void> {
    clearTimeout(this.#timer);
    clearInterval(this.#auditTimer);
    for (const entries of this.#tunnels.values()) for (const entry of entries) entry.tunnel.destroy();
    this.#tunnels.clear();
  }

  remoteClusters(): RemoteClusters {
    return this;
  }

  connectedClusters(): string[] {
    return [...this.#tunnels].filter(([, entries]) => entries.some((e) => !e.tunnel.closed)).map(([name]) => name);
  }

  /** Re-reads the leaves from auth; drops tunnels of leaves no longer trusted. */
  async refresh(): Promise<void> {
    const ctx = this.#context();
    try {
      const auth = ctx.auth();
      const [{ authorities }, { resourcesJson }] = await Promise.all([
        auth.exportAuthorities({ kind: 'host', includeRemote: true }, { deadlineMs: 5_000 }),
        auth.getResources({ kind: 'remote_cluster', name: '' }, { deadlineMs: 5_000 }),
      ]);
      const records = JSON.parse(resourcesJson) as Array<{ metadata: { name: string; labels?: Record<string, string> } }>;
      const leaves = new Map<string, _Leaf>();
      for (const record of records) {
        const pems = authorities.filter((a) => a.cluster === record.metadata.name && a.kind === 'host').flatMap((a) => _splitPems(a.tlsCertPem));
        if (pems.length > 0) leaves.set(record.metadata.name, { labels: record.metadata.labels ?? {}, hostCaPems: pems });
      }
      this.#leaves = leaves;
    } catch (error) {
      ctx.logger.warn({ err: error }, 'cannot read the leaf clusters from auth; keeping what is known');
      return;
    }
    for (const [name, entries] of this.#tunnels) {
      if (this.#leaves.has(name)) continue;
      ctx.logger.info({ cluster: name }, 'leaf cluster no longer trusted: closing its tunnels');
      for (const entry of entries) entry.tunnel.destroy(new Error(`leaf cluster ${name} is no longer trusted by this root`));
    }
  }

  acceptForeignTunnel(socket: TLSSocket, certificate: Buffer): boolean {
    const ctx = this.#context();
    for (const [name, leaf] of this.#leaves) {
      let identity: HostIdentity;
      try {
        identity = verifyCertificateChain(certificate, { trustedCaCerts: leaf.hostCaPems, expectedKind: 'host', usage: 'client' }) as HostIdentity;
      } catch {
        continue;
      }
      if (identity.cluster !== name || !identity.systemRoles.includes('proxy')) continue;
      this.#adopt(name, identity, socket);
      return true;
    }
    ctx.logger.debug({ issuer: _issuerOf(certificate) }, 'tunnel certificate matches no trusted leaf');
    return false;
  }

  knows(cluster: string): boolean {
    return this.#leaves.has(cluster);
  }

  async dial(request: ServiceDialRequest & { cluster: string }): Promise<Duplex> {
    await this.#authorize(request.cluster, request.identity, request.host ? `${request.service} on ${request.host}` : request.service);
    // Without a host the leaf proxy picks one serving the resource.
    const headers = request.host ? { ...request.headers, [HEADER_HOST]: request.host } : { ...request.headers };
    return this.#onTunnel(request.cluster, (tunnel) => tunnel.dial(request.service, request.identity, { headers, timeoutMs: request.timeoutMs }));
  }

  async list(cluster: string, kind: string, identity: string): Promise<unknown[]> {
    await this.#authorize(cluster, identity, `list ${kind}`);
    const stream = await this.#onTunnel(cluster, (tunnel) => tunnel.dial(`${LIST_SERVICE_PREFIX}${kind}`, identity));
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of stream) {
      size += (chunk as Buffer).length;
      if (size > 16 * 1024 * 1024) {
        stream.destroy();
        throw new ServiceDialError('dial-failed', `leaf cluster ${cluster} sent more than 16 MiB for list ${kind}`);
      }
      chunks.push(chunk as Buffer);
    }
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown[];
  }

  #adopt(cluster: string, identity: HostIdentity, socket: TLSSocket): void {
    const ctx = this.#context();
    const tunnel = new ProxyTunnel(socket, ctx.tunnel);
    const entry: _LeafTunnel = { tunnel, proxyHostId: identity.hostId, connectedAt: new Date() };
    const entries = this.#tunnels.get(cluster) ?? [];
    entries.push(entry);
    this.#tunnels.set(cluster, entries);
    ctx.logger.info({ cluster, leafProxy: identity.hostId, remoteAddr: socket.remoteAddress }, 'leaf cluster tunnel accepted');
    tunnel.once('close', (reason) => {
      const list = this.#tunnels.get(cluster) ?? [];
      const index = list.indexOf(entry);
      if (index >= 0) list.splice(index, 1);
      if (list.length === 0) this.#tunnels.delete(cluster);
      ctx.logger.info({ cluster, leafProxy: identity.hostId, why: reason.message }, 'leaf cluster tunnel closed');
      ctx.beat();
    });
    ctx.beat();
  }

  async #onTunnel(cluster: string, open: (tunnel: ProxyTunnel) => Promise<Duplex>): Promise<Duplex> {
    const entries = (this.#tunnels.get(cluster) ?? []).filter((e) => !e.tunnel.closed).reverse();
    if (entries.length === 0) {
      throw new ServiceDialError('cluster-offline', `leaf cluster ${cluster} has no tunnel to this proxy: its proxy is down or cannot reach the root (pctl clusters ls on the root)`);
    }
    let last: unknown;
    for (const entry of entries) {
      try {
        return await open(entry.tunnel);
      } catch (error) {
        last = error;
        if (error instanceof TunnelRejectedError || error instanceof TunnelDialTimeoutError) break;
      }
    }
    if (last instanceof TunnelRejectedError) throw new ServiceDialError('dial-failed', `leaf cluster ${cluster} refused: ${last.reason}`, { cause: last });
    throw new ServiceDialError('dial-failed', `cannot reach leaf cluster ${cluster}: ${(last as Error).message}`, { cause: last });
  }

  /** The caller's roles (read here, from this cluster) must reach the leaf's labels; a refusal is audited. */
  async #authorize(cluster: string, identityHeader: string, what: string): Promise<void> {
    const ctx = this.#context();
    const leaf = this.#leaves.get(cluster);
    if (!leaf) throw new ServiceDialError('unknown-cluster', `no leaf cluster "${cluster}" trusts this root`);
    let identity: UserIdentity;
    try {
      const pem = Buffer.from(identityHeader, 'base64').toString('utf8');
      identity = verifyCertificateChain(pem, { trustedCaCerts: ctx.credentials.userCaPems(), expectedKind: 'user', usage: 'client' }) as UserIdentity;
    } catch (error) {
      throw new ServiceDialError('cluster-denied', `the caller's certificate is not a user certificate of this cluster: ${(error as PosternError).message}`);
    }
    const byName = await this.#rolesByName();
    const roles = identity.roles.map((name) => byName.get(name)).filter((role): role is Role => role !== undefined);
    const decision = new AccessChecker(roles, identity.traits).checkCluster({ name: cluster, labels: leaf.labels });
    if (decision.allowed) return;
    void ctx.auth().emitAudit({
      eventJson: JSON.stringify({
        type: 'access.denied',
        identity: { user: identity.username, roles: identity.roles },
        resource: { kind: 'cluster', name: cluster },
        outcome: 'deny',
        reason: decision.reason.slice(0, 1024),
        fields: { via: 'proxy', what: what.slice(0, 256) },
      }),
    }, { deadlineMs: 5_000 }).catch(() => undefined);
    throw new ServiceDialError('cluster-denied', `user ${identity.username} may not reach leaf cluster ${cluster}: ${decision.reason}`);
  }

  async #rolesByName(): Promise<Map<string, Role>> {
    const now = Date.now();
    if (this.#roles && now - this.#roles.at < 5_000) return this.#roles.byName;
    const { resourcesJson } = await this.#context().auth().getResources({ kind: 'role', name: '' }, { deadlineMs: 5_000 });
    const byName = new Map<string, Role>();
    for (const item of JSON.parse(resourcesJson) as Role[]) {
      const spec = roleSpecSchema.safeParse(item.spec);
      if (spec.success) byName.set(item.metadata.name, { ...item, spec: spec.data });
    }
    this.#roles = { at: now, byName };
    return byName;
  }

  #context(): ProxyExtensionContext {
    if (!this.#ctx) throw new Error('LeafTunnels used before start()');
    return this.#ctx;
  }
}

async function _readAll(stream: Duplex, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > max) {
      stream.destroy();
      throw new Error(`the leaf sent more than ${max} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function _splitPems(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
}

function _issuerOf(certificate: Buffer): string {
  try {
    return new X509Certificate(certificate).issuer.replaceAll('\n', ', ');
  } catch {
    return 'unreadable';
  }
}
