import { test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import { mkdtemp, mkdir, writeFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { readHostStats } from './host-stats.ts';

test('readHostStats reports plausible host and process figures', async () => {
  const stats = await readHostStats();
  assert.equal(stats.loadAverage.length, 3);
  assert.ok(stats.loadAverage.every((n) => n >= 0));
  assert.equal(stats.memoryTotalBytes, os.totalmem());
  assert.ok(stats.memoryAvailableBytes > 0 && stats.memoryAvailableBytes <= stats.memoryTotalBytes);
  assert.ok(stats.uptimeSeconds > 0);
  assert.ok(stats.process.rssBytes > 10 * 1024 * 1024, 'a Node process uses more than 10 MiB');
  assert.ok(stats.process.heapUsedBytes > 0 && stats.process.heapUsedBytes < stats.process.rssBytes);
  assert.ok(stats.process.cpuUserMicros > 0);
  assert.ok(stats.process.openFiles !== undefined && stats.process.openFiles >= 3, 'stdin, stdout, stderr at least');
});

test('openFiles is absent, not an error, where /proc is missing', async () => {
  const stats = await readHostStats({ procRoot: '/nonexistent-proc' });
  assert.equal(stats.process.openFiles, undefined);
});

test('openFiles counts entries of <proc>/self/fd less the listing itself', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'postern-proc-'));
  try {
    await mkdir(path.join(dir, 'self', 'fd'), { recursive: true });
    for (const n of ['0', '1', '2', '3', '4']) await writeFile(path.join(dir, 'self', 'fd', n), '');
    const stats = await readHostStats({ procRoot: dir });
    assert.equal(stats.process.openFiles, 4);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
