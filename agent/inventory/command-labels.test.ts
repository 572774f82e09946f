import { test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { silentLogger } from '../../cluster/common/logger.ts';
import { CommandLabels } from './command-labels.ts';
import { LabelConfigError } from './errors.ts';

const logger = silentLogger();

/** A logger whose lines land in an array, to count what was logged. */
function capturingLogger(): { logger: ReturnType<typeof silentLogger>; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(JSON.parse(String(chunk)) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines };
}

test('a command label carries the trimmed output of its command', async () => {
  const labels = new CommandLabels({ version: { command: ['echo', 'v1'], period: '1m' } }, { logger });
  try {
    assert.deepEqual(labels.current(), {}, 'no value before the first run');
    assert.deepEqual(labels.names(), ['version']);
    await labels.start();
    assert.deepEqual(labels.current(), { version: 'v1' });
  } finally {
    labels.stop();
  }
});

test('a failing and a timing-out command become error values without throwing', async () => {
  const labels = new CommandLabels(
    {
      broken: { command: ['false'], period: '1m' },
      slow: { command: ['sleep', '5'], period: '1m' },
      missing: { command: ['/no/such/postern-label-cmd'], period: '1m' },
      good: { command: ['echo', 'ok'], period: '1m' },
    },
    { logger, timeoutMs: 200 },
  );
  try {
    const started = performance.now();
    await labels.start();
    assert.ok(performance.now() - started < 2000, 'the time-out cut the slow command short');
    assert.deepEqual(labels.current(), {
      broken: 'error: exit code 1',
      slow: 'error: timed out after 200ms',
      missing: 'error: command not found: /no/such/postern-label-cmd',
      good: 'ok',
    });
  } finally {
    labels.stop();
  }
});

test('a change emits "change"; a repeat of the same value does not', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'postern-labels-'));
  const file = path.join(dir, 'role');
  const labels = new CommandLabels({ role: { command: ['cat', file], period: '1m' } }, { logger });
  const changes: Array<[string, string, string | undefined]> = [];
  labels.on('change', (name, value, previous) => changes.push([name, value, previous]));
  try {
    await writeFile(file, 'primary\n');
    await labels.start();
    await labels.refresh();
    await writeFile(file, 'replica\n');
    await labels.refresh();
    await rm(file);
    await labels.refresh();
    await labels.refresh();
    assert.deepEqual(changes, [
      ['role', 'primary', undefined],
      ['role', 'replica', 'primary'],
      ['role', 'error: exit code 1', 'replica'],
    ]);
  } finally {
    labels.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test('a failure is logged once per change, and its recovery once', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'postern-labels-'));
  const file = path.join(dir, 'value');
  const { logger: log, lines } = capturingLogger();
  const labels = new CommandLabels({ v: { command: ['cat', file], period: '1m' } }, { logger: log });
  try {
    await labels.refresh();
    await labels.refresh();
    await labels.refresh();
    await writeFile(file, 'back');
    await labels.refresh();
    await labels.refresh();
    const messages = lines.filter((line) => line.label === 'v').map((line) => `${String(line.level)} ${String(line.msg)}`);
    assert.deepEqual(messages, ['40 command label failed', '30 command label recovered']);
    assert.match(String(lines.find((line) => line.msg === 'command label failed')?.stderr), /No such file/);
  } finally {
    labels.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test('commands repeat on their period until stopped', async () => {
  const labels = new CommandLabels({ t: { command: ['date', '+%s%N'], period: '1s' } }, { logger });
  let changes = 0;
  labels.on('change', () => changes++);
  await labels.start();
  const first = labels.current().t;
  await new Promise((resolve) => labels.once('change', resolve));
  assert.notEqual(labels.current().t, first);
  labels.stop();
  const stoppedAt = changes;
  await new Promise((resolve) => setTimeout(resolve, 1200));
  assert.equal(changes, stoppedAt, 'no run after stop()');
});

test('stop() kills a command under way and drops its result', async () => {
  const labels = new CommandLabels({ slow: { command: ['sleep', '5'], period: '1m' } }, { logger });
  const started = labels.start();
  setTimeout(() => labels.stop(), 50);
  const t0 = performance.now();
  await started;
  assert.ok(performance.now() - t0 < 1000);
  assert.deepEqual(labels.current(), {});
});

test('bad specs are refused naming the label', () => {
  const refuse = (spec: { command: string[]; period: string }, pattern: RegExp) =>
    assert.throws(() => new CommandLabels({ arch: spec }, { logger }), (error: unknown) => {
      assert.ok(error instanceof LabelConfigError);
      assert.equal(error.code, 'PST_LABEL_CONFIG');
      assert.equal(error.label, 'arch');
      assert.match(error.message, pattern);
      return true;
    });
  refuse({ command: [], period: '1m' }, /command label "arch": command is empty/);
  refuse({ command: ['uname', '-m'], period: 'hourly' }, /command label "arch": period: "hourly" is not a duration/);
  refuse({ command: ['uname', '-m'], period: '500ms' }, /shorter than 1s/);
});
