import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BadInputError } from '../../protocols/errors.ts';
import { formatDuration, parseDuration } from './duration.ts';

describe('parseDuration', () => {
  it('parses single and compound units', () => {
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('90s'), 90_000);
    assert.equal(parseDuration('30m'), 1_800_000);
    assert.equal(parseDuration('8h'), 28_800_000);
    assert.equal(parseDuration('7d'), 604_800_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('1m1ms'), 60_001);
  });

  for (const bad of ['', '8', 'h', '8x', '-1h', '1.5h', '8 h', 'h8', '1h 30m', '99999999999999999999d']) {
    it(`refuses ${JSON.stringify(bad)}`, () => {
      assert.throws(() => parseDuration(bad), BadInputError);
    });
  }
});

describe('formatDuration', () => {
  it('renders the shortest compound form that parses back', () => {
    for (const ms of [1, 1000, 60_000, 5_400_000, 90_061_001]) assert.equal(parseDuration(formatDuration(ms)), ms);
    assert.equal(formatDuration(5_400_000), '1h30m');
    assert.equal(formatDuration(0), '0s');
  });
});
