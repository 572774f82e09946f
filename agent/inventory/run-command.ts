/**
 * Runs one label command: no shell, a time limit, a cap on output. The child leads its
 * own process group so a time-out kills whatever it started too (`sh -c 'sleep 9'`
 * would otherwise keep the pipe open and the run alive after the child is gone).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { formatDuration } from '../../cluster/common/duration.ts';
import { CommandRunError } from './errors.ts';

export interface RunCommandOptions {
  /** Kill the command's process group and fail after this long. */
  timeoutMs: number;
  /** Kill the command and fail when stdout grows past this many bytes. */
  maxOutputBytes: number;
  /** Aborting kills the command; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

const stderrKeepBytes = 512;

/** Runs `argv` without a shell and resolves with its stdout, trimmed; rejects with a CommandRunError. */
export function runCommand(argv: readonly string[], options: RunCommandOptions): Promise<string> {
  const [file, ...args] = argv;
  if (file === undefined || file === '') {
    return Promise.reject(new CommandRunError('spawn', 'empty command'));
  }
  if (options.signal?.aborted) return Promise.reject(options.signal.reason);
  return new Promise((resolve, reject) => {
    let child: ChildProcess;
    try {
      child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    } catch (error) {
      reject(new CommandRunError('spawn', `cannot start ${file}`, '', { cause: error }));
      return;
    }
    const stdout: Buffer[] = [];
    let stdoutBytes = 0;
    let stderr = '';
    let settled = false;

    const settle = (error: unknown, output?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      if (error === undefined) resolve(output ?? '');
      else reject(error);
    };
    // Settle at once rather than on 'close': a grandchild that left the group could hold the pipes.
    const killAndFail = (error: unknown): void => {
      _killGroup(child);
      child.stdout?.destroy();
      child.stderr?.destroy();
      settle(error);
    };
    const onAbort = (): void => killAndFail(options.signal?.reason);
    const timer = setTimeout(
      () => killAndFail(new CommandRunError('timeout', `timed out after ${formatDuration(options.timeoutMs)}`, _firstLine(stderr))),
      options.timeoutMs,
    );
    timer.unref();
    options.signal?.addEventListener('abort', onAbort, { once: true });

    child.stdout?.on('data', (chunk: Buffer) => {
      stdoutBytes += chunk.length;
      if (stdoutBytes > options.maxOutputBytes) {
        killAndFail(new CommandRunError('too-much-output', `output over ${options.maxOutputBytes} bytes`, _firstLine(stderr)));
      } else {
        stdout.push(chunk);
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      if (stderr.length < stderrKeepBytes) stderr += chunk.toString('utf8', 0, stderrKeepBytes - stderr.length);
    });
    child.on('error', (error: NodeJS.ErrnoException) => settle(_spawnError(file, error)));
    child.on('close', (code, signal) => {
      if (code === 0) settle(undefined, Buffer.concat(stdout).toString('utf8').trim());
      else if (signal !== null) settle(new CommandRunError('signal', `killed by ${signal}`, _firstLine(stderr)));
      else settle(new CommandRunError('exit', `exit code ${code}`, _firstLine(stderr)));
    });
  });
}

function _spawnError(file: string, error: NodeJS.ErrnoException): CommandRunError {
  if (error.code === 'ENOENT') return new CommandRunError('not-found', `command not found: ${file}`, '', { cause: error });
  if (error.code === 'EACCES') return new CommandRunError('not-permitted', `permission denied: ${file}`, '', { cause: error });
  return new CommandRunError('spawn', `cannot start ${file}: ${error.code ?? error.message}`, '', { cause: error });
}

function _killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    child.kill('SIGKILL'); // the group is gone already, or this platform has none
  }
}

function _firstLine(text: string): string {
  return text.trim().split('\n', 1)[0] ?? '';
}
