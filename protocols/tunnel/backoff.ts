/**
 * Restart delays: exponential growth with full jitter (a uniformly random delay between
 * zero and the exponential cap), so a fleet of agents restarting the same failing service
 * does not retry in lockstep.
 */

export interface BackoffOptions {
  /** Cap of the first delay. Default 250 ms. */
  baseMs?: number;
  /** Largest cap. Default 30 s. */
  maxMs?: number;
}

export const defaultBackoff: Required<BackoffOptions> = { baseMs: 250, maxMs: 30_000 };

/** The cap for attempt `attempt` (0-based): baseMs doubled per attempt, at most maxMs. */
export function backoffCap(attempt: number, options: BackoffOptions = {}): number {
  const { baseMs, maxMs } = { ...defaultBackoff, ...options };
  return Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt));
}

/**
 * The delay before retry `attempt` (0-based), given `random` in [0, 1): an integer in
 * [0, backoffCap(attempt)).
 */
export function backoffDelay(attempt: number, random: number, options: BackoffOptions = {}): number {
  const cap = backoffCap(attempt, options);
  const unit = Math.min(Math.max(random, 0), 1 - Number.EPSILON);
  return Math.floor(unit * cap);
}
