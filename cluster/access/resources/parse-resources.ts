/**
 * Text -> typed resources. Reads YAML (JSON is a subset, so `pctl get -o json` output
 * reads back too) holding one or more documents separated by `---`; a document may
 * also be a list of resources. Each resource is validated by its kind's strict schema
 * from a ResourceRegistry.
 *
 * Every problem in the file is reported at once, one line each, as
 * `file: document N: field.path: message (line L)`, e.g.
 * `role.yaml: document 1: spec.allow.logns: Unrecognized key (did you mean "logins"?) (line 7)`.
 * Syntax errors read `file: document N: line L, column C: message`.
 */
import YAML, { isMap, isScalar, isSeq, LineCounter, type Document } from 'yaml';
import type { z } from 'zod';
import { BadInputError } from '../../../protocols/errors.ts';
import { formatIssues } from '../../common/validation.ts';
import type { ResourceRegistry } from './registry.ts';
import type { Resource } from './resource.ts';

export interface ParseResourcesOptions {
  /** Names the input in messages: a file name, `stdin`, `request body`. */
  source: string;
  registry: ResourceRegistry;
  /** Refuse longer texts before parsing (default 4 MiB). */
  maxBytes?: number;
  /** Refuse more resources than this (default 10,000). */
  maxResources?: number;
}

const defaultMaxBytes = 4 * 1024 * 1024;
const defaultMaxResources = 10_000;

/** Parses and validates every resource in `text`; throws one BadInputError listing every problem. */
export function parseResources(text: string, options: ParseResourcesOptions): Resource[] {
  const { source, registry } = options;
  const maxBytes = options.maxBytes ?? defaultMaxBytes;
  if (Buffer.byteLength(text, 'utf8') > maxBytes) {
    throw new BadInputError(`${source}: larger than ${maxBytes} bytes; split it into several files`);
  }
  const lineCounter = new LineCounter();
  const documents = YAML.parseAllDocuments(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const errors: string[] = [];
  const resources: Resource[] = [];
  const firstSeen = new Map<string, string>();

  documents.forEach((doc, index) => {
    const where = `${source}: document ${index + 1}`;
    if (doc.errors.length > 0) {
      for (const error of doc.errors) {
        const { line, col } = lineCounter.linePos(error.pos[0]);
        errors.push(`${where}: line ${line}, column ${col}: ${firstLine(error.message)}`);
      }
      return;
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (error) {
      errors.push(`${where}: ${error instanceof Error ? firstLine(error.message) : String(error)}`);
      return;
    }
    if (value === null || value === undefined) return; // an empty document, e.g. a trailing `---`
    const items = Array.isArray(value) ? value : [value];
    items.forEach((item: unknown, itemIndex) => {
      const label = Array.isArray(value) ? `${where}, item ${itemIndex + 1}` : where;
      const prefix = Array.isArray(value) ? [itemIndex] : [];
      const ctx = { label, prefix, doc, lineCounter };
      const resource = validateOne(item, registry, ctx, errors);
      if (!resource) return;
      const id = `${resource.kind} "${resource.metadata.name}"`;
      const first = firstSeen.get(id);
      if (first !== undefined) {
        errors.push(`${label}: metadata.name: ${id} is defined twice (first in ${first})${lineNote(ctx, ['metadata', 'name'])}`);
        return;
      }
      firstSeen.set(id, label.slice(source.length + 2));
      resources.push(resource);
    });
  });

  if (errors.length > 0) throw new BadInputError(errors.join('\n'));
  if (resources.length === 0) {
    throw new BadInputError(`${source}: no resources found; expected a document with kind, version, metadata and spec`);
  }
  const maxResources = options.maxResources ?? defaultMaxResources;
  if (resources.length > maxResources) {
    throw new BadInputError(`${source}: ${resources.length} resources, more than the limit of ${maxResources}`);
  }
  return resources;
}

interface Context {
  label: string;
  prefix: (string | number)[];
  doc: Document.Parsed;
  lineCounter: LineCounter;
}

function validateOne(item: unknown, registry: ResourceRegistry, ctx: Context, errors: string[]): Resource | undefined {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) {
    errors.push(`${ctx.label}: expected a mapping with kind, version, metadata and spec${lineNote(ctx, [])}`);
    return undefined;
  }
  const kindName = (item as Record<string, unknown>)['kind'];
  const known = registry.kinds();
  if (typeof kindName !== 'string' || kindName === '') {
    errors.push(`${ctx.label}: kind: required; one of ${known.join(', ')}${lineNote(ctx, [])}`);
    return undefined;
  }
  const kind = registry.get(kindName);
  if (!kind) {
    const guess = closest(kindName, known);
    const hint = guess ? `did you mean "${guess}"? ` : '';
    errors.push(`${ctx.label}: kind: unknown kind "${kindName}"; ${hint}known kinds: ${known.join(', ')}${lineNote(ctx, ['kind'])}`);
    return undefined;
  }
  const result = kind.schema.safeParse(item);
  if (result.success) return result.data;
  errors.push(formatIssues(ctx.label, explainIssues(result.error.issues, kind.schema, ctx)));
  return undefined;
}

/** One issue per unknown key (with its own path and a did-you-mean), each message ending in its line. */
function explainIssues(issues: readonly z.core.$ZodIssue[], schema: z.ZodType, ctx: Context): z.core.$ZodIssue[] {
  const out: z.core.$ZodIssue[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      const known = knownKeys(schema, issue.path);
      for (const key of issue.keys) {
        const guess = closest(key, known);
        const hint = guess ? ` (did you mean "${guess}"?)` : '';
        const path = [...issue.path, key];
        out.push({ ...issue, path, message: `Unrecognized key${hint}${lineNote(ctx, path)}` });
      }
    } else if (issue.code === 'invalid_key') {
      // Records report "Invalid key in record"; the key schema's own message says why.
      const why = issue.issues.map((i) => i.message).join('; ') || issue.message;
      out.push({ ...issue, path: quoteEmpty(issue.path), message: `${why}${lineNote(ctx, issue.path)}` });
    } else {
      out.push({ ...issue, path: quoteEmpty(issue.path), message: `${issue.message}${lineNote(ctx, issue.path)}` });
    }
  }
  return out;
}

/** Shows an empty key as `""` so `labels.""` reads as a key, not a stray dot. */
function quoteEmpty(path: readonly PropertyKey[]): PropertyKey[] {
  return path.map((segment) => (segment === '' ? '""' : segment));
}

/** ` (line N)` for the YAML node at `path`, or the nearest ancestor found. */
function lineNote(ctx: Context, path: readonly PropertyKey[]): string {
  let node: unknown = ctx.doc.contents;
  let offset: number | undefined = (node as { range?: [number] } | null)?.range?.[0];
  for (const segment of [...ctx.prefix, ...path]) {
    let next: unknown;
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment));
      if (!pair) break;
      offset = (pair.key as { range?: [number] }).range?.[0] ?? offset;
      next = pair.value;
    } else if (isSeq(node) && typeof segment === 'number') {
      next = node.items[segment];
      offset = (next as { range?: [number] } | undefined)?.range?.[0] ?? offset;
    } else {
      break;
    }
    node = next;
  }
  return offset === undefined ? '' : ` (line ${ctx.lineCounter.linePos(offset).line})`;
}

type SchemaDef = { type: string; [key: string]: unknown };

/** The keys an object schema at `path` accepts, looking through wrappers; [] when it cannot tell. */
function knownKeys(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  let current: unknown = schema;
  const segments = [...path];
  for (let guard = 0; guard < 100 && current; guard++) {
    const def = (current as { _zod?: { def?: SchemaDef } })._zod?.def;
    if (!def) return [];
    if (['optional', 'nullable', 'default', 'prefault', 'readonly', 'catch', 'nonoptional'].includes(def.type)) {
      current = def['innerType'];
    } else if (def.type === 'pipe') {
      current = def['in'];
    } else if (segments.length === 0) {
      return def.type === 'object' ? Object.keys(def['shape'] as object) : [];
    } else if (def.type === 'object') {
      current = (def['shape'] as Record<string, unknown>)[String(segments.shift())];
    } else if (def.type === 'array') {
      segments.shift();
      current = def['element'];
    } else if (def.type === 'record') {
      segments.shift();
      current = def['valueType'];
    } else {
      return [];
    }
  }
  return [];
}

/** The candidate closest to `word` by edit distance, if close enough to be a likely typo. */
function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(word.length / 3));
  for (const candidate of candidates) {
    const distance = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (distance <= bestDistance) {
      best = candidate;
      bestDistance = distance - 1;
      if (distance === 0) break;
    }
  }
  return best;
}

/** Edit distance counting a swap of neighbours as one edit (optimal string alignment). */
function editDistance(a: string, b: string): number {
  let before: number[] = [];
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(row[j - 1]! + 1, previous[j]! + 1, previous[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, before[j - 2]! + 1);
      row[j] = best;
    }
    before = previous;
    previous = row;
  }
  return previous[b.length]!;
}

function firstLine(message: string): string {
  return message.split('\n')[0]!.trim();
}
