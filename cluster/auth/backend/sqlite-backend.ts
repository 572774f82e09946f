import { channel } from 'node:diagnostics_channel';
import type { DatabaseSync, SQLOutputValue, StatementSync } from 'node:sqlite';
import { AlreadyExistsError, CompareFailedError, NotFoundError } from '../../../protocols/errors.ts';
import { systemClock, type Clock } from '../../common/clock.ts';
import type { Backend, BackendEvent, Item, ItemInput, RangeOptions, Watcher } from './backend.ts';
import { ChangeFeed } from './change-feed.ts';
import { BackendClosedError } from './errors.ts';
import { checkInput, checkKey, checkPrefix, checkRangeOptions, checkRevision, prefixUpperBound } from './keys.ts';
import { wrapSqliteError } from './sqlite-errors.ts';
import { openDatabase } from './sqlite-schema.ts';

/**
 * The embedded backend: one SQLite file (WAL, synchronous=FULL) that several processes
 * on one host may share. Every mutation is one `BEGIN IMMEDIATE` transaction that writes
 * the item and appends to the `changes` log, whose AUTOINCREMENT id is the revision;
 * watchers poll that log, so they see other processes' writes too.
 *
 * node:sqlite is synchronous: a write waiting for another process's lock blocks this
 * event loop for up to `busyTimeoutMs`. Keep transactions short (they are, here).
 */

export interface SqliteBackendOptions {
  clock?: Clock;
  /** How often watchers read the change log for other processes' writes; default 75 ms. */
  pollIntervalMs?: number;
  /** How often expired items are deleted (and announced) and the change log pruned; default 1 s. */
  sweepIntervalMs?: number;
  /** How long a write waits for another process's lock before BackendBusyError; default 5 s. */
  busyTimeoutMs?: number;
  /** FULL (default) makes every write durable before it is acknowledged; NORMAL may lose the last writes on power loss. */
  synchronous?: 'FULL' | 'NORMAL';
  /** Change-log entries older than this may be pruned; default 10 minutes. */
  changeLogRetentionMs?: number;
  /** The newest entries always kept, however old; default 1,000. */
  changeLogMinRows?: number;
  /** Entries kept at most, however young; default 100,000. */
  changeLogMaxRows?: number;
  /** Unread events a watcher may hold before it is ended as lagging; default 10,000. */
  watchBufferSize?: number;
}

/** Failures of background work (sweeps, pruning) are published here: `{ op, error }`. */
export const backendErrorChannel = channel('postern:backend:error');

const sweepBatch = 500;

type Row = Record<string, SQLOutputValue>;

/** The SQLite implementation of Backend; see the file comment. */
export class SqliteBackend implements Backend {
  readonly path: string;
  readonly #db: DatabaseSync;
  readonly #clock: Clock;
  readonly #options: Required<Omit<SqliteBackendOptions, 'clock'>>;
  readonly #feed: ChangeFeed;
  readonly #sweeper: NodeJS.Timeout;
  readonly #statements = new Map<string, StatementSync>();
  #closed = false;

  /** Opens (creating if needed) the store at `path`; ':memory:' gives a private in-memory store. */
  static open(path: string, options: SqliteBackendOptions = {}): SqliteBackend {
    const settings = {
      pollIntervalMs: options.pollIntervalMs ?? 75,
      sweepIntervalMs: options.sweepIntervalMs ?? 1000,
      busyTimeoutMs: options.busyTimeoutMs ?? 5000,
      synchronous: options.synchronous ?? 'FULL',
      changeLogRetentionMs: options.changeLogRetentionMs ?? 10 * 60_000,
      changeLogMinRows: options.changeLogMinRows ?? 1000,
      changeLogMaxRows: options.changeLogMaxRows ?? 100_000,
      watchBufferSize: options.watchBufferSize ?? 10_000,
    };
    const db = openDatabase(path, settings);
    return new SqliteBackend(path, db, options.clock ?? systemClock, settings);
  }

  private constructor(path: string, db: DatabaseSync, clock: Clock, options: Required<Omit<SqliteBackendOptions, 'clock'>>) {
    this.path = path;
    this.#db = db;
    this.#clock = clock;
    this.#options = options;
    this.#feed = new ChangeFeed(
      { current: () => this.#currentRevision(), since: (after, limit) => this.#run('watch poll', () => this.#changesSince(after, limit)) },
      { pollIntervalMs: options.pollIntervalMs, bufferSize: options.watchBufferSize, batchSize: 1000 },
    );
    this.#sweeper = setInterval(() => this.#sweepInBackground(), options.sweepIntervalMs).unref();
  }

  async get(key: string): Promise<Item | undefined> {
    checkKey(key);
    const row = this.#run('get', () => this.#sql('SELECT key, value, revision, expires FROM items WHERE key = ? AND (expires IS NULL OR expires > ?)').get(key, this.#now()));
    return row === undefined ? undefined : toItem(row);
  }

  async put(input: ItemInput): Promise<Item> {
    checkInput(input);
    return this.#write('put', () => this.#store(input));
  }

  async create(input: ItemInput): Promise<Item> {
    checkInput(input);
    return this.#write('create', () => {
      if (this.#liveRevision(input.key) !== undefined) throw new AlreadyExistsError('backend item already exists; read it, or delete it first');
      return this.#store(input);
    });
  }

  /** One transaction for many creations: one fsync for a batch of audit events instead of one each. */
  async createMany(inputs: ItemInput[]): Promise<Item[]> {
    for (const input of inputs) checkInput(input);
    return this.#write('create many', () => inputs.map((input) => {
      if (this.#liveRevision(input.key) !== undefined) throw new AlreadyExistsError('backend item already exists; read it, or delete it first');
      return this.#store(input);
    }));
  }

  async compareAndSwap(expectedRevision: number, input: ItemInput): Promise<Item> {
    checkRevision(expectedRevision);
    checkInput(input);
    return this.#write('compare-and-swap', () => {
      const revision = this.#liveRevision(input.key);
      if (revision === undefined) throw new NotFoundError('backend item to compare-and-swap does not exist (or has expired)');
      if (revision !== expectedRevision) {
        throw new CompareFailedError(`backend item changed concurrently (revision ${revision}, expected ${expectedRevision}); read it again and retry`);
      }
      return this.#store(input);
    });
  }

  async delete(key: string): Promise<void> {
    checkKey(key);
    this.#write('delete', () => {
      if (this.#liveRevision(key) === undefined) throw new NotFoundError('backend item to delete does not exist (or has expired)');
      this.#remove(key);
    });
  }

  async deleteRange(prefix: string): Promise<number> {
    checkPrefix(prefix);
    return this.#write('delete range', () => {
      const rows = this.#rangeStatement(prefix, false).all(...this.#rangeParams(prefix, undefined, -1));
      for (const row of rows) this.#remove(String(row.key));
      return rows.length;
    });
  }

  async range(prefix: string, options: RangeOptions = {}): Promise<Item[]> {
    checkPrefix(prefix);
    checkRangeOptions(options);
    const { after, limit } = options;
    const strict = after !== undefined && Buffer.compare(Buffer.from(after), Buffer.from(prefix)) >= 0;
    const rows = this.#run('range', () =>
      this.#rangeStatement(prefix, strict).all(...this.#rangeParams(prefix, strict ? after : prefix, limit ?? -1)),
    );
    return rows.map(toItem);
  }

  watch(prefix: string): Watcher {
    checkPrefix(prefix);
    this.#checkOpen();
    return this.#run('watch', () => this.#feed.watch(prefix));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweeper);
    this.#feed.close();
    this.#db.close();
  }

  /** Deletes expired items (announcing each) and prunes the change log; runs on a timer, callable from tests. */
  sweep(): number {
    return this.#run('expiry sweep', () => {
      const now = this.#now();
      let removed = 0;
      if (this.#sql('SELECT 1 FROM items WHERE expires <= ? LIMIT 1').get(now) !== undefined) {
        removed = this.#write('expiry sweep', () => {
          const rows = this.#sql('SELECT key FROM items WHERE expires <= ? ORDER BY expires LIMIT ?').all(now, sweepBatch);
          for (const row of rows) this.#remove(String(row.key));
          return rows.length;
        });
      }
      this.#pruneChanges(now);
      return removed;
    });
  }

  #sweepInBackground(): void {
    try {
      // A full batch means more are waiting; the next tick continues.
      this.sweep();
    } catch (error) {
      if (backendErrorChannel.hasSubscribers) backendErrorChannel.publish({ op: 'sweep', path: this.path, error });
    }
  }

  #pruneChanges(now: number): void {
    const bounds = this.#sql('SELECT min(id) AS lo, max(id) AS hi FROM changes').get();
    if (typeof bounds?.lo !== 'number') return;
    const lo = bounds.lo;
    const hi = Number(bounds.hi);
    const oldestAt = Number(this.#sql('SELECT at FROM changes WHERE id = ?').get(lo)?.at);
    const cutoff = now - this.#options.changeLogRetentionMs;
    const overCap = hi - lo + 1 > this.#options.changeLogMaxRows;
    if (!overCap && !(oldestAt < cutoff && lo <= hi - this.#options.changeLogMinRows)) return;
    this.#write('change log prune', () => {
      this.#sql('DELETE FROM changes WHERE id <= ?').run(hi - this.#options.changeLogMaxRows);
      this.#sql('DELETE FROM changes WHERE at < ? AND id <= ?').run(cutoff, hi - this.#options.changeLogMinRows);
    });
  }

  /** Writes the item and logs the change; inside a write transaction. */
  #store(input: ItemInput): Item {
    const expires = input.expires?.getTime() ?? null;
    const revision = this.#logChange('put', input.key, input.value, expires);
    this.#sql(
      'INSERT INTO items (key, value, revision, expires) VALUES (?, ?, ?, ?) ' +
        'ON CONFLICT (key) DO UPDATE SET value = excluded.value, revision = excluded.revision, expires = excluded.expires',
    ).run(input.key, input.value, revision, expires);
    const item: Item = { key: input.key, value: input.value, revision };
    if (expires !== null) item.expires = new Date(expires);
    return item;
  }

  /** Deletes the item and logs the change; inside a write transaction. */
  #remove(key: string): void {
    this.#logChange('delete', key, null, null);
    this.#sql('DELETE FROM items WHERE key = ?').run(key);
  }

  #logChange(kind: 'put' | 'delete', key: string, value: string | null, expires: number | null): number {
    const result = this.#sql('INSERT INTO changes (kind, key, value, expires, at) VALUES (?, ?, ?, ?, ?)').run(kind, key, value, expires, this.#now());
    return Number(result.lastInsertRowid);
  }

  /** The revision of the item at `key` if it exists and has not expired. */
  #liveRevision(key: string): number | undefined {
    const row = this.#sql('SELECT revision FROM items WHERE key = ? AND (expires IS NULL OR expires > ?)').get(key, this.#now());
    return row === undefined ? undefined : Number(row.revision);
  }

  #rangeStatement(prefix: string, strict: boolean): StatementSync {
    const lower = strict ? 'key > ?' : 'key >= ?';
    const upper = prefixUpperBound(prefix) === undefined ? '' : 'AND key < ?';
    return this.#sql(
      `SELECT key, value, revision, expires FROM items WHERE ${lower} ${upper} ` +
        'AND (expires IS NULL OR expires > ?) ORDER BY key LIMIT ?',
    );
  }

  #rangeParams(prefix: string, lower: string | undefined, limit: number): Array<string | number> {
    const upper = prefixUpperBound(prefix);
    return [lower ?? prefix, ...(upper === undefined ? [] : [upper]), this.#now(), limit];
  }

  #currentRevision(): number {
    const row = this.#sql("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").get();
    return row === undefined ? 0 : Number(row.seq);
  }

  /** Changes after `after`, read with the log's oldest id in one snapshot so pruning is detected. */
  #changesSince(after: number, limit: number): { events: BackendEvent[]; missed: boolean } {
    this.#db.exec('BEGIN');
    try {
      const oldest = this.#sql('SELECT min(id) AS id FROM changes').get()?.id;
      const rows = this.#sql('SELECT id, kind, key, value, expires FROM changes WHERE id > ? ORDER BY id LIMIT ?').all(after, limit);
      const missed = oldest !== null && oldest !== undefined && Number(oldest) > after + 1;
      return { events: rows.map(toEvent), missed };
    } finally {
      this.#db.exec('COMMIT');
    }
  }

  /** Runs `fn` in one BEGIN IMMEDIATE transaction, then wakes local watchers. */
  #write<T>(op: string, fn: () => T): T {
    const result = this.#run(op, () => {
      this.#db.exec('BEGIN IMMEDIATE');
      try {
        const value = fn();
        this.#db.exec('COMMIT');
        return value;
      } catch (err) {
        if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
        throw err;
      }
    });
    this.#feed.wake();
    return result;
  }

  /** Runs a database call on an open backend, wrapping SQLite errors with the operation and file. */
  #run<T>(op: string, fn: () => T): T {
    this.#checkOpen();
    try {
      return fn();
    } catch (err) {
      throw wrapSqliteError(err, op, this.path);
    }
  }

  #checkOpen(): void {
    if (this.#closed) throw new BackendClosedError(`backend ${this.path} is closed`);
  }

  #sql(text: string): StatementSync {
    let statement = this.#statements.get(text);
    if (statement === undefined) {
      statement = this.#db.prepare(text);
      this.#statements.set(text, statement);
    }
    return statement;
  }

  #now(): number {
    return this.#clock.now().getTime();
  }
}

function toItem(row: Row): Item {
  const item: Item = { key: String(row.key), value: String(row.value), revision: Number(row.revision) };
  if (row.expires !== null && row.expires !== undefined) item.expires = new Date(Number(row.expires));
  return item;
}

function toEvent(row: Row): BackendEvent {
  if (row.kind === 'delete') return { type: 'delete', key: String(row.key), revision: Number(row.id) };
  return { type: 'put', item: toItem({ ...row, revision: Number(row.id) }) };
}
