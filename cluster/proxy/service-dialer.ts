/**
 * The one way a proxy route reaches a service, in this cluster or in a leaf: every
 * protocol route (SSH, databases, Kubernetes, apps, desktops) calls `dial` and pipes
 * the stream it gets; none of them knows about trust.
 *
 * ```
 * route ─ dial({cluster, host?, service, identity}) ─┬─ cluster = this one ─> resolve host ─> TunnelRegistry.dial ─> agent
 *                                                    └─ a leaf ─> RemoteClusters.dial ─> leaf proxy's tunnel
 *                                                           (leaf proxy: dial({host?, service, identity}) locally)
 * ```
 *
 * A served resource (`db:NAME`, `app:NAME`, `kube_cluster:NAME`, `desktop:NAME`) needs
 * no host: the dialer picks an online host serving it from auth's served listing
 * (cached a few seconds; several hosts spread sessions). In a leaf, the leaf proxy picks.
 *
 * `identity` is opaque here: the base64 of the caller's X.509 user certificate (PEM),
 * as agents expect it in `postern-identity`. The remote side (root/) checks the
 * caller's `cluster_labels` before it uses a leaf's tunnel; the leaf and its agents
 * check the rest. Failures are ServiceDialErrors with a `reason` and a message that
 * says what to do.
 *
 * @example
 * const stream = await dialer.dial({ cluster: 'leaf', host: 'web-1', service: 'ssh', identity });
 * await pipeBidirectional(clientSocket, stream);
 */
import type { Duplex } from 'node:stream';
import { PosternError } from '../../protocols/errors.ts';
import { TunnelDialTimeoutError, TunnelRejectedError } from '../../protocols/tunnel/index.ts';
import type { Logger } from '../common/logger.ts';
import { ServiceDialError } from './errors.ts';
import type { TunnelRegistry } from './tunnel-registry.ts';

/** What to reach. */
export interface ServiceDialRequest {
  /** The cluster the host is in; default (or empty) this cluster. */
  cluster?: string;
  /** A host id, or a node name unique among online hosts; optional for a served resource (the dialer picks). */
  host?: string;
  /** The tunnel service: `ssh`, `db:NAME`, `kube_cluster:NAME`, `app:NAME`, `desktop:NAME` */
  service: string;
  /** Base64 of the caller's X.509 user certificate PEM (`postern-identity`). */
  identity: string;
  /** Extra lower-case headers for the service's handler. */
  headers?: Record<string, string>;
  timeoutMs?: number;
}

/** One host as the auth service lists it (getResources kind node). */
export interface KnownHost {
  host_id: string;
  node_name: string;
  online: boolean;
}

/** One served resource as auth lists it (getResources kind db, app, kube_cluster, desktop). */
export interface ServedRow {
  metadata: { name: string; labels?: Record<string, string> };
  status: { host_id: string; node_name: string; online: boolean };
}

/** A dialled stream and, in this cluster, the host it reached. */
export interface DialedService {
  stream: Duplex;
  /** The host id reached; absent for a leaf (the leaf proxy picked). */
  hostId?: string;
}

/** How a proxy reaches other clusters (root/ provides it on a root proxy). */
export interface RemoteClusters {
  /** True when `cluster` is a leaf this proxy knows (connected or not). */
  knows(cluster: string): boolean;
  /** A stream to `request.service` on `request.host` in the leaf `request.cluster`. */
  dial(request: ServiceDialRequest & { cluster: string }): Promise<Duplex>;
  /** Resources of `kind` in the leaf, as the leaf's auth lists them (JSON list). */
  list(cluster: string, kind: string, identity: string): Promise<unknown[]>;
}

/** What {@link ServiceDialer} needs. */
export interface ServiceDialerOptions {
  /** This cluster's name. */
  clusterName: () => string;
  registry: TunnelRegistry;
  /** Hosts the auth service knows by that host id or name; a failure falls back to this proxy's tunnels. */
  findHosts?: (target: string) => Promise<KnownHost[]>;
  /** Resources of a kind in this cluster (for `list`, and served resources for `dial`). */
  listLocal?: (kind: string) => Promise<unknown[]>;
  /** How long the served listing is reused; default 5 s. */
  servedTtlMs?: number;
  remote?: () => RemoteClusters | undefined;
  logger: Logger;
}

/** Dials services in this cluster or, through trust, in its leaves; see the file comment. */
export class ServiceDialer {
  readonly #options: ServiceDialerOptions;
  readonly #served = new Map<string, { at: number; rows: Promise<ServedRow[]> }>();

  constructor(options: ServiceDialerOptions) {
    this.#options = options;
  }

  /** True when `cluster` names this cluster (or is empty). */
  isLocal(cluster: string | undefined): boolean {
    return !cluster || cluster === this.#options.clusterName();
  }

  /** Opens one stream to the service; ServiceDialError when it cannot. */
  async dial(request: ServiceDialRequest): Promise<Duplex> {
    return (await this.open(request)).stream;
  }

  /** Like {@link dial}, and says which host was reached (for a PostgreSQL cancel that must reach the same one). */
  async open(request: ServiceDialRequest): Promise<DialedService> {
    if (!this.isLocal(request.cluster)) return { stream: await this.#remote(request.cluster!).dial({ ...request, cluster: request.cluster! }) };
    const hostId = request.host ? await this.resolveHost(request.host) : await this.#hostServing(request.service);
    const target = request.host ?? request.service;
    try {
      return { stream: await this.#options.registry.dial(hostId, request.service, request.identity, { headers: request.headers, timeoutMs: request.timeoutMs }), hostId };
    } catch (error) {
      if (!request.host) this.#served.delete(_servedKind(request.service)!.kind);
      throw new ServiceDialError('dial-failed', _dialMessage(target, hostId, request.service, error), { cause: error });
    }
  }

  /** An online host serving `kind:name`: one with a tunnel here, chosen at random among them (HA), else any online one. */
  async #hostServing(service: string): Promise<string> {
    const served = _servedKind(service);
    if (!served) throw new ServiceDialError('unknown-host', `service "${service}" names no served resource (db:, app:, kube_cluster:, desktop:) and no host was given`);
    const { registry } = this.#options;
    let rows: ServedRow[];
    try {
      rows = (await this.#servedRows(served.kind)).filter((row) => row.metadata.name === served.name);
      // A resource announced since the listing was cached: ask auth again once.
      if (rows.length === 0 && this.#served.delete(served.kind)) rows = (await this.#servedRows(served.kind)).filter((row) => row.metadata.name === served.name);
    } catch (error) {
      throw new ServiceDialError('dial-failed', `cannot ask the auth service where ${served.noun} "${served.name}" is served: ${(error as Error).message}`, { cause: error });
    }
    if (rows.length === 0) throw new ServiceDialError('unknown-host', `no ${served.noun} is named "${served.name}" in cluster ${this.#options.clusterName()}; list them with ${served.listWith}`);
    const here = rows.filter((row) => registry.has(row.status.host_id));
    if (here.length > 0) return here[Math.floor(Math.random() * here.length)]!.status.host_id;
    const online = rows.filter((row) => row.status.online);
    if (online.length > 0) return online[0]!.status.host_id;
    this.#served.delete(served.kind);
    throw new ServiceDialError('host-offline', `${served.noun} "${served.name}" is offline: the agent serving it (${rows.map((r) => r.status.node_name).join(', ')}) is not connected`);
  }

  async #servedRows(kind: string): Promise<ServedRow[]> {
    const cached = this.#served.get(kind);
    if (cached && Date.now() - cached.at < (this.#options.servedTtlMs ?? 5_000)) return cached.rows;
    const listLocal = this.#options.listLocal;
    if (!listLocal) throw new Error('this proxy cannot list served resources');
    const rows = listLocal(kind) as Promise<ServedRow[]>;
    this.#served.set(kind, { at: Date.now(), rows });
    rows.catch(() => this.#served.delete(kind));
    return rows;
  }

  /** Resources of `kind` (node, db, app, ...) in `cluster`, as its auth lists them. */
  async list(cluster: string | undefined, kind: string, identity: string): Promise<unknown[]> {
    if (!this.isLocal(cluster)) return this.#remote(cluster!).list(cluster!, kind, identity);
    if (!this.#options.listLocal) throw new ServiceDialError('dial-failed', 'this proxy cannot list resources');
    return this.#options.listLocal(kind);
  }

  /** The host id `target` names: a connected host id, else a unique node name among online hosts. */
  async resolveHost(target: string): Promise<string> {
    const { registry } = this.#options;
    if (registry.has(target)) return target;
    let known: KnownHost[] | undefined;
    try {
      known = await this.#options.findHosts?.(target);
    } catch (error) {
      this.#options.logger.warn({ err: error, host: target }, 'cannot ask the auth service for hosts; resolving among this proxy\'s tunnels only');
    }
    const candidates = new Map<string, { online: boolean }>();
    for (const host of known ?? []) {
      if (host.host_id === target || host.node_name === target) candidates.set(host.host_id, { online: host.online || registry.has(host.host_id) });
    }
    for (const info of registry.list()) if (info.nodeName === target) candidates.set(info.hostId, { online: true });
    if (candidates.size === 0) throw new ServiceDialError('unknown-host', `no node is named "${target}" or has that host id in cluster ${this.#options.clusterName()}; list nodes with psh ls`);
    const online = [...candidates].filter(([, c]) => c.online);
    if (online.length === 1) return online[0]![0];
    if (online.length > 1) {
      throw new ServiceDialError('ambiguous-host', `${online.length} online nodes are named "${target}" (host ids ${online.map(([id]) => id).join(', ')}); connect by host id`);
    }
    throw new ServiceDialError('host-offline', `node "${target}" (host id ${[...candidates.keys()].join(', ')}) is offline; its agent is not connected`);
  }

  #remote(cluster: string): RemoteClusters {
    const remote = this.#options.remote?.();
    if (!remote?.knows(cluster)) {
      throw new ServiceDialError('unknown-cluster', `no cluster "${cluster}" is reachable from ${this.#options.clusterName()}: it is neither this cluster nor a leaf that trusts it; list clusters with psh clusters`);
    }
    return remote;
  }
}

const _nouns: Record<string, { noun: string; listWith: string }> = {
  db: { noun: 'database', listWith: 'psh db ls' },
  app: { noun: 'app', listWith: 'psh apps ls' },
  kube_cluster: { noun: 'Kubernetes cluster', listWith: 'psh kube ls' },
  desktop: { noun: 'desktop', listWith: 'psh ls --kind desktop' },
};

/** `db:orders` -> the kind and name of a served resource; undefined for other services. */
function _servedKind(service: string): { kind: string; name: string; noun: string; listWith: string } | undefined {
  const colon = service.indexOf(':');
  const kind = service.slice(0, colon);
  const known = _nouns[kind];
  return colon > 0 && known ? { kind, name: service.slice(colon + 1), ...known } : undefined;
}

/** An HTTP status for a dial failure: the agent's own refusal status, 404 for unknown names, 503 offline, else 502. */
export function dialStatus(error: unknown): number {
  if (error instanceof ServiceDialError) {
    const cause = error.cause;
    if (cause instanceof TunnelRejectedError) return cause.status === 403 ? 403 : cause.status === 404 ? 404 : 502;
    if (cause instanceof TunnelDialTimeoutError) return 504;
    return { 'unknown-host': 404, 'unknown-cluster': 404, 'ambiguous-host': 409, 'host-offline': 503, 'cluster-offline': 503, 'cluster-denied': 403, 'dial-failed': 502 }[error.reason];
  }
  return 502;
}

function _dialMessage(target: string, hostId: string, service: string, error: unknown): string {
  if (error instanceof TunnelRejectedError) return `node "${target}" (${hostId}) refused the ${service} connection: ${error.message}`;
  if (error instanceof TunnelDialTimeoutError) return `node "${target}" (${hostId}) did not answer in time`;
  if (error instanceof PosternError && error.code === 'PST_TUNNEL_NOT_FOUND') {
    return `node "${target}" (${hostId}) is online but has no tunnel to this proxy; connect through the proxy it is attached to`;
  }
  return `cannot reach node "${target}" (${hostId}): ${error instanceof Error ? error.message : String(error)}`;
}
