import { PosternError } from '../../protocols/errors.ts';

/** Errors of joining a cluster with a token. */

/** The data directory holds an identity already; joining again would discard it. */
export class AlreadyJoinedError extends PosternError {
  constructor(message: string) {
    super('PST_ALREADY_JOINED', message);
  }
}

/** The proxy's answer to a join does not fit the keys sent or the pinned CA. */
export class JoinResponseError extends PosternError {
  constructor(message: string) {
    super('PST_JOIN_RESPONSE', message);
  }
}
