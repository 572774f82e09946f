/**
 * The lockout rule as pure functions over a user record, so the store can apply them
 * inside a compare-and-swap retry loop (each retry re-applies them to the fresh record,
 * so concurrent failures all count).
 *
 * Rule: `maxFailures` failed logins in a row, each within `failureWindowMs` of the one
 * before, lock the account for `lockoutMs`. While locked, logins are refused without
 * checking the password (so guessing stops). When the lock runs out the count starts
 * again from zero. A successful login, a password change or a used reset token clears it.
 */
import type { UserRecord } from './user-record.ts';

export interface LockoutPolicy {
  /** Consecutive failures that lock the account (default 5). */
  maxFailures: number;
  /** How long a lock lasts (default 15 minutes). */
  lockoutMs: number;
  /** A failure further than this after the previous one starts the count again (default 30 minutes). */
  failureWindowMs: number;
}

export const defaultLockoutPolicy: Readonly<LockoutPolicy> = Object.freeze({
  maxFailures: 5,
  lockoutMs: 15 * 60_000,
  failureWindowMs: 30 * 60_000,
});

/** The record after one more failed login at `now`; `locked` says whether this failure locked it. */
export function applyFailure(
  record: UserRecord,
  now: Date,
  policy: LockoutPolicy,
): { record: UserRecord; locked: boolean } {
  const previous = _liveFailures(record, now, policy);
  const failures = previous + 1;
  const lockout: UserRecord['lockout'] = { failures, lastFailureAt: now.toISOString() };
  const locked = failures >= policy.maxFailures;
  if (locked) lockout.lockedUntil = new Date(now.getTime() + policy.lockoutMs).toISOString();
  return { record: { ...record, lockout }, locked };
}

/** The record with the failure count and any lock cleared (the same object when there was nothing to clear). */
export function clearFailures(record: UserRecord): UserRecord {
  const { lockout } = record;
  if (lockout.failures === 0 && lockout.lockedUntil === undefined && lockout.lastFailureAt === undefined) return record;
  return { ...record, lockout: { failures: 0 } };
}

/** Failures that still count at `now`: none once a lock has run out or the last failure is too old. */
function _liveFailures(record: UserRecord, now: Date, policy: LockoutPolicy): number {
  const { failures, lastFailureAt, lockedUntil } = record.lockout;
  if (lockedUntil !== undefined && Date.parse(lockedUntil) <= now.getTime()) return 0;
  if (lastFailureAt !== undefined && now.getTime() - Date.parse(lastFailureAt) > policy.failureWindowMs) return 0;
  return failures;
}
