/**
 * Trait templates: a role value that names a user's traits instead of a fixed string,
 * so one role serves many users.
 *
 * ```yaml
 * logins: ['{{internal.logins}}', 'ubuntu']
 * db_users: ['{{email.local(external.email)}}']
 * node_labels:
 *   team: '{{external.team}}'                # each of the user's teams, matched literally
 *   env: '^{{external.env}}-[0-9]+$'         # a regex around a trait: the trait part is escaped
 * kubernetes_groups: ['{{regexp.replace(external.groups, "^k8s-(.*)$", "$1")}}']
 * ```
 *
 * Grammar (one `{{ }}` per value; text before and after it is kept):
 *
 *   expr    := trait | func '(' expr [',' string]* ')'
 *   trait   := ('internal' | 'external') '.' ident | ('internal' | 'external') '[' string ']'
 *   func    := email.local | regexp.replace | strings.lower | strings.upper
 *   string  := a double-quoted JSON string
 *
 * A trait is a list of strings, so a template expands to zero or more values: one per
 * trait value, and none when the user lacks the trait (a role with
 * `logins: ['{{internal.logins}}']` grants no login to a user without `logins`).
 * `internal.x` and `external.x` read the same trait map (`traits.x`); `internal` only
 * accepts the traits Postern itself sets (internalTraits), so a typo is caught at parse.
 *
 * Regex safety (decision): values that come from traits are data, never pattern.
 * When a template sits inside a regex value (`^…$`) the trait part is escaped with
 * escapeRegExp; when the value is not a regex, the caller treats every expanded value
 * as a literal string, even one that happens to look like `^.*$` or `*`. Otherwise a
 * user who can set their own SSO attribute could widen a role to every resource.
 */
import { BadInputError } from '../../../protocols/errors.ts';
import { regexErrorReason } from './label-matcher.ts';

/** Traits Postern sets on users itself; `{{internal.<name>}}` must name one of these. */
export const internalTraits = [
  'logins',
  'db_users',
  'db_names',
  'kubernetes_users',
  'kubernetes_groups',
  'desktop_logins',
] as const;

export type Traits = Readonly<Record<string, readonly string[]>>;

export type TraitExpression =
  | { type: 'trait'; namespace: 'internal' | 'external'; name: string }
  | { type: 'email.local' | 'strings.lower' | 'strings.upper'; arg: TraitExpression }
  | { type: 'regexp.replace'; arg: TraitExpression; pattern: RegExp; replacement: string };

/** A parsed value: literal text, or text around one trait expression. */
export interface Template {
  prefix: string;
  expression?: TraitExpression;
  suffix: string;
}

/** A value whose `{{ }}` template does not parse; the message quotes the value and says what to write. */
export class TemplateError extends BadInputError {}

/** True when the value contains template braces (well-formed or not). */
export function hasTemplate(value: string): boolean {
  return value.includes('{{') || value.includes('}}');
}

/** Parses one role value; throws TemplateError for malformed templates. */
export function parseTemplate(value: string): Template {
  const open = value.indexOf('{{');
  const close = value.indexOf('}}');
  if (open < 0) {
    if (close >= 0) throw new TemplateError(`"${value}": '}}' without an opening '{{'`);
    return { prefix: value, suffix: '' };
  }
  if (close >= 0 && close < open) throw new TemplateError(`"${value}": '}}' without an opening '{{'`);
  const end = value.indexOf('}}', open + 2);
  if (end < 0) throw new TemplateError(`"${value}": '{{' without a closing '}}'`);
  const suffix = value.slice(end + 2);
  if (hasTemplate(suffix)) throw new TemplateError(`"${value}": only one {{…}} template is allowed per value`);
  const inner = value.slice(open + 2, end);
  if (inner.includes('{{')) throw new TemplateError(`"${value}": templates cannot be nested`);
  const parser = new _ExpressionParser(inner, value);
  return { prefix: value.slice(0, open), expression: parser.parse(), suffix };
}

export interface ExpandOptions {
  /** Applied to each value taken from a trait (not to the literal text around it). */
  escape?: (traitValue: string) => string;
}

/** Expands a value against the user's traits into zero or more strings (deduplicated, empty ones dropped). */
export function expandTemplate(template: Template | string, traits: Traits, options: ExpandOptions = {}): string[] {
  const parsed = typeof template === 'string' ? parseTemplate(template) : template;
  if (!parsed.expression) return parsed.prefix === '' ? [] : [parsed.prefix];
  const escape = options.escape ?? ((v: string) => v);
  const out = new Set<string>();
  for (const value of evaluate(parsed.expression, traits)) {
    if (value === '') continue;
    out.add(`${parsed.prefix}${escape(value)}${parsed.suffix}`);
  }
  return [...out];
}

/** Escapes every regex metacharacter so the string matches only itself. */
export function escapeRegExp(value: string): string {
  return value.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
}

function evaluate(expression: TraitExpression, traits: Traits): string[] {
  switch (expression.type) {
    case 'trait':
      return [...(Object.hasOwn(traits, expression.name) ? (traits[expression.name] ?? []) : [])];
    case 'email.local':
      // Values that are not e-mail addresses yield nothing rather than failing the whole role.
      return evaluate(expression.arg, traits).flatMap((v) => {
        const at = v.lastIndexOf('@');
        return at > 0 && at < v.length - 1 ? [v.slice(0, at)] : [];
      });
    case 'strings.lower':
      return evaluate(expression.arg, traits).map((v) => v.toLowerCase());
    case 'strings.upper':
      return evaluate(expression.arg, traits).map((v) => v.toUpperCase());
    case 'regexp.replace': {
      // As in Teleport, values that do not match the pattern are dropped.
      const global = new RegExp(expression.pattern.source, 'g');
      return evaluate(expression.arg, traits).flatMap((v) =>
        expression.pattern.test(v) ? [v.replace(global, expression.replacement)] : [],
      );
    }
  }
}

type Token = { kind: 'ident' | 'string' | 'punct'; text: string };

const functionArity: Record<string, number> = {
  'email.local': 0,
  'strings.lower': 0,
  'strings.upper': 0,
  'regexp.replace': 2,
};

class _ExpressionParser {
  readonly #tokens: Token[];
  readonly #value: string;
  #pos = 0;

  constructor(inner: string, value: string) {
    this.#value = value;
    this.#tokens = this.#tokenize(inner);
  }

  parse(): TraitExpression {
    if (this.#tokens.length === 0) this.#fail('empty template; write e.g. {{internal.logins}} or {{external.team}}');
    const expression = this.#expression();
    if (this.#pos < this.#tokens.length) this.#fail(`unexpected "${this.#tokens[this.#pos]!.text}"`);
    return expression;
  }

  #expression(): TraitExpression {
    const head = this.#take('ident', 'a trait such as internal.logins or external.team').text;
    if (this.#peek('[')) {
      this.#pos++;
      const name = this.#take('string', 'a quoted trait name').text;
      this.#take(']', "']'");
      return this.#trait(head, name);
    }
    this.#take('.', `'.' after "${head}"`);
    const name = this.#take('ident', `a name after "${head}."`).text;
    if (!this.#peek('(')) return this.#trait(head, name);
    const fn = `${head}.${name}`;
    const arity = functionArity[fn];
    if (arity === undefined) {
      this.#fail(`unknown function ${fn}; known: ${Object.keys(functionArity).join(', ')}`);
    }
    this.#pos++;
    const arg = this.#expression();
    const strings: string[] = [];
    while (this.#peek(',')) {
      this.#pos++;
      strings.push(this.#take('string', 'a double-quoted string argument').text);
    }
    this.#take(')', "')'");
    if (strings.length !== arity) this.#fail(`${fn} takes ${arity + 1} argument(s), got ${strings.length + 1}`);
    if (fn !== 'regexp.replace') return { type: fn as 'email.local', arg };
    let pattern: RegExp;
    try {
      pattern = new RegExp(strings[0]!);
    } catch (error) {
      this.#fail(`invalid regular expression "${strings[0]}" in regexp.replace: ${regexErrorReason(error)}`);
    }
    return { type: 'regexp.replace', arg, pattern, replacement: strings[1]! };
  }

  #trait(namespace: string, name: string): TraitExpression {
    if (namespace !== 'internal' && namespace !== 'external') {
      this.#fail(`unknown namespace "${namespace}"; use internal.<name> or external.<name>`);
    }
    if (name === '') this.#fail('empty trait name');
    if (namespace === 'internal' && !(internalTraits as readonly string[]).includes(name)) {
      this.#fail(`unknown internal trait "${name}"; known: ${internalTraits.join(', ')} (use external.${name} for SSO traits)`);
    }
    return { type: 'trait', namespace, name };
  }

  #peek(punct: string): boolean {
    const token = this.#tokens[this.#pos];
    return token !== undefined && token.kind === 'punct' && token.text === punct;
  }

  #take(kind: 'ident' | 'string' | string, what: string): Token {
    const token = this.#tokens[this.#pos];
    if (token === undefined) return this.#fail(`expected ${what} before the end`);
    const ok = kind === 'ident' || kind === 'string' ? token.kind === kind : token.kind === 'punct' && token.text === kind;
    if (!ok) this.#fail(`expected ${what}, found "${token.text}"`);
    this.#pos++;
    return token;
  }

  #tokenize(inner: string): Token[] {
    const tokens: Token[] = [];
    const pattern = /\s+|([A-Za-z_][A-Za-z0-9_]*)|("(?:[^"\\]|\\.)*")|([.()[\],])|(.)/gy;
    for (const match of inner.matchAll(pattern)) {
      if (match[1] !== undefined) tokens.push({ kind: 'ident', text: match[1] });
      else if (match[2] !== undefined) tokens.push({ kind: 'string', text: this.#unquote(match[2]) });
      else if (match[3] !== undefined) tokens.push({ kind: 'punct', text: match[3] });
      else if (match[4] !== undefined) this.#fail(`unexpected character "${match[4]}"`);
    }
    return tokens;
  }

  #unquote(quoted: string): string {
    try {
      return JSON.parse(quoted) as string;
    } catch {
      return this.#fail(`bad string ${quoted}`);
    }
  }

  #fail(message: string): never {
    throw new TemplateError(`"${this.#value}": ${message}`);
  }
}
