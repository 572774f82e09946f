/**
 * The one place the proxy turns an app or Kubernetes cluster name into a tunnel stream:
 * find an online host serving it (auth's listing, cached a few seconds), then
 * `registry.dial(hostId, 'kind:name', identity)`. Trusted clusters swap this function
 * for one that also reaches leaves.
 */
import type { Duplex } from 'node:stream';
import { PosternError } from '../../protocols/errors.ts';
import { TunnelDialTimeoutError, TunnelRejectedError } from '../../protocols/tunnel/index.ts';
import type { AuthClient } from '../api/auth-client.ts';
import type { TunnelRegistry } from './tunnel-registry.ts';

export type DialKind = 'app' | 'kube_cluster';

/** One served resource as auth lists it. */
export interface ServedRow {
  metadata: { name: string; labels: Record<string, string> };
  spec: Record<string, unknown>;
  status: { host_id: string; node_name: string; online: boolean };
}

/** Why a dial failed, with a status fit for an HTTP answer. */
export class ResourceDialError extends PosternError {
  readonly status: number;
  constructor(status: number, message: string) {
    super(status === 403 ? 'PST_ACCESS_DENIED' : status === 404 ? 'PST_NOT_FOUND' : 'PST_UNAVAILABLE', message);
    this.status = status;
  }
}

export type ResourceDialer = (kind: DialKind, name: string, identity: string) => Promise<{ stream: Duplex; row: ServedRow }>;

/** Lists served resources of a kind (cached); resolves a name to rows. */
export class ServedCatalog {
  readonly #auth: () => AuthClient;
  readonly #ttlMs: number;
  readonly #cache = new Map<DialKind, { at: number; rows: Promise<ServedRow[]> }>();

  constructor(auth: () => AuthClient, ttlMs = 5_000) {
    this.#auth = auth;
    this.#ttlMs = ttlMs;
  }

  async list(kind: DialKind): Promise<ServedRow[]> {
    const cached = this.#cache.get(kind);
    if (cached && Date.now() - cached.at < this.#ttlMs) return cached.rows;
    const rows = this.#auth().getResources({ kind, name: '' }, { deadlineMs: 5_000 }).then((r) => JSON.parse(r.resourcesJson) as ServedRow[]);
    this.#cache.set(kind, { at: Date.now(), rows });
    rows.catch(() => this.#cache.delete(kind));
    return rows;
  }

  async find(kind: DialKind, name: string): Promise<ServedRow[]> {
    return (await this.list(kind)).filter((row) => row.metadata.name === name);
  }
}

/** The dialer: an online host serving `name` that this proxy has a tunnel to, else the first online one. */
export function resourceDialer(catalog: ServedCatalog, registry: TunnelRegistry): ResourceDialer {
  return async (kind, name, identity) => {
    const noun = kind === 'app' ? 'app' : 'Kubernetes cluster';
    let rows: ServedRow[];
    try {
      rows = await catalog.find(kind, name);
    } catch (error) {
      throw new ResourceDialError(503, `cannot ask the auth service where ${noun} "${name}" is served: ${(error as Error).message}`);
    }
    if (rows.length === 0) throw new ResourceDialError(404, `no ${noun} is named "${name}"; list them with psh ${kind === 'app' ? 'apps' : 'kube'} ls`);
    const online = rows.filter((row) => row.status.online || registry.has(row.status.host_id));
    if (online.length === 0) throw new ResourceDialError(503, `${noun} "${name}" is offline: the agent serving it (${rows[0]!.status.node_name}) is not connected`);
    const row = online.find((r) => registry.has(r.status.host_id)) ?? online[0]!;
    try {
      return { stream: await registry.dial(row.status.host_id, `${kind}:${name}`, identity), row };
    } catch (error) {
      if (error instanceof TunnelRejectedError) throw new ResourceDialError(error.status === 403 ? 403 : 502, error.reason);
      if (error instanceof TunnelDialTimeoutError) throw new ResourceDialError(504, `the agent serving ${noun} "${name}" (${row.status.node_name}) did not answer in time`);
      throw new ResourceDialError(502, `cannot reach the agent serving ${noun} "${name}" (${row.status.node_name}): ${(error as Error).message}`);
    }
  };
}
