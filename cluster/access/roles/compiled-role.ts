/**
 * A role with the user's traits expanded and every selector compiled: what the
 * AccessChecker evaluates. Built once per checker, so decisions do no parsing.
 */
import {
  CompiledSelector,
  compileRegex,
  compileValue,
  isRegexValue,
  type LabelSelector,
  type LabelValueMatcher,
} from './label-matcher.ts';
import type { LabelField, NameField, Role, RoleConditions, RoleOptions } from './role.ts';
import { escapeRegExp, expandTemplate, hasTemplate, type Traits } from './traits.ts';

/** Expanded names; `wildcard` only from a literal `*` written in the role, never from a trait value. */
export interface NameSet {
  readonly wildcard: boolean;
  readonly values: ReadonlySet<string>;
}

export interface CompiledRule {
  readonly kinds: ReadonlySet<string>;
  readonly verbs: ReadonlySet<string>;
}

export type CompiledConditions = { readonly [F in LabelField]: CompiledSelector } & {
  readonly [F in NameField]: NameSet;
} & { readonly resources: readonly CompiledRule[] };

export interface CompiledRole {
  readonly name: string;
  readonly allow: CompiledConditions;
  readonly deny: CompiledConditions;
  readonly options: RoleOptions;
}

const labelFields: readonly LabelField[] = [
  'node_labels',
  'db_labels',
  'kubernetes_labels',
  'app_labels',
  'desktop_labels',
  'cluster_labels',
];
const nameFields: readonly NameField[] = [
  'logins',
  'db_users',
  'db_names',
  'kubernetes_groups',
  'kubernetes_users',
  'desktop_logins',
];

/** Expands the role's templates against `traits` and compiles its selectors. */
export function compileRole(role: Role, traits: Traits): CompiledRole {
  return {
    name: role.metadata.name,
    allow: compileConditions(role.spec.allow ?? {}, traits),
    deny: compileConditions(role.spec.deny ?? {}, traits),
    options: role.spec.options ?? {},
  };
}

/** True when the set holds `value` or a wildcard. */
export function nameSetHas(set: NameSet, value: string): boolean {
  return set.wildcard || set.values.has(value);
}

function compileConditions(conditions: RoleConditions, traits: Traits): CompiledConditions {
  const out: Record<string, unknown> = {};
  for (const field of labelFields) out[field] = compileTemplatedSelector(conditions[field] ?? {}, traits);
  for (const field of nameFields) out[field] = compileNames(conditions[field] ?? [], traits);
  out['resources'] = (conditions.resources ?? []).map((rule) => ({
    kinds: new Set(rule.kinds),
    verbs: new Set(rule.verbs),
  }));
  return out as CompiledConditions;
}

function compileNames(raw: readonly string[], traits: Traits): NameSet {
  let wildcard = false;
  const values = new Set<string>();
  for (const value of raw) {
    if (!hasTemplate(value)) {
      if (value === '*') wildcard = true;
      else values.add(value);
      continue;
    }
    for (const expanded of expandTemplate(value, traits)) values.add(expanded);
  }
  return { wildcard, values };
}

/**
 * Compiles a selector whose values may hold templates. A templated regex value gets the
 * trait part escaped; any other templated value yields literal matchers only, so a
 * trait value such as `*` or `^.*$` matches only itself (see traits.ts).
 */
function compileTemplatedSelector(selector: LabelSelector, traits: Traits): CompiledSelector {
  const entries = Object.entries(selector).map(([key, value]) => {
    const values: LabelValueMatcher[] = [];
    for (const raw of typeof value === 'string' ? [value] : value) {
      if (!hasTemplate(raw)) {
        values.push(compileValue(raw));
      } else if (isRegexValue(raw)) {
        for (const source of expandTemplate(raw, traits, { escape: escapeRegExp })) {
          try {
            values.push({ type: 'regex', source, regex: compileRegex(source) });
          } catch {
            // Validated at parse with a stand-in word and trait values are escaped, so this
            // cannot normally happen; an unusable value matches nothing rather than failing.
          }
        }
      } else {
        for (const literal of expandTemplate(raw, traits)) values.push({ type: 'literal', value: literal });
      }
    }
    return { key, values };
  });
  return new CompiledSelector(entries);
}
