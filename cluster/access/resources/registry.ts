/**
 * Which resource kinds exist and how each validates. A module that owns a kind
 * (roles, users, tokens, trusted clusters, databases, apps…) describes it once with
 * `defineKind` beside its spec schema, and the kind is added to a `ResourceRegistry`
 * (built-in kinds in kinds.ts). Parsing (parse-resources.ts) and output
 * (format-resources.ts) then work for every registered kind alike.
 *
 * ```ts
 * export const roleKind = defineKind({ kind: 'role', spec: roleSpecSchema });
 * const registry = new ResourceRegistry([roleKind]);
 * for (const r of parseResources(text, { source: 'role.yaml', registry })) {
 *   if (isKind(r, roleKind)) use(r.spec); // r: Resource<'role', RoleSpec>
 * }
 * ```
 */
import type { z } from 'zod';
import { BadInputError } from '../../../protocols/errors.ts';
import { envelopeSchema, resourceNameSchema, type Resource } from './resource.ts';

/** One kind of resource: its name, its full envelope schema, and an optional one-line summary. */
export interface ResourceKind<K extends string = string, S = unknown> {
  readonly kind: K;
  /** The strict envelope schema (kind, version, metadata, spec). */
  readonly schema: z.ZodType<Resource<K, S>>;
  /** A short description of the spec for `text` output (`logins=root,dev`); method syntax so kinds stay assignable. */
  summarize?(resource: Resource<K, S>): string;
}

export interface DefineKindOptions<K extends string, S> {
  kind: K;
  /** The spec schema; make its objects strict so unknown fields are refused. */
  spec: z.ZodType<S>;
  /** Overrides the default DNS-label-ish name rule (see resource.ts). */
  name?: z.ZodType<string>;
  summarize?: (resource: Resource<K, S>) => string;
}

const kindNamePattern = /^[a-z][a-z0-9_]*$/;

/** Describes a resource kind from its spec schema. */
export function defineKind<K extends string, S>(options: DefineKindOptions<K, S>): ResourceKind<K, S> {
  if (!kindNamePattern.test(options.kind)) {
    throw new BadInputError(`resource kind "${options.kind}" must be lower-case letters, digits and '_'`);
  }
  const schema = envelopeSchema(options.kind, options.spec, options.name ?? resourceNameSchema);
  const kind: ResourceKind<K, S> = { kind: options.kind, schema: schema as unknown as z.ZodType<Resource<K, S>> };
  return options.summarize ? { ...kind, summarize: options.summarize } : kind;
}

/** Narrows a parsed resource to one kind's type. */
export function isKind<K extends string, S>(resource: Resource, kind: ResourceKind<K, S>): resource is Resource<K, S> {
  return resource.kind === kind.kind;
}

/** The set of kinds a parser accepts. */
export class ResourceRegistry {
  readonly #kinds = new Map<string, ResourceKind>();

  constructor(kinds: Iterable<ResourceKind<string, any>> = []) {
    for (const kind of kinds) this.register(kind);
  }

  /** Adds a kind; registering the same name twice is a programming error and throws. */
  register<K extends string, S>(kind: ResourceKind<K, S>): this {
    if (this.#kinds.has(kind.kind)) {
      throw new BadInputError(`resource kind "${kind.kind}" is registered twice`);
    }
    this.#kinds.set(kind.kind, kind as unknown as ResourceKind);
    return this;
  }

  get(kind: string): ResourceKind | undefined {
    return this.#kinds.get(kind);
  }

  /** Registered kind names, sorted. */
  kinds(): string[] {
    return [...this.#kinds.keys()].sort();
  }
}
