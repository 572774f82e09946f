import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { backoffCap, backoffDelay } from './backoff.ts';

test('the cap doubles from the base and stops at the maximum', () => {
  assert.deepEqual([0, 1, 2, 3, 7, 8, 20, 5000].map((n) => backoffCap(n)), [250, 500, 1000, 2000, 30_000, 30_000, 30_000, 30_000]);
  assert.deepEqual([0, 1, 2, 3].map((n) => backoffCap(n, { baseMs: 10, maxMs: 50 })), [10, 20, 40, 50]);
  assert.equal(backoffCap(-3), 250, 'a negative attempt counts as the first');
});

test('full jitter: the delay spans [0, cap) as random spans [0, 1)', () => {
  assert.equal(backoffDelay(3, 0), 0);
  assert.equal(backoffDelay(3, 0.5), 1000);
  assert.equal(backoffDelay(3, 0.999999), 1999);
  assert.equal(backoffDelay(3, 1), 1999, 'random = 1 is clamped below the cap');
});

test('jitter stays in bounds for any attempt and random value', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 10_000 }), fc.double({ min: 0, max: 1, noNaN: true }), (attempt, random) => {
      const delay = backoffDelay(attempt, random);
      return Number.isInteger(delay) && delay >= 0 && delay < backoffCap(attempt) && delay < 30_000;
    }),
  );
});

test('with Math.random the delays spread over the whole range', () => {
  const delays = Array.from({ length: 2000 }, () => backoffDelay(2, Math.random()));
  assert.ok(Math.min(...delays) < 100);
  assert.ok(Math.max(...delays) > 900);
  assert.ok(delays.every((d) => d >= 0 && d < 1000));
});
