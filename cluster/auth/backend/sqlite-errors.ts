import { PosternError } from '../../../protocols/errors.ts';
import { BackendBusyError, BackendCorruptError, BackendError } from './errors.ts';

/** The shape node:sqlite gives its errors. */
interface SqliteError extends Error {
  code: 'ERR_SQLITE_ERROR';
  errcode: number;
  errstr: string;
}

// Primary result codes (https://sqlite.org/rescode.html); extended codes keep them in the low byte.
const SQLITE_BUSY = 5;
const SQLITE_LOCKED = 6;
const SQLITE_READONLY = 8;
const SQLITE_IOERR = 10;
const SQLITE_CORRUPT = 11;
const SQLITE_FULL = 13;
const SQLITE_CANTOPEN = 14;
const SQLITE_NOTADB = 26;

/**
 * Turns an error thrown by node:sqlite into a PosternError that says which operation
 * on which file failed and what to do; Postern errors pass through unchanged.
 * SQLite's messages name tables and columns, never bound values.
 */
export function wrapSqliteError(err: unknown, op: string, path: string): PosternError {
  if (err instanceof PosternError) return err;
  if (!isSqliteError(err)) return new BackendError(`sqlite backend: ${op} on ${path} failed: ${String(err)}`, { cause: err });
  const reason = err.errstr || err.message;
  switch (err.errcode & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return new BackendBusyError(
        `sqlite backend: ${op} on ${path} timed out waiting for another process's lock (${reason}); check for a stuck postern process using the same file`,
        { cause: err },
      );
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return new BackendCorruptError(path, reason, { cause: err });
    case SQLITE_FULL:
      return new BackendError(`sqlite backend: ${op} on ${path} failed: the disk is full; free space and retry`, { cause: err });
    case SQLITE_CANTOPEN:
      return new BackendError(`sqlite backend: cannot open ${path} (${reason}); check the directory exists and is writable by this user`, { cause: err });
    case SQLITE_READONLY:
      return new BackendError(`sqlite backend: ${op} on ${path} failed: the file is read-only (${reason}); check its permissions`, { cause: err });
    case SQLITE_IOERR:
      return new BackendError(`sqlite backend: ${op} on ${path} failed with an I/O error (${reason}); check the disk and the kernel log`, { cause: err });
    default:
      return new BackendError(`sqlite backend: ${op} on ${path} failed: ${reason} (sqlite code ${err.errcode})`, { cause: err });
  }
}

function isSqliteError(err: unknown): err is SqliteError {
  return err instanceof Error && (err as Partial<SqliteError>).code === 'ERR_SQLITE_ERROR' && typeof (err as Partial<SqliteError>).errcode === 'number';
}
