/**
 * The root of Postern's error classes. Every area defines subclasses in its own
 * `errors.ts`; each carries a stable `code` (`PST_…`) that programs match on, and a
 * message a person can act on: what failed, why, and what to do next.
 */
export class PosternError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** The thing asked for does not exist. */
export class NotFoundError extends PosternError {
  constructor(message: string) {
    super('PST_NOT_FOUND', message);
  }
}

/** The thing to be created exists already. */
export class AlreadyExistsError extends PosternError {
  constructor(message: string) {
    super('PST_ALREADY_EXISTS', message);
  }
}

/** A compare-and-swap lost a race, or a precondition did not hold. */
export class CompareFailedError extends PosternError {
  constructor(message: string) {
    super('PST_COMPARE_FAILED', message);
  }
}

/** Input that does not parse or validate; the message names the field and the expectation. */
export class BadInputError extends PosternError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PST_BAD_INPUT', message, options);
  }
}

/** The caller is not who it must be (no certificate, wrong CA, expired). */
export class AuthenticationError extends PosternError {
  constructor(message: string) {
    super('PST_UNAUTHENTICATED', message);
  }
}

/** The caller is known but the policy says no. */
export class AccessDeniedError extends PosternError {
  constructor(message: string) {
    super('PST_ACCESS_DENIED', message);
  }
}
