import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock } from '../common/clock.ts';
import { RateLimiter } from './rate-limiter.ts';

describe('RateLimiter', () => {
  it('allows a burst, then refuses with the wait, then refills over time', () => {
    const clock = new FakeClock();
    const limiter = new RateLimiter({ burst: 3, perSecond: 0.5, clock });
    assert.deepEqual([limiter.take('a'), limiter.take('a'), limiter.take('a')], [0, 0, 0]);
    assert.equal(limiter.take('a'), 2); // one token takes 2 s at 0.5/s
    clock.advance(1_000);
    assert.equal(limiter.take('a'), 1);
    clock.advance(1_000);
    assert.equal(limiter.take('a'), 0);
    assert.equal(limiter.take('a'), 2);
  });

  it('keeps clients apart and never refills above the burst', () => {
    const clock = new FakeClock();
    const limiter = new RateLimiter({ burst: 1, perSecond: 1, clock });
    assert.equal(limiter.take('a'), 0);
    assert.equal(limiter.take('b'), 0);
    assert.equal(limiter.take('a'), 1);
    clock.advance(3_600_000);
    assert.deepEqual([limiter.take('a'), limiter.take('a')], [0, 1]);
  });

  it('forgets the least recently seen client beyond maxClients', () => {
    const clock = new FakeClock();
    const limiter = new RateLimiter({ burst: 1, perSecond: 0.001, maxClients: 2, clock });
    limiter.take('a');
    limiter.take('b');
    assert.equal(limiter.take('a'), 1000); // a is now the most recent, b the oldest
    limiter.take('c'); // evicts b
    assert.equal(limiter.size, 2);
    assert.ok(limiter.take('a') > 0, 'a was seen recently and is still limited');
    assert.equal(limiter.take('b'), 0, 'b was forgotten and starts with a full bucket');
  });
});
