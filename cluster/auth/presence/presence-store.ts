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
}
