import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SqliteBackend } from '../backend/sqlite-backend.ts';
import { FakeClock } from '../../common/clock.ts';
import { WebSessionStore, type WebSessionInput } from './web-session-store.ts';
import { rejectsWith } from '../../../test/fixtures/rejects-with.ts';
import { WebSessionIdleError, WebSessionNotFoundError } from './errors.ts';

function setUp(t: { after(fn: () => Promise<void> | void): void }) {
  const dir = mkdtempSync(path.join(tmpdir(), 'postern-websessions-'));
  const clock = new FakeClock(new Date('2026-03-01T10:00:00Z'));
  const backend = SqliteBackend.open(path.join(dir, 'backend.sqlite'), { clock });
  t.after(async () => {
    await backend.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { clock, backend, store: new WebSessionStore(backend, clock) };
}

const input: WebSessionInput = {
  user: 'alice', roles: ['access'], logins: ['alice'], cluster: 'one',
  tlsKeyPem: 'key', tlsCertificatePem: 'cert', sshPrivateKey: 'ssh key', sshCertificate: 'ssh cert', sshHostCaKeys: [],
  expires: '2026-03-01T18:00:00Z', idleTimeoutSeconds: 600,
};

test('a session is found by its id, never by its stored key, and the id is 32 random bytes', async (t) => {
  const { store, backend } = setUp(t);
  const { id, record } = await store.create(input);
  assert.match(id, /^[A-Za-z0-9_-]{43}$/);
  assert.match(record.csrfToken, /^[A-Za-z0-9_-]{43}$/);
  assert.equal((await store.get(id)).user, 'alice');
  const [item] = await backend.range('/web_sessions/');
  assert.ok(item && !item.key.includes(id), 'the backend key is a hash of the id');
  await rejectsWith(store.get(item.key.slice('/web_sessions/'.length, '/web_sessions/'.length + 43)), WebSessionNotFoundError);
});

test('forged and malformed ids are refused without a lookup error', async (t) => {
  const { store } = setUp(t);
  await store.create(input);
  for (const forged of ['', 'x', 'A'.repeat(43), '../../etc/passwd', 'A'.repeat(44)]) await rejectsWith(store.get(forged), WebSessionNotFoundError);
});

test('idle sessions end; activity keeps them alive; the certificate expiry is the hard end', async (t) => {
  const { store, clock } = setUp(t);
  const { id } = await store.create(input);
  clock.advance(500_000);
  await store.get(id, { touch: true });
  clock.advance(500_000); // 1000 s since creation, 500 s since activity
  await store.get(id, { touch: true });
  clock.advance(601_000);
  await rejectsWith(store.get(id), WebSessionIdleError);
  await rejectsWith(store.get(id), WebSessionNotFoundError);

  const second = await store.create({ ...input, idleTimeoutSeconds: 24 * 3600, expires: new Date(clock.now().getTime() + 60_000).toISOString() });
  clock.advance(61_000);
  await rejectsWith(store.get(second.id), WebSessionNotFoundError);
});

test('delete ends a session once', async (t) => {
  const { store } = setUp(t);
  const { id } = await store.create(input);
  assert.equal((await store.delete(id))?.user, 'alice');
  assert.equal(await store.delete(id), undefined);
  await rejectsWith(store.get(id), WebSessionNotFoundError);
});
