import { PosternError } from '../../protocols/errors.ts';

/**
 * Errors of the agent's inventory: host facts, command labels and their configuration.
 */

/** `agent.labels` and `agent.command_labels` both define a key, or a command label is badly configured. */
export class LabelConfigError extends PosternError {
  /** The label key at fault. */
  readonly label: string;

  constructor(label: string, message: string, options?: { cause?: unknown }) {
    super('PST_LABEL_CONFIG', message, options);
    this.label = label;
  }
}

/** Why one run of a label command produced no value. */
export type CommandFailure = 'not-found' | 'not-permitted' | 'exit' | 'signal' | 'timeout' | 'too-much-output' | 'spawn';

/** One run of a label command failed; `reason` is short enough to become the label value. */
export class CommandRunError extends PosternError {
  readonly failure: CommandFailure;
  /** The first line of what the command wrote to stderr, if anything; for logs only. */
  readonly stderr: string;

  constructor(failure: CommandFailure, reason: string, stderr = '', options?: { cause?: unknown }) {
    super('PST_COMMAND_LABEL_FAILED', reason, options);
    this.failure = failure;
    this.stderr = stderr;
  }
}
