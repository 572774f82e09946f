/**
 * Who is out there: one record per host under `/presence/<kind>/<hostId>`, refreshed
 * by heartbeats. A host counts as online while its last heartbeat is younger than the
 * deadline (three intervals); its record lingers a day so `pctl nodes ls` can show it
 * offline with its last-seen time instead of forgetting it.
 */
import { z } from 'zod';
import type { Backend } from '../backend/backend.ts';
import type { Clock } from '../../common/clock.ts';
import { parseWith } from '../../common/validation.ts';
import { BadInputError } from '../../../protocols/errors.ts';
import { maxServedJsonBytes, servedResourceSchema, servedResourcesSchema, type ServedKind } from '../../access/resources/served-resource.ts';

export const heartbeatIntervalMs = 10_000;
/** Missing this many intervals in a row makes a host offline. */
export const missedHeartbeatsOffline = 3;
const lingerMs = 24 * 3_600_000;

const inventorySchema = z
  .object({
    hostname: z.string().max(253).optional(),
    nodeName: z.string().max(253).optional(),
    addresses: z.array(z.string().max(64)).max(64).optional(),
    os: z.unknown().optional(),
    kernel: z.string().max(256).optional(),
    arch: z.string().max(64).optional(),
    cpu: z.unknown().optional(),
    memoryBytes: z.number().optional(),
    version: z.string().max(64).optional(),
    labels: z.record(z.string().max(63), z.string().max(1024)).optional(),
    services: z.array(z.string()).optional(),
    startedAt: z.string().optional(),
  })
  .loose();

export type Inventory = z.output<typeof inventorySchema>;

const presenceSchema = z.strictObject({
  kind: z.enum(['node', 'proxy']),
  host_id: z.string(),
  node_name: z.string(),
  system_roles: z.array(z.string()),
  labels: z.record(z.string(), z.string()),
  services: z.array(z.string()),
  /** Databases, apps, Kubernetes clusters and desktops the host serves. */
  served: z.array(servedResourceSchema).default([]),
  public_addr: z.string().optional(),
  peer_addr: z.string(),
  inventory: inventorySchema,
  first_seen: z.string(),
  last_seen: z.string(),
});

export type Presence = z.output<typeof presenceSchema> & { online: boolean };
export type PresenceKind = Presence['kind'];

export interface HeartbeatInput {
  kind: PresenceKind;
  hostId: string;
  nodeName: string;
  systemRoles: string[];
  services: string[];
  publicAddr?: string;
  peerAddr: string;
  inventoryJson: string;
  /** JSON array of served resources; empty means none. */
  servedJson?: string;
}

/** One served resource with the host that serves it, as listings show it. */
export interface ServedListing {
  kind: ServedKind;
  version: 'v1';
  metadata: { name: string; labels: Record<string, string>; description?: string };
  spec: Record<string, unknown>;
  status: { host_id: string; node_name: string; online: boolean; last_seen: string };
}

export class PresenceStore {
  readonly #backend: Backend;
  readonly #clock: Clock;

  constructor(backend: Backend, clock: Clock) {
    this.#backend = backend;
    this.#clock = clock;
  }

  /** Records a heartbeat; the first one of a host sets first_seen. */
  async heartbeat(input: HeartbeatInput): Promise<Presence> {
    const inventory = input.inventoryJson ? parseWith(inventorySchema, JSON.parse(input.inventoryJson) as unknown, 'inventory') : {};
    const served = _parseServed(input.servedJson ?? '');
    const now = this.#clock.now();
    const key = `/presence/${input.kind}/${input.hostId}`;
    const previous = await this.#backend.get(key);
    const firstSeen = previous ? (JSON.parse(previous.value) as { first_seen: string }).first_seen : now.toISOString();
    const record = parseWith(
      presenceSchema,
      {
        kind: input.kind,
        host_id: input.hostId,
        node_name: inventory.nodeName ?? input.nodeName,
        system_roles: input.systemRoles,
        labels: inventory.labels ?? {},
        services: input.services,
        served,
        ...(input.publicAddr ? { public_addr: input.publicAddr } : {}),
        peer_addr: input.peerAddr,
        inventory,
        first_seen: firstSeen,
        last_seen: now.toISOString(),
      },
      'heartbeat',
    );
    await this.#backend.put({ key, value: JSON.stringify(record), expires: new Date(now.getTime() + lingerMs) });
    return { ...record, online: true };
  }

  /** Every host of a kind, with online computed from its last heartbeat. */
  async list(kind: PresenceKind): Promise<Presence[]> {
    const now = this.#clock.now().getTime();
    const items = await this.#backend.range(`/presence/${kind}/`);
    return items.map((item) => {
      const record = parseWith(presenceSchema, JSON.parse(item.value) as unknown, `stored presence ${item.key}`);
      const age = now - new Date(record.last_seen).getTime();
      return { ...record, online: age < heartbeatIntervalMs * missedHeartbeatsOffline };
    });
  }

  /**
   * Every served resource of `kind` across hosts, online ones first. Two hosts may serve
   * the same name (high availability): each is listed, and routing picks an online one.
   */
  async listServed(kind: ServedKind): Promise<ServedListing[]> {
    const hosts = await this.list('node');
    const rows: ServedListing[] = [];
    for (const host of hosts) {
      for (const resource of host.served) {
        if (resource.kind !== kind) continue;
        rows.push({
          kind,
          version: 'v1',
          metadata: { name: resource.name, labels: resource.labels, ...(resource.description ? { description: resource.description } : {}) },
          spec: resource.spec,
          status: { host_id: host.host_id, node_name: host.node_name, online: host.online, last_seen: host.last_seen },
        });
      }
    }
    return rows.sort((a, b) => Number(b.status.online) - Number(a.status.online) || a.metadata.name.localeCompare(b.metadata.name));
  }
}

function _parseServed(json: string): z.output<typeof servedResourcesSchema> {
  if (json === '') return [];
  if (Buffer.byteLength(json) > maxServedJsonBytes) throw new BadInputError(`heartbeat: served resources take more than ${maxServedJsonBytes} bytes`);
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new BadInputError('heartbeat: served_json is not JSON');
  }
  return parseWith(servedResourcesSchema, value, 'heartbeat served resources');
}
