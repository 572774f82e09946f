import { PosternError } from '../../../protocols/errors.ts';

/**
 * Errors of the storage backend. Messages never carry keys or values (keys can name
 * secrets such as join tokens); the typed store above adds which resource it was.
 */

/** A storage operation failed for a reason other than the ones below (disk full, I/O error, …). */
export class BackendError extends PosternError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PST_BACKEND', message, options);
  }
}

/** The store's file is not a readable database; it was left untouched. */
export class BackendCorruptError extends PosternError {
  readonly path: string;

  constructor(path: string, reason: string, options?: { cause?: unknown }) {
    super(
      'PST_BACKEND_CORRUPT',
      `backend database ${path} is corrupt (${reason}); the file was left untouched. ` +
        `Stop every postern process using it, move it aside and restore the last backup ` +
        `to ${path} (or start with an empty store, losing cluster state).`,
      options,
    );
    this.path = path;
  }
}

/** The file is a database, but not one this version of Postern can use. */
export class BackendSchemaError extends PosternError {
  constructor(message: string) {
    super('PST_BACKEND_SCHEMA', message);
  }
}

/** Another process held the write lock for longer than the busy timeout. */
export class BackendBusyError extends PosternError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PST_BACKEND_BUSY', message, options);
  }
}

/** The backend (or the watcher) was closed. */
export class BackendClosedError extends PosternError {
  constructor(message: string) {
    super('PST_BACKEND_CLOSED', message);
  }
}

/**
 * A watcher fell too far behind (its consumer stalled, or the change log was pruned
 * past it) and was ended; re-read the range and watch again.
 */
export class WatcherLaggedError extends PosternError {
  constructor(message: string) {
    super('PST_BACKEND_WATCH_LAGGED', message);
  }
}
