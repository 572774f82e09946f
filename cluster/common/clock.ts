/** Time as a dependency, so expiry, lockout and TTL logic can be tested without sleeping. */
export interface Clock {
  now(): Date;
}

/** The wall clock. */
export const systemClock: Clock = { now: () => new Date() };

/** A clock that moves only when told to; for tests. */
export class FakeClock implements Clock {
  #ms: number;

  constructor(start: Date = new Date('2026-01-01T00:00:00Z')) {
    this.#ms = start.getTime();
  }

  now(): Date {
    return new Date(this.#ms);
  }

  advance(ms: number): void {
    this.#ms += ms;
  }
}
