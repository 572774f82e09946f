/**
 * Labels whose values come from commands the operator configures
 * (`agent.command_labels: { kernel: { command: [uname, -r], period: 1h } }`).
 *
 * Each command runs at start and then `period` after its previous run finished (runs of
 * one label never overlap), without a shell, for at most min(timeout, period), with its
 * stdout capped. The value is stdout with surrounding whitespace trimmed.
 *
 * When a run fails the value becomes `error: <reason>`, where the reason is one of
 * `exit code N`, `killed by SIGNAL`, `timed out after 10s`, `output over 4096 bytes`,
 * `command not found: X`, `permission denied: X`. The label stays present, so a selector
 * on the label stops matching (access fails closed) and the failure is visible in
 * `pctl nodes ls`. A failure is logged when the value changes, not on every run.
 * A label has no value until its first run ends; `start()` resolves after that.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from '../../cluster/common/logger.ts';
import { parseDuration } from '../../cluster/common/duration.ts';
import { CommandRunError, LabelConfigError } from './errors.ts';
import { runCommand } from './run-command.ts';

/** One `agent.command_labels` entry as the config file writes it. */
export interface CommandLabelSpec {
  command: readonly string[];
  /** A duration such as `30s`, `1m`, `1h`; at least 1s. */
  period: string;
}

export interface CommandLabelsOptions {
  logger: Logger;
  /** Upper bound on one run; the period bounds it too. Default 10 s. */
  timeoutMs?: number;
  /** Largest stdout accepted; more is an error. Default 4 KiB. */
  maxOutputBytes?: number;
}

export interface CommandLabelsEvents {
  /** A label's value changed (also its first value); send a heartbeat early. */
  change: [name: string, value: string, previous: string | undefined];
}

/** Prefix of a label value that reports a failed run instead of output. */
export const commandLabelErrorPrefix = 'error: ';

const defaultTimeoutMs = 10_000;
const defaultMaxOutputBytes = 4096;
const minPeriodMs = 1000;

interface _Label {
  readonly name: string;
  readonly argv: readonly string[];
  readonly periodMs: number;
  readonly timeoutMs: number;
  value?: string;
  timer?: NodeJS.Timeout;
  inFlight?: Promise<void>;
}

/** Runs the configured label commands on their periods and keeps their latest values. */
export class CommandLabels extends EventEmitter<CommandLabelsEvents> {
  readonly #labels: _Label[];
  readonly #log: Logger;
  readonly #maxOutputBytes: number;
  #abort = new AbortController();
  #running = false;

  /** Validates every spec; throws LabelConfigError naming the label at fault. */
  constructor(specs: Readonly<Record<string, CommandLabelSpec>>, options: CommandLabelsOptions) {
    super();
    this.#log = options.logger.child({ component: 'command-labels' });
    this.#maxOutputBytes = options.maxOutputBytes ?? defaultMaxOutputBytes;
    const timeoutMs = options.timeoutMs ?? defaultTimeoutMs;
    this.#labels = Object.entries(specs).map(([name, spec]) => _validate(name, spec, timeoutMs));
  }

  /** Every configured label key, whether or not it has a value yet. */
  names(): string[] {
    return this.#labels.map((label) => label.name);
  }

  /** The latest value of every label that has one. */
  current(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const label of this.#labels) if (label.value !== undefined) out[label.name] = label.value;
    return out;
  }

  /** Runs every command once and resolves when all have a value; they then repeat on their periods. */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    this.#abort = new AbortController();
    await this.refresh();
  }

  /** Runs every command now (joining runs already under way) and restarts their periods. */
  async refresh(): Promise<void> {
    await Promise.all(this.#labels.map((label) => this.#run(label)));
  }

  /** Cancels the timers and kills commands still running; their results are dropped. */
  stop(): void {
    this.#running = false;
    this.#abort.abort(new Error('command labels stopped'));
    for (const label of this.#labels) clearTimeout(label.timer);
  }

  #run(label: _Label): Promise<void> {
    clearTimeout(label.timer);
    label.inFlight ??= this.#runOnce(label).finally(() => {
      label.inFlight = undefined;
      if (this.#running) {
        label.timer = setTimeout(() => void this.#run(label), label.periodMs);
        label.timer.unref();
      }
    });
    return label.inFlight;
  }

  async #runOnce(label: _Label): Promise<void> {
    const signal = this.#abort.signal;
    let value: string;
    let failure: CommandRunError | undefined;
    try {
      value = await runCommand(label.argv, { timeoutMs: label.timeoutMs, maxOutputBytes: this.#maxOutputBytes, signal });
    } catch (error) {
      if (signal.aborted) return;
      failure = error instanceof CommandRunError ? error : new CommandRunError('spawn', String(error), '', { cause: error });
      value = commandLabelErrorPrefix + failure.message;
    }
    if (signal.aborted) return;
    this.#update(label, value, failure);
  }

  #update(label: _Label, value: string, failure: CommandRunError | undefined): void {
    const previous = label.value;
    if (value === previous) return;
    label.value = value;
    if (failure) {
      this.#log.warn({ label: label.name, command: label.argv, reason: failure.message, stderr: failure.stderr || undefined }, 'command label failed');
    } else if (previous?.startsWith(commandLabelErrorPrefix)) {
      this.#log.info({ label: label.name, value }, 'command label recovered');
    } else {
      this.#log.debug({ label: label.name, value, previous }, 'command label changed');
    }
    this.emit('change', label.name, value, previous);
  }
}

function _validate(name: string, spec: CommandLabelSpec, timeoutMs: number): _Label {
  if (spec.command.length === 0 || spec.command[0] === '') {
    throw new LabelConfigError(name, `command label "${name}": command is empty; write e.g. command: [uname, -r]`);
  }
  let periodMs: number;
  try {
    periodMs = parseDuration(spec.period);
  } catch (error) {
    throw new LabelConfigError(name, `command label "${name}": period: ${(error as Error).message}`, { cause: error });
  }
  if (periodMs < minPeriodMs) {
    throw new LabelConfigError(name, `command label "${name}": period ${spec.period} is shorter than 1s; each run starts a process`);
  }
  return { name, argv: [...spec.command], periodMs, timeoutMs: Math.min(timeoutMs, periodMs) };
}
