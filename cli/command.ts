/**
 * A small command tree for the four programs. Each command declares its options for
 * `util.parseArgs`, a one-line summary, a usage line and examples, so `--help` teaches
 * by example. Commands load their implementation lazily: psh runs as an SSH
 * ProxyCommand, where start-up time is latency the user feels.
 */
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { PosternError } from '../protocols/errors.ts';

export type ParsedOptions = Record<string, string | boolean | string[] | undefined>;

export interface Invocation {
  options: ParsedOptions;
  positionals: string[];
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  examples?: string[];
  options?: ParseArgsOptionsConfig;
  /** Names accepted in place of `name`. */
  aliases?: string[];
  /** Sub-commands; when present, `run` is optional and serves a bare invocation. */
  commands?: Command[];
  /** After this many positionals, the rest of the line is taken verbatim (`psh ssh NODE ls -l`). */
  verbatimAfter?: number;
  run?: (invocation: Invocation) => Promise<number | void>;
}

/** An error that carries the exit code the program should end with. */
export class UsageError extends PosternError {
  constructor(message: string) {
    super('PST_USAGE', message);
  }
}

const helpOption: ParseArgsOptionsConfig = { help: { type: 'boolean', short: 'h' } };

/** Renders `--help` for a command: summary, usage, options, sub-commands, examples. */
export function renderHelp(command: Command, path: string[]): string {
  const lines = [`${path.join(' ')} — ${command.summary}`, '', `Usage: ${command.usage}`];
  if (command.commands?.length) {
    lines.push('', 'Commands:');
    const width = Math.max(...command.commands.map((c) => c.name.length));
    for (const sub of command.commands) lines.push(`  ${sub.name.padEnd(width)}  ${sub.summary}`);
    lines.push('', `Run '${path.join(' ')} COMMAND --help' for a command's options.`);
  }
  const options = Object.entries(command.options ?? {});
  if (options.length) {
    lines.push('', 'Options:');
    for (const [name, spec] of options) {
      const flag = `${spec.short ? `-${spec.short}, ` : '    '}--${name}${spec.type === 'string' ? ' VALUE' : ''}`;
      const description = (spec as { description?: string }).description ?? '';
      lines.push(`  ${flag.padEnd(28)} ${description}`);
    }
  }
  if (command.examples?.length) {
    lines.push('', 'Examples:');
    for (const example of command.examples) lines.push(`  ${example}`);
  }
  return lines.join('\n') + '\n';
}

function findSub(command: Command, name: string): Command | undefined {
  return command.commands?.find((c) => c.name === name || c.aliases?.includes(name));
}

/** Runs `argv` against a command tree and returns the exit code; prints errors as one clear line. */
export async function runCommand(root: Command, argv: string[], path: string[] = [root.name]): Promise<number> {
  const [first, ...rest] = argv;
  if (first !== undefined && !first.startsWith('-')) {
    const sub = findSub(root, first);
    if (sub) return runCommand(sub, rest, [...path, sub.name]);
  }
  // `pctl -c FILE status`: options given before the sub-command move after it.
  const subIndex = root.commands ? argv.findIndex((arg, i) => i > 0 && !arg.startsWith('-') && findSub(root, arg) !== undefined) : -1;
  if (first?.startsWith('-') && subIndex > 0 && first !== '--help' && first !== '-h') {
    const sub = findSub(root, argv[subIndex] ?? '') as Command;
    return runCommand(sub, [...argv.slice(subIndex + 1), ...argv.slice(0, subIndex)], [...path, sub.name]);
  }
  if (!root.run || (root.commands && first === undefined && !root.run)) {
    if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
      process.stdout.write(renderHelp(root, path));
      return first === undefined ? 2 : 0;
    }
    const known = (root.commands ?? []).map((c) => c.name).join(', ');
    process.stderr.write(`${path.join(' ')}: unknown command "${first}"; commands: ${known}\nRun '${path.join(' ')} --help' for usage.\n`);
    return 2;
  }
  let invocation: Invocation;
  try {
    const parsed = parseArgs({
      args: root.verbatimAfter === undefined ? argv : endOptions(argv, root.verbatimAfter, root.options ?? {}),
      options: { ...helpOption, ...stripDescriptions(root.options ?? {}) },
      allowPositionals: true,
      strict: true,
    });
    invocation = { options: parsed.values as ParsedOptions, positionals: parsed.positionals };
  } catch (error) {
    process.stderr.write(`${path.join(' ')}: ${(error as Error).message}\nRun '${path.join(' ')} --help' for usage.\n`);
    return 2;
  }
  if (invocation.options.help) {
    process.stdout.write(renderHelp(root, path));
    return 0;
  }
  try {
    return (await root.run(invocation)) ?? 0;
  } catch (error) {
    return reportError(path, error);
  }
}

function stripDescriptions(options: ParseArgsOptionsConfig): ParseArgsOptionsConfig {
  const out: ParseArgsOptionsConfig = {};
  for (const [name, spec] of Object.entries(options)) {
    const { description: _description, ...rest } = spec as typeof spec & { description?: string };
    out[name] = rest;
  }
  return out;
}

/** Prints an error the way every program does: `program: message`, code in debug mode; returns the exit code. */
export function reportError(path: string[], error: unknown): number {
  if (error instanceof UsageError) {
    process.stderr.write(`${path.join(' ')}: ${error.message}\nRun '${path.join(' ')} --help' for usage.\n`);
    return 2;
  }
  if (error instanceof PosternError) {
    process.stderr.write(`${path[0]}: ${error.message}${process.env.POSTERN_DEBUG ? ` [${error.code}]` : ''}\n`);
    return 1;
  }
  process.stderr.write(`${path[0]}: unexpected error: ${(error as Error)?.stack ?? String(error)}\n`);
  return 1;
}

/**
 * Inserts `--` after the `count`-th positional, so what follows is not read as options;
 * with 0, before the first word that is not one of the command's own options
 * (`psh scp --proxy P -r dir node:` passes `-r dir node:` on).
 */
function endOptions(argv: string[], count: number, options: ParseArgsOptionsConfig): string[] {
  const takesValue = new Set<string>();
  const known = new Set<string>(['--help', '-h']);
  for (const [name, config] of Object.entries(options)) {
    known.add(`--${name}`);
    if (config.short) known.add(`-${config.short}`);
    if (config.type !== 'string') continue;
    takesValue.add(`--${name}`);
    if (config.short) takesValue.add(`-${config.short}`);
  }
  let seen = 0;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') return argv;
    if (count === 0) {
      if (!known.has(arg.split('=')[0]!)) return [...argv.slice(0, i), '--', ...argv.slice(i)];
      if (takesValue.has(arg)) i++;
      continue;
    }
    if (arg.startsWith('-') && arg !== '-') {
      if (takesValue.has(arg)) i++;
      continue;
    }
    if (++seen === count) return i + 1 < argv.length ? [...argv.slice(0, i + 1), '--', ...argv.slice(i + 1)] : argv;
  }
  return argv;
}

/** Declares an option with a help description (parseArgs ignores the extra field once stripped). */
export function option(
  type: 'string' | 'boolean',
  description: string,
  extra: { short?: string; multiple?: boolean; default?: string | boolean } = {},
): ParseArgsOptionsConfig[string] {
  return { type, ...extra, description } as ParseArgsOptionsConfig[string];
}

/** Reads a string option, or throws a UsageError naming it when it is required and missing. */
export function stringOption(invocation: Invocation, name: string, required: true): string;
export function stringOption(invocation: Invocation, name: string, required?: false): string | undefined;
export function stringOption(invocation: Invocation, name: string, required = false): string | undefined {
  const value = invocation.options[name];
  if (typeof value === 'string') return value;
  if (required) throw new UsageError(`--${name} is required`);
  return undefined;
}
