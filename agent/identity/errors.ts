import { PosternError } from '../../protocols/errors.ts';

/** Errors of the agent's host identity: loading it, checking it, renewing it. */

/** The identity on disk can no longer be used (expired, or its key and certificate disagree). */
export class IdentityUnusableError extends PosternError {
  constructor(message: string) {
    super('PST_IDENTITY_UNUSABLE', message);
  }
}

/** A renewal attempt failed; the current identity stays in use and the renewer retries. */
export class IdentityRenewalError extends PosternError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PST_IDENTITY_RENEWAL', message, options);
  }
}
