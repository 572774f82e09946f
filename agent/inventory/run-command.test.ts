import { test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { runCommand } from './run-command.ts';
import { CommandRunError } from './errors.ts';

const limits = { timeoutMs: 2000, maxOutputBytes: 4096 };

async function failure(promise: Promise<unknown>): Promise<CommandRunError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof CommandRunError, `expected CommandRunError, got ${String(error)}`);
    return error;
  }
  assert.fail('the command succeeded');
}

test('stdout comes back trimmed, arguments are not shell-expanded', async () => {
  assert.equal(await runCommand(['echo', '  v1  '], limits), 'v1');
  assert.equal(await runCommand(['echo', '$HOME', '*'], limits), '$HOME *');
});

test('each failure has a short reason', async () => {
  assert.equal((await failure(runCommand(['false'], limits))).message, 'exit code 1');
  const missing = await failure(runCommand(['/no/such/postern-cmd'], limits));
  assert.equal(missing.failure, 'not-found');
  assert.equal(missing.message, 'command not found: /no/such/postern-cmd');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'postern-cmd-'));
  try {
    const script = path.join(dir, 'not-executable');
    await writeFile(script, 'echo hi\n', { mode: 0o644 });
    const noExec = await failure(runCommand([script], limits));
    assert.equal(noExec.message, `permission denied: ${script}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const killed = await failure(runCommand(['sh', '-c', 'kill -9 $$'], limits));
  assert.equal(killed.message, 'killed by SIGKILL');
});

test('stderr is kept for the log, first line only', async () => {
  const error = await failure(runCommand(['sh', '-c', 'echo "bad thing" >&2; echo more >&2; exit 3'], limits));
  assert.equal(error.message, 'exit code 3');
  assert.equal(error.stderr, 'bad thing');
});

test('a time-out kills the whole process group and fails promptly', async () => {
  const started = performance.now();
  // The shell forks sleep (it is not the last command), so only a group kill ends both.
  const error = await failure(runCommand(['sh', '-c', 'sleep 5; echo late'], { ...limits, timeoutMs: 150 }));
  const elapsed = performance.now() - started;
  assert.equal(error.failure, 'timeout');
  assert.equal(error.message, 'timed out after 150ms');
  assert.ok(elapsed < 1500, `took ${elapsed} ms`);
});

test('a time-out also kills what the command started in the background', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'postern-cmd-'));
  try {
    const pidFile = path.join(dir, 'pid');
    const script = `sleep 7 & echo $! > ${pidFile}; wait`;
    await failure(runCommand(['sh', '-c', script], { ...limits, timeoutMs: 150 }));
    const pid = Number(await readFile(pidFile, 'utf8'));
    assert.ok(pid > 0);
    let alive = true;
    for (let i = 0; i < 50 && alive; i++) {
      alive = await _isRunning(pid);
      if (alive) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(alive, false, `sleep (pid ${pid}) survived the time-out`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** True while `pid` exists and is not a zombie waiting for a parent to reap it. */
async function _isRunning(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

test('output past the cap is an error, not a truncated value', async () => {
  const error = await failure(runCommand(['head', '-c', '100000', '/dev/zero'], { ...limits, maxOutputBytes: 1024 }));
  assert.equal(error.message, 'output over 1024 bytes');
  assert.equal(await runCommand(['printf', 'x%.0s', '1', '2', '3'], { ...limits, maxOutputBytes: 3 }), 'xxx');
});

test('aborting kills the command and rejects with the reason', async () => {
  const controller = new AbortController();
  const run = runCommand(['sleep', '5'], { ...limits, signal: controller.signal });
  setTimeout(() => controller.abort(new Error('stopping')), 50);
  await assert.rejects(run, /stopping/);
  await assert.rejects(runCommand(['echo'], { ...limits, signal: controller.signal }), /stopping/);
});

test('an empty command is refused', async () => {
  assert.equal((await failure(runCommand([], limits))).failure, 'spawn');
});
