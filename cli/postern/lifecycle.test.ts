/** The pure parts of `postern start`'s signal handling; test/daemon-lifecycle.test.ts drives the real thing. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runCli } from '../../test/fixtures/auth.ts';
import { changedPaths, drainTimeoutMs } from './lifecycle.ts';

test('POSTERN_DRAIN_TIMEOUT: a duration, 30 s when unset', () => {
  assert.equal(drainTimeoutMs({}), 30_000);
  assert.equal(drainTimeoutMs({ POSTERN_DRAIN_TIMEOUT: '1m30s' }), 90_000);
  assert.throws(() => drainTimeoutMs({ POSTERN_DRAIN_TIMEOUT: 'soon' }), /POSTERN_DRAIN_TIMEOUT=soon: "soon" is not a duration; write e\.g\. 30m/);
});

test('postern start refuses a bad POSTERN_DRAIN_TIMEOUT before starting anything', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'postern-drain-'));
  try {
    const config = path.join(dir, 'postern.yaml');
    writeFileSync(config, `data_dir: ${dir}\ndiag_addr: ""\nauth:\n  cluster_name: x\n  listen_addr: 127.0.0.1:0\n`);
    const result = await runCli(['postern', 'start', '-c', config], { env: { POSTERN_DRAIN_TIMEOUT: '-5s' } });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /POSTERN_DRAIN_TIMEOUT=-5s: "-5s" is not a duration/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('changedPaths names what differs, two levels deep', () => {
  assert.deepEqual(changedPaths({ a: 1, b: { c: 2, d: 3 } }, { a: 1, b: { c: 2, d: 3 } }), []);
  assert.deepEqual(changedPaths({ a: 1, b: { c: 2, d: 3 } }, { a: 2, b: { c: 2, d: 4 } }), ['a', 'b.d']);
  assert.deepEqual(changedPaths({ proxy: undefined }, { proxy: { listen_addr: 'x' } }), ['proxy']);
  assert.deepEqual(changedPaths({ b: { c: { deep: 1 } } }, { b: { c: { deep: 2 } } }), ['b.c']);
});
