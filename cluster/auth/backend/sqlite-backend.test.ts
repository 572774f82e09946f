import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import { FakeClock } from '../../common/clock.ts';
import { runBackendConformance, take } from './conformance.ts';
import { SqliteBackend, type SqliteBackendOptions } from './sqlite-backend.ts';

const writerScript = new URL('./testdata/backend-writer.ts', import.meta.url).pathname;

let dir: string;
let files = 0;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'postern-sqlite-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function newFile(): string {
  return join(dir, `store-${++files}.db`);
}

function openFast(path: string, options: SqliteBackendOptions = {}): SqliteBackend {
  return SqliteBackend.open(path, { pollIntervalMs: 20, sweepIntervalMs: 25, ...options });
}

runBackendConformance('sqlite file', async () => {
  const clock = new FakeClock();
  const backend = openFast(newFile(), { clock });
  return { backend, clock, cleanup: () => backend.close() };
});

runBackendConformance('sqlite :memory:', async () => {
  const clock = new FakeClock();
  const backend = openFast(':memory:', { clock });
  return { backend, clock, cleanup: () => backend.close() };
});

/**
 * Runs the writer script in another process: `ready` resolves when it prints "ready",
 * `done` with its final JSON line (rejecting on a non-zero exit).
 */
function startWriter(args: string[]): { ready: Promise<void>; done: Promise<Record<string, unknown>> } {
  const child = spawn(process.execPath, [writerScript, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  child.stdout.on('data', (chunk) => {
    out += chunk;
    if (out.startsWith('ready\n')) markReady();
  });
  child.stderr.on('data', (chunk) => (err += chunk));
  const done = new Promise<Record<string, unknown>>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code === 0) resolve(JSON.parse(out.replace(/^ready\n/, '')) as Record<string, unknown>);
      else reject(new Error(`writer ${args.join(' ')} exited ${code}: ${err}`));
    });
  });
  return { ready: Promise.race([ready, done.then(() => {})]), done };
}

describe('sqlite backend across processes', () => {
  it('two processes doing compare-and-swap increments on one file lose no write', async () => {
    const path = newFile();
    const backend = openFast(path);
    try {
      await backend.put({ key: '/counter', value: '0' });
      const writers = [startWriter(['cas', path, '/counter', '300']), startWriter(['cas', path, '/counter', '300'])];
      await Promise.all(writers.map((w) => w.ready));
      await backend.put({ key: '/go', value: '' });
      const results = await Promise.all(writers.map((w) => w.done));
      assert.equal((await backend.get('/counter'))?.value, '600');
      const conflicts = results.reduce((sum, r) => sum + Number(r.conflicts), 0);
      assert.ok(conflicts > 0, 'the two writers never raced; the test did not exercise compare-and-swap');
    } finally {
      await backend.close();
    }
  });

  it('a watcher sees a write made by another process', async () => {
    const path = newFile();
    const backend = openFast(path, { pollIntervalMs: 50 });
    const watcher = backend.watch('/nodes/');
    try {
      const { revision } = await startWriter(['put', path, '/nodes/n1', 'from-child']).done;
      const [event] = await take(watcher, 1);
      assert.deepEqual(event, { type: 'put', item: { key: '/nodes/n1', value: 'from-child', revision } });
    } finally {
      watcher.close();
      await backend.close();
    }
  });

  it('reopening after close keeps the data and revisions keep increasing', async () => {
    const path = newFile();
    const first = SqliteBackend.open(path);
    const kept = await first.put({ key: '/kept', value: 'yes', expires: new Date(Date.now() + 3_600_000) });
    await first.close();
    const second = SqliteBackend.open(path);
    try {
      assert.deepEqual(await second.get('/kept'), kept);
      const next = await second.put({ key: '/new', value: 'x' });
      assert.ok(next.revision > kept.revision);
    } finally {
      await second.close();
    }
  });
});

describe('sqlite backend refuses bad files and leaves them untouched', () => {
  async function assertRefused(path: string, code: string, pattern: RegExp): Promise<void> {
    const before = await readFile(path);
    assert.throws(() => SqliteBackend.open(path), (err: Error & { code?: string }) => {
      assert.equal(err.code, code);
      assert.ok(err.message.includes(path), `message names the file: ${err.message}`);
      assert.match(err.message, pattern);
      return true;
    });
    assert.ok(before.equals(await readFile(path)), 'file bytes changed');
  }

  it('a file of garbage bytes', async () => {
    const path = newFile();
    await writeFile(path, Buffer.from('this is not a database, just some bytes\n'.repeat(200)));
    await assertRefused(path, 'PST_BACKEND_CORRUPT', /restore the last backup/);
  });

  /** A closed backend file of about 300 KiB. */
  async function bulkDatabase(): Promise<string> {
    const path = newFile();
    const backend = SqliteBackend.open(path, { synchronous: 'NORMAL' });
    for (let i = 0; i < 300; i++) await backend.put({ key: `/bulk/${i}`, value: 'v'.repeat(500) });
    await backend.close();
    const { size } = await stat(path);
    assert.ok(size > 100_000, `database too small to damage meaningfully: ${size}`);
    return path;
  }

  it('a truncated real database', async () => {
    const path = await bulkDatabase();
    const { size } = await stat(path);
    await truncate(path, Math.floor(size / 2));
    await assertRefused(path, 'PST_BACKEND_CORRUPT', /restore the last backup/);
  });

  it('a database with a damaged page in the middle', async () => {
    const path = await bulkDatabase();
    const bytes = await readFile(path);
    const pageSize = bytes.readUInt16BE(16);
    const page = Math.floor(bytes.length / pageSize / 2);
    bytes.fill(0xa5, page * pageSize + 8, (page + 1) * pageSize - 8);
    await writeFile(path, bytes);
    await assertRefused(path, 'PST_BACKEND_CORRUPT', /integrity check failed/);
  });

  it('an SQLite database that is not a postern backend', async () => {
    const path = newFile();
    const other = new DatabaseSync(path);
    other.exec('CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES (1)');
    other.close();
    await assertRefused(path, 'PST_BACKEND_SCHEMA', /not a postern backend/);
  });

  it('a backend written by a newer schema version', async () => {
    const path = newFile();
    await SqliteBackend.open(path).close();
    const db = new DatabaseSync(path);
    db.exec('PRAGMA user_version = 99');
    db.close();
    await assertRefused(path, 'PST_BACKEND_SCHEMA', /schema version 99, newer/);
  });
});

describe('sqlite backend change log', () => {
  it('uses WAL on a file and appends one change per write in the same transaction', async () => {
    const path = newFile();
    const backend = SqliteBackend.open(path);
    try {
      await backend.put({ key: '/a', value: '1' });
      await backend.put({ key: '/b', value: '2' });
      await backend.deleteRange('/');
      const peek = new DatabaseSync(path, { readOnly: true });
      assert.equal(peek.prepare('PRAGMA journal_mode').get()?.journal_mode, 'wal');
      const kinds = peek.prepare('SELECT kind FROM changes ORDER BY id').all().map((row) => row.kind);
      assert.deepEqual(kinds, ['put', 'put', 'delete', 'delete']);
      peek.close();
    } finally {
      await backend.close();
    }
  });

  it('is pruned to its row cap and by age, keeping the newest rows', async () => {
    const path = newFile();
    const clock = new FakeClock();
    const backend = SqliteBackend.open(path, { clock, changeLogMaxRows: 50, changeLogMinRows: 10, changeLogRetentionMs: 60_000 });
    const count = (): number => {
      const peek = new DatabaseSync(path, { readOnly: true });
      try {
        return Number(peek.prepare('SELECT count(*) AS n FROM changes').get()?.n);
      } finally {
        peek.close();
      }
    };
    try {
      for (let i = 0; i < 120; i++) await backend.put({ key: `/p/${i}`, value: 'x' });
      backend.sweep();
      assert.equal(count(), 50);
      backend.sweep();
      assert.equal(count(), 50, 'young rows under the cap are kept');
      clock.advance(60_001);
      backend.sweep();
      assert.equal(count(), 10);
      const next = await backend.put({ key: '/p/next', value: 'x' });
      assert.equal(next.revision, 121, 'revisions continue after pruning');
    } finally {
      await backend.close();
    }
  });

  it('a watcher whose changes were pruned before it read them ends with WatcherLaggedError', async () => {
    const backend = SqliteBackend.open(':memory:', { changeLogMaxRows: 20, changeLogMinRows: 5 });
    const watcher = backend.watch('/');
    try {
      // No macrotask runs between these writes and the sweep, so the feed has read nothing yet.
      for (let i = 0; i < 50; i++) await backend.put({ key: `/k/${i}`, value: 'x' });
      backend.sweep();
      await assert.rejects(take(watcher, 1), { code: 'PST_BACKEND_WATCH_LAGGED' });
    } finally {
      watcher.close();
      await backend.close();
    }
  });

  it('a watcher whose consumer falls behind its buffer gets the buffered events, then WatcherLaggedError', async () => {
    const backend = SqliteBackend.open(':memory:', { watchBufferSize: 5, pollIntervalMs: 10 });
    const watcher = backend.watch('/');
    try {
      for (let i = 0; i < 8; i++) await backend.put({ key: `/k/${i}`, value: 'x' });
      await new Promise((resolve) => setTimeout(resolve, 100));
      const events = await take(watcher, 5);
      assert.deepEqual(events.map((e) => (e.type === 'put' ? e.item.key : e.key)), ['/k/0', '/k/1', '/k/2', '/k/3', '/k/4']);
      await assert.rejects(take(watcher, 1), { code: 'PST_BACKEND_WATCH_LAGGED' });
    } finally {
      watcher.close();
      await backend.close();
    }
  });
});
