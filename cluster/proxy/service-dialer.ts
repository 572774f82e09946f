/**
 * The one way a proxy route reaches a service, in this cluster or in a leaf: every
 * protocol route (SSH, databases, Kubernetes, apps, desktops) calls `dial` and pipes
 * the stream it gets; none of them knows about trust.
 *
 * ```
 * route ─ dial({cluster, host, service, identity}) ─┬─ cluster = this one ─> resolve host ─> TunnelRegistry.dial ─> agent
 *                                                   └─ a leaf ─> RemoteClusters.dial ─> leaf proxy's tunnel
 *                                                          (leaf proxy: dial({host, service, identity}) locally)
 * ```
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
  /** A host id, or a node name unique among online hosts. */
  host: string;
  /** The tunnel service: `ssh`, `db:NAME`, `kube:NAME`, `app:NAME`, ... */
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
  /** Resources of a kind in this cluster (for `list`). */
  listLocal?: (kind: string) => Promise<unknown[]>;
  remote?: () => RemoteClusters | undefined;
  logger: Logger;
}

/** Dials services in this cluster or, through trust, in its leaves; see the file comment. */
export class ServiceDialer {
  readonly #options: ServiceDialerOptions;

  constructor(options: ServiceDialerOptions) {
    this.#options = options;
  }

  /** True when `cluster` names this cluster (or is empty). */
  isLocal(cluster: string | undefined): boolean {
    return !cluster || cluster === this.#options.clusterName();
  }

  /** Opens one stream to the service; ServiceDialError when it cannot. */
  async dial(request: ServiceDialRequest): Promise<Duplex> {
    if (!this.isLocal(request.cluster)) return this.#remote(request.cluster!).dial({ ...request, cluster: request.cluster! });
    const hostId = await this.resolveHost(request.host);
    try {
      return await this.#options.registry.dial(hostId, request.service, request.identity, { headers: request.headers, timeoutMs: request.timeoutMs });
    } catch (error) {
      throw new ServiceDialError('dial-failed', _dialMessage(request.host, hostId, request.service, error), { cause: error });
    }
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

function _dialMessage(target: string, hostId: string, service: string, error: unknown): string {
  if (error instanceof TunnelRejectedError) return `node "${target}" (${hostId}) refused the ${service} connection: ${error.message}`;
  if (error instanceof TunnelDialTimeoutError) return `node "${target}" (${hostId}) did not answer in time`;
  if (error instanceof PosternError && error.code === 'PST_TUNNEL_NOT_FOUND') {
    return `node "${target}" (${hostId}) is online but has no tunnel to this proxy; connect through the proxy it is attached to`;
  }
  return `cannot reach node "${target}" (${hostId}): ${error instanceof Error ? error.message : String(error)}`;
}
