import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { BackendCorruptError, BackendError, BackendSchemaError } from './errors.ts';
import { wrapSqliteError } from './sqlite-errors.ts';

/**
 * Opening the SQLite file: refuse a corrupt or foreign file without touching it, then
 * set the pragmas and create or check the schema (versioned by `PRAGMA user_version`).
 *
 * Tables:
 *   items    key -> value, revision (the change that wrote it), expires (ms, NULL = never)
 *   changes  the change log: id is the store-wide revision (AUTOINCREMENT never reuses an
 *            id, even after pruning); every mutation appends here in the same transaction,
 *            which is how watchers in other processes learn of it.
 */

export const schemaVersion = 1;

const schemaV1 = `
CREATE TABLE items (
  key      TEXT PRIMARY KEY NOT NULL,
  value    TEXT NOT NULL,
  revision INTEGER NOT NULL,
  expires  INTEGER
) WITHOUT ROWID;
CREATE INDEX items_expires ON items (expires) WHERE expires IS NOT NULL;
CREATE TABLE changes (
  id      INTEGER PRIMARY KEY AUTOINCREMENT,
  kind    TEXT NOT NULL CHECK (kind IN ('put', 'delete')),
  key     TEXT NOT NULL,
  value   TEXT,
  expires INTEGER,
  at      INTEGER NOT NULL
);
CREATE INDEX changes_at ON changes (at);
`;

const sqliteHeader = Buffer.from('SQLite format 3\0', 'latin1');

export interface OpenDatabaseOptions {
  busyTimeoutMs: number;
  synchronous: 'FULL' | 'NORMAL';
}

/** Opens (creating if needed) the backend database at `path`, or throws BackendCorruptError / BackendSchemaError. */
export function openDatabase(path: string, options: OpenDatabaseOptions): DatabaseSync {
  const inMemory = path === ':memory:';
  if (!inMemory) checkExistingFile(path, options.busyTimeoutMs);
  let db: DatabaseSync | undefined;
  try {
    db = new DatabaseSync(path, { timeout: options.busyTimeoutMs });
    checkOurs(db, path); // before anything below writes to the file
    const mode = db.prepare('PRAGMA journal_mode = WAL').get()?.journal_mode;
    if (!inMemory && mode !== 'wal') throw new BackendSchemaError(`cannot switch ${path} to WAL mode (got ${String(mode)}); check the file system supports shared memory (not NFS)`);
    db.exec(`PRAGMA synchronous = ${options.synchronous}`);
    migrate(db, path);
    return db;
  } catch (err) {
    db?.close();
    throw wrapSqliteError(err, `open ${path}`, path);
  }
}

/**
 * Checks a file that already has content, through a read-only connection so that
 * nothing is written to it: the SQLite header, then `PRAGMA quick_check`.
 */
function checkExistingFile(path: string, busyTimeoutMs: number): void {
  let header: Buffer;
  try {
    const size = fileSize(path);
    if (size === undefined || size === 0) return;
    header = readHeader(path);
  } catch (err) {
    throw new BackendError(`sqlite backend: cannot read ${path} (${(err as Error).message}); check the path is a file readable by this user`, { cause: err });
  }
  if (!header.equals(sqliteHeader)) throw new BackendCorruptError(path, 'not an SQLite database: the file header is wrong');
  let db: DatabaseSync | undefined;
  try {
    db = new DatabaseSync(path, { readOnly: true, timeout: busyTimeoutMs });
    const rows = db.prepare('PRAGMA quick_check(5)').all();
    const problems = rows.map((row) => String(row.quick_check)).filter((text) => text !== 'ok');
    if (problems.length > 0) throw new BackendCorruptError(path, `integrity check failed: ${problems.join('; ')}`);
  } catch (err) {
    throw wrapSqliteError(err, `check ${path}`, path);
  } finally {
    db?.close();
  }
}

function fileSize(path: string): number | undefined {
  try {
    return statSync(path).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function readHeader(path: string): Buffer {
  const fd = openSync(path, 'r');
  try {
    const header = Buffer.alloc(sqliteHeader.length);
    const read = readSync(fd, header, 0, header.length, 0);
    return header.subarray(0, read);
  } finally {
    closeSync(fd);
  }
}

/** Throws BackendSchemaError unless the database is empty or a postern backend this version understands. */
function checkOurs(db: DatabaseSync, path: string): void {
  const version = userVersion(db);
  if (version > schemaVersion) {
    throw new BackendSchemaError(
      `backend database ${path} has schema version ${version}, newer than this postern understands (${schemaVersion}); run a newer postern, or restore a backup made by this version`,
    );
  }
  const tables = db.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'").get();
  if (version === 0 && Number(tables?.n) > 0) {
    throw new BackendSchemaError(
      `${path} is an SQLite database but not a postern backend (it has tables and no postern schema version); point the backend at another path`,
    );
  }
}

/** Creates the schema on a new file (schema changes of later versions go here too). */
function migrate(db: DatabaseSync, path: string): void {
  if (userVersion(db) === schemaVersion) return;
  // Another process may be creating the schema right now: decide under the write lock.
  db.exec('BEGIN IMMEDIATE');
  try {
    checkOurs(db, path);
    if (userVersion(db) === 0) {
      db.exec(schemaV1);
      db.exec(`PRAGMA user_version = ${schemaVersion}`);
    }
    db.exec('COMMIT');
  } catch (err) {
    if (db.isTransaction) db.exec('ROLLBACK');
    throw err;
  }
}

function userVersion(db: DatabaseSync): number {
  return Number(db.prepare('PRAGMA user_version').get()?.user_version ?? 0);
}
