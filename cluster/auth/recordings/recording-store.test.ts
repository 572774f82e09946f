import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SqliteBackend } from '../backend/sqlite-backend.ts';
import { maxRecordingChunkBytes, RecordingStore } from './recording-store.ts';

const id = '7d3f0c2e-1111-4222-8333-944445555666';
const now = new Date('2026-01-02T03:04:05Z');
const metadata = (over: Record<string, unknown> = {}) =>
  JSON.stringify({ session_id: id, user: 'alice', login: 'root', node: 'web-1', kind: 'shell', started: '2026-01-02T03:00:00.000Z', ended: '2026-01-02T03:01:00.000Z', ...over });

function withStore(run: (store: RecordingStore, dir: string) => Promise<void>) {
  return async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'postern-recordings-'));
    const backend = SqliteBackend.open(path.join(dir, 'backend.sqlite'));
    try {
      await run(new RecordingStore(backend, path.join(dir, 'recordings')), path.join(dir, 'recordings'));
    } finally {
      await backend.close();
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

const piece = (offset: number, text: string, final = false, meta = '') => ({ sessionId: id, offset, data: Buffer.from(text), final, metadataJson: meta });

test('pieces in order make one recording; a resend and an out-of-step piece get the offset to resume from', withStore(async (store, dir) => {
  assert.deepEqual(await store.upload('host-a', piece(0, 'abc'), now), { received: 3, complete: false });
  // The sender restarted and begins again at 0: told to continue at 3, nothing appended twice.
  assert.deepEqual(await store.upload('host-a', piece(0, 'abc'), now), { received: 3, complete: false });
  assert.deepEqual(await store.upload('host-a', piece(7, 'zzz'), now), { received: 3, complete: false });
  const done = await store.upload('host-a', piece(3, 'def', true, metadata()), now);
  assert.equal(done.complete, true);
  assert.equal(done.received, 6);
  assert.equal(readFileSync(path.join(dir, `${id}.cast`), 'utf8'), 'abcdef');
  const stored = await store.get(id);
  assert.equal(stored.size, 6);
  assert.equal(stored.host_id, 'host-a');
  assert.equal(stored.uploaded, now.toISOString());
  // Uploading again once complete is harmless: the answer says it is all there.
  assert.deepEqual(await store.upload('host-a', piece(0, 'abcdef', true, metadata()), now), { received: 6, complete: true });
  assert.deepEqual((await store.list({ limit: 10 })).map((r) => r.session_id), [id]);
  assert.deepEqual(await store.list({ user: 'bob', limit: 10 }), []);
  assert.deepEqual(readdirSync(dir).sort(), [`${id}.cast`]);
  assert.equal((await store.read(id, 2, 3)).toString(), 'cde');
}));

test('another host cannot append to a host\'s upload in progress', withStore(async (store) => {
  await store.upload('host-a', piece(0, 'abc'), now);
  assert.deepEqual(await store.upload('host-b', piece(3, 'evil'), now), { received: 0, complete: false });
}));

test('refuses bad input, naming the cause, and keeps nothing half-stored', withStore(async (store) => {
  await assert.rejects(store.upload('h', { ...piece(0, ''), sessionId: '../../etc' }, now), /recording session_id/);
  await assert.rejects(store.upload('h', { ...piece(0, ''), data: Buffer.alloc(maxRecordingChunkBytes + 1) }, now), /over the 4194304-byte limit; send smaller pieces/);
  await assert.rejects(store.upload('h', piece(0, 'x', true, 'not json'), now), /the metadata is not JSON/);
  await assert.rejects(store.upload('h', piece(1, '', true, metadata({ kind: 'telnet' })), now), /kind/);
  await assert.rejects(store.upload('h', piece(1, '', true, metadata({ session_id: '11111111-2222' })), now), /the metadata names session 11111111-2222/);
  await assert.rejects(store.get(id), /no recording of session/);
  await assert.rejects(store.read(id, 0, 10), /no recording of session/);
}));

test('a desktop recording (kind desktop) is kept as .pdr and read back whole', withStore(async (store, dir) => {
  const bytes = Buffer.concat([Buffer.from('PSTDREC1', 'latin1'), Buffer.from([0, 0, 0, 5, 0, 0, 0, 3, 1, 0x7b, 0x7d])]);
  const done = await store.upload('host-a', { sessionId: id, offset: 0, data: bytes, final: true, metadataJson: metadata({ kind: 'desktop', node: 'xrdp-1', width: 1024, height: 768 }) }, now);
  assert.equal(done.complete, true);
  assert.deepEqual(readdirSync(dir), [`${id}.pdr`]);
  const stored = await store.get(id);
  assert.equal(stored.kind, 'desktop');
  assert.equal(stored.node, 'xrdp-1');
  assert.deepEqual(await store.read(id, 0, stored.size), bytes);
}));
