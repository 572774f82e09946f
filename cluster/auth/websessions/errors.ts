import { PosternError } from '../../../protocols/errors.ts';

/** No web session has that id: never issued, signed out, or past its certificates' expiry. */
export class WebSessionNotFoundError extends PosternError {
  constructor() {
    super('PST_WEB_SESSION_NOT_FOUND', 'no such web session: it was never issued, was signed out, or its certificates expired; sign in again');
  }
}

/** The session was idle longer than its idle timeout and has been removed. */
export class WebSessionIdleError extends PosternError {
  constructor(idleSeconds: number) {
    super('PST_WEB_SESSION_IDLE', `the web session ended after ${Math.round(idleSeconds / 60)} min without activity; sign in again`);
  }
}
