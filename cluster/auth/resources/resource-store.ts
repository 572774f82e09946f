/**
 * Stores resources of the generic kinds (roles now; trusted clusters, databases, apps
 * later) under `/resources/<kind>/<name>` as their JSON envelope. Kinds with secrets
 * or their own life cycle (users, tokens) have their own stores.
 */
import type { Backend, Item } from '../backend/backend.ts';
import { AlreadyExistsError, NotFoundError } from '../../../protocols/errors.ts';
import type { Resource } from '../../access/resources/resource.ts';
import type { ResourceRegistry } from '../../access/resources/registry.ts';
import { parseWith } from '../../common/validation.ts';

const root = '/resources/';

function keyOf(kind: string, name: string): string {
  return `${root}${kind}/${name}`;
}

export class ResourceStore {
  readonly #backend: Backend;
  readonly #registry: ResourceRegistry;

  constructor(backend: Backend, registry: ResourceRegistry) {
    this.#backend = backend;
    this.#registry = registry;
  }

  /** Creates a resource; AlreadyExistsError when one of that kind and name exists (unless `upsert`). */
  async put(resource: Resource, options: { upsert?: boolean } = {}): Promise<Resource> {
    const value = JSON.stringify({ ...resource, metadata: { ...resource.metadata, revision: undefined } });
    const input = { key: keyOf(resource.kind, resource.metadata.name), value };
    try {
      const item = options.upsert ? await this.#backend.put(input) : await this.#backend.create(input);
      return this.#decode(item);
    } catch (error) {
      if (error instanceof AlreadyExistsError) {
        throw new AlreadyExistsError(`${resource.kind} "${resource.metadata.name}" already exists; use pctl create -f FILE --force to replace it`);
      }
      throw error;
    }
  }

  async get(kind: string, name: string): Promise<Resource> {
    const item = await this.#backend.get(keyOf(kind, name));
    if (!item) throw new NotFoundError(`${kind} "${name}" not found; list them with: pctl get ${kind}s`);
    return this.#decode(item);
  }

  /** Every resource of a kind, or undefined entries skipped when a stored one no longer validates. */
  async list(kind: string): Promise<Resource[]> {
    const items = await this.#backend.range(`${root}${kind}/`);
    return items.map((item) => this.#decode(item));
  }

  async delete(kind: string, name: string): Promise<void> {
    try {
      await this.#backend.delete(keyOf(kind, name));
    } catch (error) {
      if (error instanceof NotFoundError) throw new NotFoundError(`${kind} "${name}" not found; nothing was deleted`);
      throw error;
    }
  }

  /** Resources of `kind` that are named in `names`; missing names are skipped. */
  async getMany(kind: string, names: readonly string[]): Promise<Resource[]> {
    const found: Resource[] = [];
    for (const name of new Set(names)) {
      const item = await this.#backend.get(keyOf(kind, name));
      if (item) found.push(this.#decode(item));
    }
    return found;
  }

  #decode(item: Item): Resource {
    const raw = JSON.parse(item.value) as Resource;
    const kind = this.#registry.get(raw.kind);
    if (!kind) throw new NotFoundError(`stored resource ${item.key} has unknown kind "${raw.kind}"`);
    const resource = parseWith(kind.schema, raw, `stored ${raw.kind} "${raw.metadata?.name}"`);
    return { ...resource, metadata: { ...resource.metadata, revision: item.revision } };
  }
}
