/**
 * The envelope every YAML resource shares, after Teleport's resource format:
 *
 * ```yaml
 * kind: role               # picks the spec schema (see registry.ts)
 * version: v1              # the only version so far
 * metadata:
 *   name: dev              # unique per kind; letters, digits, '-', '_', '.'
 *   description: Developers, staging only
 *   labels: { team: web }  # free-form, string -> string
 *   expires: 2027-01-01T00:00:00Z   # optional; an expired resource stops applying
 *   revision: 42           # set by the backend on read; sent back for compare-and-swap
 * spec: { … }              # per kind
 * ```
 *
 * Every object is strict: an unknown field is an error naming its path, because a
 * misspelt field in an access policy silently doing nothing is worse than a refusal.
 */
import { z } from 'zod';

/** Longest resource name; fits a DNS label and a backend key segment with room to spare. */
export const maxNameLength = 63;
const maxLabelKeyLength = 63;
const maxLabelValueLength = 253;
const maxDescriptionLength = 1024;
const maxLabels = 64;

const namePattern = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/;

/**
 * The default resource name rule: DNS-label-ish. 1-63 characters, letters, digits,
 * `-`, `_` and `.`, starting and ending with a letter or digit. A kind whose names
 * need more (user names that are e-mail addresses) passes its own schema to
 * `defineKind` in registry.ts.
 */
export const resourceNameSchema = z
  .string({ error: 'expected a string' })
  .min(1, { error: 'must not be empty' })
  .max(maxNameLength, { error: `must be at most ${maxNameLength} characters` })
  .regex(namePattern, {
    error: "must be letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
  });

const labelKeySchema = z
  .string()
  .min(1, { error: 'label keys must not be empty' })
  .max(maxLabelKeyLength, { error: `label keys must be at most ${maxLabelKeyLength} characters` })
  .regex(/^[A-Za-z0-9._/-]*$/, { error: "label keys are letters, digits, '.', '_', '/' or '-'" });

/** Resource labels: `key: value`, both non-empty strings. */
export const labelsSchema = z
  .record(
    labelKeySchema,
    z
      .string({ error: 'label values must be strings (quote numbers and booleans)' })
      .min(1, { error: 'label values must not be empty' })
      .max(maxLabelValueLength, { error: `label values must be at most ${maxLabelValueLength} characters` }),
  )
  .refine((labels) => Object.keys(labels).length <= maxLabels, { error: `at most ${maxLabels} labels` });

/** Builds the metadata schema around a kind's name rule. */
export function metadataSchema(name: z.ZodType<string> = resourceNameSchema) {
  return z.strictObject({
    name,
    description: z.string().max(maxDescriptionLength).optional(),
    labels: labelsSchema.optional(),
    expires: z.iso
      .datetime({ offset: true, error: 'expected an ISO 8601 date and time, e.g. 2027-01-01T00:00:00Z' })
      .optional(),
    revision: z.number().int().nonnegative().optional(),
  });
}

export interface Metadata {
  name: string;
  description?: string;
  labels?: Record<string, string>;
  /** ISO 8601 date and time. */
  expires?: string;
  /** The backend revision this copy was read at. */
  revision?: number;
}

/** A parsed resource of kind `K` whose spec has type `S`. */
export interface Resource<K extends string = string, S = unknown> {
  kind: K;
  version: 'v1';
  metadata: Metadata;
  spec: S;
}

/** Builds the strict envelope schema for one kind. */
export function envelopeSchema<K extends string, S>(
  kind: K,
  spec: z.ZodType<S>,
  name: z.ZodType<string> = resourceNameSchema,
) {
  return z.strictObject({
    kind: z.literal(kind),
    version: z.literal('v1', { error: 'expected "v1"' }),
    metadata: metadataSchema(name),
    spec,
  });
}

/** True when the resource carries an `expires` that is at or before `now`. */
export function isExpired(resource: Resource, now: Date): boolean {
  const expires = resource.metadata.expires;
  return expires !== undefined && Date.parse(expires) <= now.getTime();
}
