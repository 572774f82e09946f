/**
 * Label selectors, as roles write them (`node_labels`, `db_labels`, …):
 *
 * ```yaml
 * node_labels:
 *   env: [staging, dev]      # any of these values
 *   team: '^web-[a-z]+$'     # a value written ^…$ is a regex, anchored as a whole
 *   region: '*'              # any value, but the label must be present
 * # '*': '*'                 # every resource, with or without labels
 * ```
 *
 * A resource matches when every key of the selector matches (AND over keys, OR over
 * a key's values). An empty selector matches nothing: access is granted by naming it.
 * Regexes are compiled once and cached.
 */
import { BadInputError } from '../../../protocols/errors.ts';

export type LabelSelector = Readonly<Record<string, string | readonly string[]>>;
export type Labels = Readonly<Record<string, string>>;

export type LabelValueMatcher =
  | { type: 'any' }
  | { type: 'literal'; value: string }
  | { type: 'regex'; source: string; regex: RegExp };

/** A selector with every value compiled; build once (compileSelector), match often. */
export class CompiledSelector {
  readonly entries: ReadonlyArray<{ readonly key: string; readonly values: readonly LabelValueMatcher[] }>;

  constructor(entries: CompiledSelector['entries']) {
    this.entries = entries;
  }
}

const regexCache = new Map<string, RegExp>();
const maxCachedRegexes = 4096;

/** True for a value written as an anchored regex, `^…$`. */
export function isRegexValue(value: string): boolean {
  return value.length >= 2 && value.startsWith('^') && value.endsWith('$');
}

/**
 * Compiles a `^…$` value. The body is wrapped as `^(?:body)$` so an alternation such as
 * `^a|b$` cannot escape the anchors. Throws BadInputError for invalid patterns.
 */
export function compileRegex(source: string): RegExp {
  const cached = regexCache.get(source);
  if (cached) return cached;
  if (!isRegexValue(source)) throw new BadInputError(`"${source}" is not a regex: write it as ^…$`);
  let regex: RegExp;
  try {
    regex = new RegExp(`^(?:${source.slice(1, -1)})$`);
  } catch (error) {
    throw new BadInputError(`invalid regular expression "${source}": ${regexErrorReason(error)}`);
  }
  if (regexCache.size >= maxCachedRegexes) regexCache.clear();
  regexCache.set(source, regex);
  return regex;
}

/** The reason part of a RegExp SyntaxError, without V8's echo of the (wrapped) pattern. */
export function regexErrorReason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const match = /^Invalid regular expression: \/.*\/[a-z]*: (.*)$/s.exec(message);
  return match ? match[1]! : message;
}

/** `*` -> any value, `^…$` -> regex, anything else -> the literal string. */
export function compileValue(raw: string): LabelValueMatcher {
  if (raw === '*') return { type: 'any' };
  if (isRegexValue(raw)) return { type: 'regex', source: raw, regex: compileRegex(raw) };
  return { type: 'literal', value: raw };
}

/** Compiles every value of a selector. */
export function compileSelector(selector: LabelSelector): CompiledSelector {
  return new CompiledSelector(
    Object.entries(selector).map(([key, value]) => ({
      key,
      values: (typeof value === 'string' ? [value] : value).map(compileValue),
    })),
  );
}

/** True when one value matcher accepts `value`. */
export function matchValue(matcher: LabelValueMatcher, value: string): boolean {
  switch (matcher.type) {
    case 'any':
      return true;
    case 'literal':
      return matcher.value === value;
    case 'regex':
      return matcher.regex.test(value);
  }
}

/** True when every key of the selector matches the labels; an empty selector matches nothing. */
export function matchLabels(selector: CompiledSelector | LabelSelector, labels: Labels): boolean {
  const compiled = selector instanceof CompiledSelector ? selector : compileSelector(selector);
  if (compiled.entries.length === 0) return false;
  return compiled.entries.every(({ key, values }) => {
    if (key === '*') {
      // '*': '*' matches everything; '*': other means "some label has such a value".
      if (values.some((m) => m.type === 'any')) return true;
      return Object.values(labels).some((v) => values.some((m) => matchValue(m, v)));
    }
    const value = Object.hasOwn(labels, key) ? labels[key] : undefined;
    return value !== undefined && values.some((m) => matchValue(m, value));
  });
}

/** Renders labels for messages: `env=prod,team=web`, or `no labels`. */
export function formatLabels(labels: Labels): string {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
  return pairs.length === 0 ? 'no labels' : pairs.sort().join(',');
}
