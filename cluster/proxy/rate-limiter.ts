import { systemClock, type Clock } from '../common/clock.ts';

/** Options for {@link RateLimiter}. */
export interface RateLimiterOptions {
  /** Requests a client may make in a burst. */
  burst: number;
  /** Tokens added back per second. */
  perSecond: number;
  /** Clients remembered at once; the least recently seen is forgotten first. Default 10,000. */
  maxClients?: number;
  clock?: Clock;
}

interface _Bucket {
  tokens: number;
  updatedMs: number;
}

/**
 * A token bucket per client key (an IP address): `take` spends one token or says how
 * long to wait. Memory is bounded: beyond `maxClients` the least recently seen client
 * is forgotten (it starts again with a full bucket, which errs towards letting through).
 *
 * @example
 * const limiter = new RateLimiter({ burst: 10, perSecond: 0.5 });
 * const wait = limiter.take(socket.remoteAddress);
 * if (wait > 0) throw new RateLimitedError('login', wait);
 */
export class RateLimiter {
  readonly #burst: number;
  readonly #perMs: number;
  readonly #maxClients: number;
  readonly #clock: Clock;
  readonly #buckets = new Map<string, _Bucket>();

  constructor(options: RateLimiterOptions) {
    this.#burst = options.burst;
    this.#perMs = options.perSecond / 1000;
    this.#maxClients = options.maxClients ?? 10_000;
    this.#clock = options.clock ?? systemClock;
  }

  /** Spends a token for `key`; returns 0 when allowed, else the whole seconds to wait. */
  take(key: string): number {
    const now = this.#clock.now().getTime();
    const bucket = this.#refill(key, now);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return this.#perMs > 0 ? Math.max(1, Math.ceil((1 - bucket.tokens) / this.#perMs / 1000)) : Infinity;
  }

  /** Clients currently remembered. */
  get size(): number {
    return this.#buckets.size;
  }

  #refill(key: string, now: number): _Bucket {
    const previous = this.#buckets.get(key);
    // Re-inserting keeps the map in least-recently-seen order, so eviction takes the first key.
    this.#buckets.delete(key);
    const bucket = previous ?? { tokens: this.#burst, updatedMs: now };
    bucket.tokens = Math.min(this.#burst, bucket.tokens + Math.max(0, now - bucket.updatedMs) * this.#perMs);
    bucket.updatedMs = now;
    this.#buckets.set(key, bucket);
    if (this.#buckets.size > this.#maxClients) this.#buckets.delete(this.#buckets.keys().next().value!);
    return bucket;
  }
}
