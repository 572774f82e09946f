import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyFailure, clearFailures, defaultLockoutPolicy } from './lockout.ts';
import type { UserRecord } from './user-record.ts';

const base: UserRecord = { name: 'alice', spec: { roles: [], traits: {} }, createdAt: '2026-01-01T00:00:00.000Z', lockout: { failures: 0 } };
const t0 = new Date('2026-01-01T12:00:00Z');
const later = (ms: number) => new Date(t0.getTime() + ms);
const minute = 60_000;

function fail(times: number, record = base, stepMs = 0) {
  let current = record;
  let locked = false;
  for (let i = 0; i < times; i++) ({ record: current, locked } = applyFailure(current, later(i * stepMs), defaultLockoutPolicy));
  return { record: current, locked };
}

describe('applyFailure', () => {
  it('locks on the fifth failure for 15 minutes', () => {
    assert.equal(fail(4).locked, false);
    const { record, locked } = fail(5);
    assert.equal(locked, true);
    assert.deepEqual(record.lockout, { failures: 5, lastFailureAt: t0.toISOString(), lockedUntil: later(15 * minute).toISOString() });
  });

  it('follows a custom policy', () => {
    const policy = { maxFailures: 2, lockoutMs: minute, failureWindowMs: minute };
    const once = applyFailure(base, t0, policy);
    const twice = applyFailure(once.record, t0, policy);
    assert.deepEqual([once.locked, twice.locked, twice.record.lockout.lockedUntil], [false, true, later(minute).toISOString()]);
  });

  it('starts from zero once a lock has run out', () => {
    const { record } = fail(5);
    const after = applyFailure(record, later(15 * minute), defaultLockoutPolicy);
    assert.deepEqual([after.locked, after.record.lockout.failures, after.record.lockout.lockedUntil], [false, 1, undefined]);
  });

  it('forgets failures spread further apart than the window', () => {
    assert.equal(fail(10, base, 31 * minute).record.lockout.failures, 1);
    assert.equal(fail(5, base, 29 * minute).locked, true);
  });
});

describe('clearFailures', () => {
  it('clears a lock, and returns the same record when there is nothing to clear', () => {
    assert.deepEqual(clearFailures(fail(5).record).lockout, { failures: 0 });
    assert.equal(clearFailures(base), base);
  });
});
