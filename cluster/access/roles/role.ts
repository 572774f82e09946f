/**
 * `kind: role`: what a user may reach, as YAML.
 *
 * ```yaml
 * kind: role
 * version: v1
 * metadata:
 *   name: dev
 *   description: Developers; staging hosts and databases, never root
 * spec:
 *   allow:
 *     logins: ['{{internal.logins}}', ubuntu]       # SSH logins (certificate principals)
 *     node_labels: { env: [staging, dev], team: '^web-.*$' }
 *     db_labels: { '*': '*' }
 *     db_users: ['{{email.local(external.email)}}']
 *     db_names: ['*']
 *     kubernetes_labels: { env: staging }
 *     kubernetes_groups: [developers]
 *     kubernetes_users: []
 *     app_labels: { team: web }
 *     desktop_labels: { os: windows }
 *     desktop_logins: [Administrator]
 *     cluster_labels: { env: staging }             # which leaf clusters (trusted clusters)
 *     resources:                                   # the admin API (pctl)
 *       - { kinds: [node, db], verbs: [list, read] }
 *   deny:
 *     logins: [root]
 *     node_labels: { env: prod }
 *   options:
 *     max_session_ttl: 8h
 *     permit_port_forwarding: true
 *     permit_agent_forwarding: false
 *     record_session: true
 *     require_mfa: false
 * ```
 *
 * Semantics (the engine is access-checker.ts):
 * - Nothing is allowed unless some role allows it; any matching deny wins over every allow.
 * - Allow: one role must match the resource's labels *and* (where the protocol has one)
 *   list the login / database user / database name asked for.
 * - Deny: each field is its own condition. Deny labels that match a resource deny it for
 *   every login; a denied login is denied on every resource. `'*'` in a deny list
 *   denies every value.
 * - Label selectors: see label-matcher.ts (`*`, literal, `^regex$`, lists = any of;
 *   `'*': '*'` = everything; empty = nothing). Any string value may hold one trait
 *   template (traits.ts); label keys may not.
 * - `'*'` in allow lists is accepted only for db_users and db_names: an SSH or desktop
 *   login, or a Kubernetes user/group, must be a name that can be put in a certificate.
 *   Values written `^…$` are refused in these lists (they are matched literally, and a
 *   regex there would silently match nothing).
 * - options are combined strictly across a user's roles: the shortest max_session_ttl
 *   (default 12h), forwarding only if some role permits it and none sets it false,
 *   recording unless every role sets record_session: false, MFA if any role requires it.
 */
import { z } from 'zod';
import { parseWith } from '../../common/validation.ts';
import { defineKind } from '../resources/registry.ts';
import type { Resource } from '../resources/resource.ts';
import { parseDuration } from '../../common/duration.ts';
import { compileRegex, isRegexValue } from './label-matcher.ts';
import { hasTemplate, parseTemplate } from './traits.ts';

export const resourceVerbs = ['list', 'read', 'create', 'update', 'delete'] as const;
export type ResourceVerb = (typeof resourceVerbs)[number];

const maxStringLength = 1024;
const minSessionTtlMs = 60_000;
const maxSessionTtlMs = 366 * 86_400_000;

/** Adds an issue if the value's template (if any) does not parse; returns the parse for further checks. */
function checkTemplate(value: string, ctx: z.core.$RefinementCtx<string>): ReturnType<typeof parseTemplate> | undefined {
  try {
    return parseTemplate(value);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: `invalid template ${(error as Error).message}` });
    return undefined;
  }
}

const baseString = z
  .string({ error: 'expected a string' })
  .min(1, { error: 'must not be empty' })
  .max(maxStringLength, { error: `must be at most ${maxStringLength} characters` })
  .regex(/^[^\u0000-\u001f\u007f]*$/, { error: 'must not contain control characters' });

/** A label selector value: `*`, a literal, or `^regex$`, each possibly around one trait template. */
const labelValueSchema = baseString.superRefine((value, ctx) => {
  const template = checkTemplate(value, ctx);
  if (!template) return;
  if (value.startsWith('^') && !isRegexValue(value)) {
    ctx.addIssue({ code: 'custom', message: `"${value}" starts with ^ but does not end with $; write a whole regex ^…$, or drop the ^ for a literal` });
    return;
  }
  if (!isRegexValue(value)) return;
  // Validate the regex with the trait part replaced by a plain word; trait values are escaped when expanded.
  const probe = template.expression ? `${template.prefix}x${template.suffix}` : value;
  try {
    compileRegex(probe);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: (error as Error).message });
  }
});

const labelKeySchema = z
  .string()
  .min(1, { error: 'label keys must not be empty' })
  .max(63, { error: 'label keys must be at most 63 characters' })
  .refine((key) => !hasTemplate(key), { error: 'label keys cannot hold templates; template the value instead' })
  .regex(/^(?:\*|[A-Za-z0-9._/-]*)$/, { error: "label keys are '*' or letters, digits, '.', '_', '/' and '-'" });

/** `key: value | [values]`; `'*'` as a key only with the value `'*'`. */
export const labelSelectorSchema = z
  .record(
    labelKeySchema,
    z.union([labelValueSchema, z.array(labelValueSchema).min(1, { error: 'must list at least one value' })], {
      error: 'expected a string or a list of strings',
    }),
  )
  .superRefine((selector, ctx) => {
    const star = selector['*'];
    if (star !== undefined && !(star === '*' || (Array.isArray(star) && star.length === 1 && star[0] === '*'))) {
      ctx.addIssue({ code: 'custom', path: ['*'], message: "the '*' key only takes the value '*' (every resource)" });
    }
  });

/** A list of names (logins, database users…); `*` only where `wildcard` allows it; no regexes. */
function nameListSchema(wildcard: boolean) {
  const item = baseString.superRefine((value, ctx) => {
    if (!checkTemplate(value, ctx)) return;
    if (value === '*' && !wildcard) {
      ctx.addIssue({ code: 'custom', message: "'*' is not allowed here; list the names (it is allowed under deny)" });
    } else if (isRegexValue(value) && !hasTemplate(value)) {
      ctx.addIssue({ code: 'custom', message: `regexes are not supported here; "${value}" would be matched literally` });
    }
  });
  return z.array(item);
}

const kindNameSchema = z
  .string()
  .regex(/^(?:\*|[a-z][a-z0-9_]*)$/, { error: "expected a resource kind such as role or user, or '*'" });

const resourceRuleSchema = z.strictObject({
  kinds: z.array(kindNameSchema).min(1, { error: 'must list at least one kind' }),
  verbs: z
    .array(z.enum([...resourceVerbs, '*'], { error: `expected one of ${resourceVerbs.join(', ')} or '*'` }))
    .min(1, { error: 'must list at least one verb' }),
});

function conditionsSchema(side: 'allow' | 'deny') {
  const deny = side === 'deny';
  return z.strictObject({
    logins: nameListSchema(deny).optional(),
    node_labels: labelSelectorSchema.optional(),
    db_labels: labelSelectorSchema.optional(),
    db_users: nameListSchema(true).optional(),
    db_names: nameListSchema(true).optional(),
    kubernetes_labels: labelSelectorSchema.optional(),
    kubernetes_groups: nameListSchema(deny).optional(),
    kubernetes_users: nameListSchema(deny).optional(),
    app_labels: labelSelectorSchema.optional(),
    desktop_labels: labelSelectorSchema.optional(),
    desktop_logins: nameListSchema(deny).optional(),
    cluster_labels: labelSelectorSchema.optional(),
    resources: z.array(resourceRuleSchema).optional(),
  });
}

const durationSchema = z.string().superRefine((value, ctx) => {
  let ms: number;
  try {
    ms = parseDuration(value);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: (error as Error).message });
    return;
  }
  if (ms < minSessionTtlMs || ms > maxSessionTtlMs) {
    ctx.addIssue({ code: 'custom', message: `must be between 1m and 366d, got ${value}` });
  }
});

export const roleOptionsSchema = z.strictObject({
  /** Longest certificate this role lets a user get, e.g. `8h`; default 12h. */
  max_session_ttl: durationSchema.optional(),
  /** SSH port forwarding; default false. `false` here forbids it even if another role permits it. */
  permit_port_forwarding: z.boolean().optional(),
  /** SSH agent forwarding; default false, combined like port forwarding. */
  permit_agent_forwarding: z.boolean().optional(),
  /** Session recording; default true. Off only if every role of the user sets it false. */
  record_session: z.boolean().optional(),
  /** Require a fresh MFA check per session; on if any role sets it. */
  require_mfa: z.boolean().optional(),
});

export const roleConditionsSchema = conditionsSchema('allow');

export const roleSpecSchema = z.strictObject({
  allow: roleConditionsSchema.optional(),
  deny: conditionsSchema('deny').optional(),
  options: roleOptionsSchema.optional(),
});

export type RoleConditions = z.output<typeof roleConditionsSchema>;
export type RoleOptions = z.output<typeof roleOptionsSchema>;
export type RoleSpec = z.output<typeof roleSpecSchema>;
export type Role = Resource<'role', RoleSpec>;

/** The condition fields that are label selectors. */
export type LabelField = 'node_labels' | 'db_labels' | 'kubernetes_labels' | 'app_labels' | 'desktop_labels' | 'cluster_labels';
/** The condition fields that are lists of names. */
export type NameField = 'logins' | 'db_users' | 'db_names' | 'kubernetes_groups' | 'kubernetes_users' | 'desktop_logins';

export const roleKind = defineKind({ kind: 'role', spec: roleSpecSchema, summarize: summarizeRole });

/** Builds a role in code (built-in roles, tests), validated like one read from YAML. */
export function newRole(name: string, spec: RoleSpec, metadata: Omit<Role['metadata'], 'name'> = {}): Role {
  return parseWith(roleKind.schema, { kind: 'role', version: 'v1', metadata: { ...metadata, name }, spec }, `role "${name}"`);
}

function summarizeRole(role: Role): string {
  const parts: string[] = [];
  const logins = role.spec.allow?.logins ?? [];
  if (logins.length > 0) parts.push(`logins=${logins.join(',')}`);
  const denied = role.spec.deny?.logins ?? [];
  if (denied.length > 0) parts.push(`deny logins=${denied.join(',')}`);
  const rules = role.spec.allow?.resources ?? [];
  if (rules.length > 0) parts.push(`admin=${rules.map((r) => `${r.kinds.join('|')}:${r.verbs.join('|')}`).join(',')}`);
  if (role.spec.options?.max_session_ttl) parts.push(`ttl=${role.spec.options.max_session_ttl}`);
  return parts.join(' ');
}
