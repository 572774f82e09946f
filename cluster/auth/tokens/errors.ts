import { AccessDeniedError, AuthenticationError, PosternError } from '../../../protocols/errors.ts';

/**
 * Why a join was refused. Each message names the token by its display id (a prefix of
 * its SHA-256, never the secret), says what was wrong, and how to get a working one.
 */

/** No such token: mistyped, removed, or expired long enough ago that its record is gone. */
export class TokenInvalidError extends AuthenticationError {
  override readonly code: string = 'PST_TOKEN_INVALID';

  constructor(role: string | undefined) {
    super(
      `join token is not valid: it is mistyped, was removed, or expired some time ago; ` +
        `check it, or ask an admin for a new one: pctl tokens add --type=${role ?? 'node'}`,
    );
  }
}

/** The token's lifetime has passed. */
export class TokenExpiredError extends AuthenticationError {
  override readonly code: string = 'PST_TOKEN_EXPIRED';
  readonly expires: Date;

  constructor(id: string, expires: Date, role: string) {
    super(`join token ${id} expired at ${formatUtc(expires)}; ask an admin for a new one: pctl tokens add --type=${role}`);
    this.expires = expires;
  }
}

/** A single-use token that has been used already. */
export class TokenUsedError extends AuthenticationError {
  override readonly code: string = 'PST_TOKEN_USED';

  constructor(id: string, usedAt: Date | undefined, usedBy: string | undefined, role: string) {
    const when = usedAt ? ` at ${formatUtc(usedAt)}` : '';
    const by = usedBy ? ` by ${usedBy}` : '';
    super(
      `join token ${id} is single-use and was already used${when}${by}; ` +
        `ask an admin for a new one: pctl tokens add --type=${role}`,
    );
  }
}

/** The token does not allow joining in the role asked for. */
export class TokenRoleError extends AccessDeniedError {
  override readonly code: string = 'PST_TOKEN_ROLE';

  constructor(id: string, role: string, allowed: readonly string[]) {
    super(
      `join token ${id} allows ${allowed.join(', ')}, not ${role}; ` +
        `ask an admin for a token of that type: pctl tokens add --type=${role}`,
    );
  }
}

/** Several tokens start with the id given; a longer one picks one. */
export class TokenAmbiguousError extends PosternError {
  constructor(id: string, count: number) {
    super('PST_TOKEN_AMBIGUOUS', `${count} join tokens have ids starting with ${id}; give more characters (see pctl tokens ls)`);
  }
}

/** Concurrent consumers kept winning the compare-and-swap; nothing was changed. */
export class TokenBusyError extends PosternError {
  constructor(id: string) {
    super('PST_TOKEN_BUSY', `join token ${id} is being used by many joins at once; nothing was changed, try again`);
  }
}

/** `2026-01-01 12:03 UTC`. */
function formatUtc(date: Date): string {
  return `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}
