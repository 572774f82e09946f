import { AuthenticationError, BadInputError, PosternError } from '../../../protocols/errors.ts';

/**
 * Errors of local users: password policy, logins, lockout, reset links. Login errors
 * subclass AuthenticationError (so the API maps them to "unauthenticated") but carry
 * their own stable code. Their messages never say which of user name, password or
 * one-time code was wrong, and never carry a secret.
 */

/** Why a login failed; for the audit log only, never for the caller (it would reveal which part was wrong). */
export type LoginFailureReason =
  | 'unknown_user'
  | 'no_password'
  | 'bad_password'
  | 'totp_missing'
  | 'bad_totp'
  | 'totp_replayed';

/** A new password does not meet the password policy; the message says which rule. */
export class PasswordPolicyError extends BadInputError {
  override readonly code: string = 'PST_PASSWORD_POLICY';
}

/** Wrong user name, password or one-time code; the message does not say which. */
export class LoginFailedError extends AuthenticationError {
  override readonly code: string = 'PST_LOGIN_FAILED';
  /** For the audit log only; never send it to the caller. */
  readonly auditReason: LoginFailureReason;

  constructor(username: string, auditReason: LoginFailureReason) {
    super(
      `login as ${username} failed: unknown user, wrong password or wrong one-time code; ` +
        `check them and try again, or ask an admin for a reset link: pctl users reset ${username}`,
    );
    this.auditReason = auditReason;
  }
}

/** Too many consecutive failed logins; further attempts are refused until `until`. */
export class AccountLockedError extends AuthenticationError {
  override readonly code: string = 'PST_ACCOUNT_LOCKED';
  readonly until: Date;

  constructor(username: string, until: Date, failures: number) {
    super(
      `account ${username} is locked until ${formatUtc(until)} after ${failures} failed logins; ` +
        `wait or ask an admin: pctl users reset ${username}`,
    );
    this.until = until;
  }
}

/** A reset or invite token is unknown, used, superseded or expired (deliberately not said which). */
export class ResetTokenInvalidError extends AuthenticationError {
  override readonly code: string = 'PST_RESET_TOKEN_INVALID';

  constructor() {
    super(
      'password reset token is unknown, already used, replaced by a newer one, or expired; ' +
        'ask an admin for a new one: pctl users reset <name>',
    );
  }
}

/** A TOTP operation that needs an enrolment (or a pending one) found none. */
export class TotpStateError extends PosternError {
  constructor(message: string) {
    super('PST_TOTP_STATE', message);
  }
}

/** A one-time code given to confirm an enrolment or a reset is wrong or reused. */
export class TotpInvalidError extends AuthenticationError {
  override readonly code: string = 'PST_TOTP_INVALID';
}

/** Two writers kept racing on one user record; nothing was changed by this call. */
export class UserBusyError extends PosternError {
  constructor(username: string) {
    super(
      'PST_USER_BUSY',
      `user ${username} was changed concurrently too many times in a row; nothing was changed, try again`,
    );
  }
}

/** `2026-01-01 12:03 UTC`: minutes are what a person waits for. */
export function formatUtc(date: Date): string {
  return `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}
