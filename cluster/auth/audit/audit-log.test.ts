import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it, mock, type TestContext } from 'node:test';
import { BadInputError, PosternError } from '../../../protocols/errors.ts';
import type { Backend } from '../backend/backend.ts';
import { SqliteBackend } from '../backend/sqlite-backend.ts';
import { FakeClock } from '../../common/clock.ts';
import { auditEventSchema, type AuditEvent, type AuditEventInput } from './audit-event.ts';
import { auditPrefix, AuditLog } from './audit-log.ts';
import { AuditExportError } from './errors.ts';

const start = new Date('2026-01-01T12:00:00Z');
const minute = 60_000;

function setup(t: TestContext) {
  const clock = new FakeClock(start);
  const backend = SqliteBackend.open(':memory:', { clock, pollIntervalMs: 10 });
  t.after(() => backend.close());
  return { clock, backend, audit: new AuditLog(backend, { cluster: 'root.example.com', clock }) };
}

function login(user: string, outcome: 'success' | 'failure' = 'success'): AuditEventInput {
  return { type: outcome === 'success' ? 'user.login' : 'user.login.failed', identity: { user }, outcome, fields: { method: 'password' } };
}

/** alice logs in at 12:00, bob fails at 12:01, alice starts a session at 12:02, … one event a minute. */
async function history(audit: AuditLog, clock: FakeClock) {
  const inputs: AuditEventInput[] = [
    login('alice'),
    login('bob', 'failure'),
    { type: 'session.start', identity: { user: 'alice', roles: ['access'] }, resource: { kind: 'node', name: 'web-1' }, outcome: 'allow' },
    { type: 'access.denied', identity: { user: 'bob' }, resource: { kind: 'db', name: 'prod' }, outcome: 'deny', reason: 'no role allows db_user postgres' },
    { type: 'session.end', identity: { user: 'alice' }, resource: { kind: 'node', name: 'web-1' }, outcome: 'success' },
  ];
  const events: AuditEvent[] = [];
  for (const input of inputs) {
    events.push(await audit.emit(input));
    clock.advance(minute);
  }
  return events;
}

const at = (minutes: number) => new Date(start.getTime() + minutes * minute);

describe('AuditLog.emit', () => {
  it('stores the event under a time-sortable key and returns it once written', async (t) => {
    const { audit, backend } = setup(t);
    const event = await audit.emit({ ...login('alice'), fields: { method: 'password', password: 'hunter2hunter2' } });
    assert.equal(event.time, start.toISOString());
    assert.equal(event.cluster, 'root.example.com');
    assert.deepEqual(event.fields, { method: 'password', password: '[redacted]' });
    const item = await backend.get(auditPrefix + event.id);
    assert.ok(item);
    assert.deepEqual(JSON.parse(item.value), event);
    assert.equal(item.value.includes('hunter2'), false);
    assert.equal(auditEventSchema.safeParse(event).success, true);
  });

  it('refuses a malformed event and stores nothing', async (t) => {
    const { audit, backend } = setup(t);
    await assert.rejects(audit.emit({ ...login('alice'), type: 'Login' }), BadInputError);
    await assert.rejects(audit.emit({ ...login('alice'), outcome: 'ok' as never }), BadInputError);
    assert.deepEqual(await backend.range(auditPrefix), []);
  });

  it('keeps every event of one millisecond, in order', async (t) => {
    const { audit } = setup(t);
    const events = await Promise.all(['a', 'b', 'c', 'd'].map((user) => audit.emit(login(user))));
    const found = await audit.search({ from: start, to: at(1) });
    assert.deepEqual(found.map((e) => e.identity.user), ['a', 'b', 'c', 'd']);
    assert.deepEqual(found, events);
  });

  it('never overwrites: on an id collision the new event gets another id', async (t) => {
    const { audit, backend } = setup(t);
    const first = await audit.emit(login('alice'));
    const sequence = parseInt(first.id.split('-')[1]!, 16);
    const random = mock.method(crypto, 'randomBytes', (size: number) => Buffer.alloc(size));
    t.after(() => random.mock.restore());
    const taken = `${first.id.split('-')[0]}-${(sequence + 1).toString(16).padStart(6, '0')}-00000000`;
    await backend.create({ key: auditPrefix + taken, value: 'already here' });
    const second = await audit.emit(login('bob'));
    assert.notEqual(second.id, taken);
    assert.equal((await backend.get(auditPrefix + taken))?.value, 'already here');
    assert.equal(JSON.parse((await backend.get(auditPrefix + second.id))!.value).identity.user, 'bob');
  });

  it('fails when the backend cannot write, so the caller can fail closed', async (t) => {
    const { backend, clock } = setup(t);
    const failing: Backend = Object.assign(Object.create(backend) as Backend, {
      create: async () => {
        throw new PosternError('PST_BACKEND', 'disk full');
      },
    });
    const audit = new AuditLog(failing, { cluster: 'c', clock });
    await assert.rejects(audit.emit(login('alice')), /disk full/);
  });
});

describe('AuditLog.emitMany', () => {
  const batch = (): AuditEventInput[] => [
    login('alice'),
    { type: 'access.denied', identity: { user: 'bob', roles: ['dev'] }, resource: { kind: 'db', name: 'prod' }, outcome: 'deny', reason: 'no role allows db_user postgres', fields: { password: 'hunter2', n: 1n } },
    { type: 'db.query', identity: { user: 'carol' }, resource: { kind: 'db', name: 'pg' }, outcome: 'success' },
  ];
  const stored = async (backend: SqliteBackend) => (await backend.range(auditPrefix)).map((item) => item.value.replace(/"id":"[^"]+"/, '"id":"X"'));

  it('stores inputs checked by the caller exactly as it stores ones it parses itself', async (t) => {
    const parsed = setup(t);
    const checked = setup(t);
    const a = await parsed.audit.emitMany(batch());
    const b = await checked.audit.emitMany(batch(), { checked: true });
    assert.deepEqual(b.map((e) => ({ ...e, id: 'X' })), a.map((e) => ({ ...e, id: 'X' })));
    assert.deepEqual(await stored(checked.backend), await stored(parsed.backend), 'same JSON, same key order');
    assert.equal(b[1]!.fields.password, '[redacted]', 'fields are still sanitized');
    assert.equal(b[1]!.fields.n, '1');
    for (const event of b) assert.equal(auditEventSchema.safeParse(event).success, true);
  });

  it('parses what it is given unless told it was checked', async (t) => {
    const { audit, backend } = setup(t);
    const bad = { ...login('alice'), outcome: 'maybe' } as unknown as AuditEventInput;
    await assert.rejects(audit.emitMany([login('bob'), bad]), BadInputError);
    assert.equal((await backend.range(auditPrefix)).length, 0, 'nothing of the batch was stored');
  });
});

describe('AuditLog.search', () => {
  it('returns events in [from, to), oldest first', async (t) => {
    const { audit, clock } = setup(t);
    const events = await history(audit, clock);
    assert.deepEqual(await audit.search({ from: at(1), to: at(3) }), events.slice(1, 3));
    assert.deepEqual(await audit.search({ from: start, to: at(60) }), events);
    assert.deepEqual(await audit.search({ from: at(5), to: at(60) }), []);
  });

  it('filters by type (exact or area.*) and by user', async (t) => {
    const { audit, clock } = setup(t);
    await history(audit, clock);
    const window = { from: start, to: at(60) };
    const types = (events: AuditEvent[]) => events.map((e) => e.type);
    assert.deepEqual(types(await audit.search({ ...window, types: ['user.login'] })), ['user.login']);
    assert.deepEqual(types(await audit.search({ ...window, types: ['session.*'] })), ['session.start', 'session.end']);
    assert.deepEqual(types(await audit.search({ ...window, types: ['user.login.failed', 'access.denied'] })), ['user.login.failed', 'access.denied']);
    assert.deepEqual(types(await audit.search({ ...window, user: 'bob' })), ['user.login.failed', 'access.denied']);
    assert.deepEqual(types(await audit.search({ ...window, user: 'alice', types: ['session.*'] })), ['session.start', 'session.end']);
  });

  it('limits, newest first with order desc', async (t) => {
    const { audit, clock } = setup(t);
    const events = await history(audit, clock);
    const window = { from: start, to: at(60) };
    assert.deepEqual(await audit.search({ ...window, limit: 2 }), events.slice(0, 2));
    assert.deepEqual(await audit.search({ ...window, limit: 2, order: 'desc' }), [events[4], events[3]]);
    assert.deepEqual(await audit.search({ ...window, order: 'desc', user: 'alice', limit: 10 }), [events[4], events[2], events[0]]);
  });

  it('pages through more events than one backend read returns', async (t) => {
    const { audit, clock } = setup(t);
    for (let i = 0; i < 1200; i++) {
      await audit.emit({ type: 'db.session.query', identity: { user: i % 3 === 0 ? 'alice' : 'bob' }, outcome: 'success', fields: { i } });
      clock.advance(10);
    }
    const all = await audit.search({ from: start, to: at(60), limit: 10_000 });
    assert.equal(all.length, 1200);
    assert.deepEqual(all.map((e) => e.fields.i), Array.from({ length: 1200 }, (_, i) => i));
    const newestAlice = await audit.search({ from: start, to: at(60), user: 'alice', order: 'desc', limit: 3 });
    assert.deepEqual(newestAlice.map((e) => e.fields.i), [1197, 1194, 1191]);
  });

  it('refuses a bad query with the field named', async (t) => {
    const { audit } = setup(t);
    await assert.rejects(audit.search({ from: at(1), to: start }), /audit search: from: from must be before to/);
    await assert.rejects(audit.search({ from: start, to: at(1), limit: 0 }), BadInputError);
    await assert.rejects(audit.search({ from: start, to: at(1), limit: 10_001 }), BadInputError);
    await assert.rejects(audit.search({ from: start, to: at(1), types: ['User Login'] }), BadInputError);
  });
});

describe('AuditLog.exportJsonl', () => {
  it('writes one JSON line per event that parses back to the same events', async (t) => {
    const { audit, clock } = setup(t);
    const events = await history(audit, clock);
    const chunks: string[] = [];
    const out = new Writable({ write: (chunk, _enc, cb) => (chunks.push(String(chunk)), cb()) });
    const count = await audit.exportJsonl({ from: start, to: at(60) }, out);
    assert.equal(count, 5);
    const text = chunks.join('');
    assert.ok(text.endsWith('\n'));
    assert.deepEqual(text.trimEnd().split('\n').map((line) => auditEventSchema.parse(JSON.parse(line))), events);
    assert.equal(await audit.exportJsonl({ from: start, to: at(60), types: ['session.*'], limit: 1 }, out), 1);
  });

  it('waits for a slow reader instead of buffering everything', async (t) => {
    const { audit, clock } = setup(t);
    for (let i = 0; i < 300; i++) {
      await audit.emit({ ...login('alice'), fields: { i } });
      clock.advance(1);
    }
    let maxBuffered = 0;
    let lines = 0;
    const out: Writable = new Writable({
      highWaterMark: 1024,
      write(chunk, _enc, cb) {
        maxBuffered = Math.max(maxBuffered, out.writableLength);
        lines += String(chunk).split('\n').length - 1;
        setImmediate(cb);
      },
    });
    assert.equal(await audit.exportJsonl({ from: start, to: at(60) }, out), 300);
    await new Promise<void>((resolve) => out.end(resolve));
    assert.equal(lines, 300);
    // One event line is ~250 bytes: with backpressure the queue stays near the high-water mark.
    assert.ok(maxBuffered < 1024 + 1024, `buffered ${maxBuffered} bytes`);
  });

  it('stops with a clear error when the output closes early', async (t) => {
    const { audit, clock } = setup(t);
    for (let i = 0; i < 50; i++) {
      await audit.emit(login('alice'));
      clock.advance(1);
    }
    const out = new Writable({ highWaterMark: 64, write: (_chunk, _enc, _cb) => setImmediate(() => out.destroy()) });
    await assert.rejects(audit.exportJsonl({ from: start, to: at(60) }, out), AuditExportError);
  });
});

describe('AuditLog.subscribe', () => {
  it('delivers new matching events as they are written, until closed', async (t) => {
    const { audit } = setup(t);
    await audit.emit(login('before'));
    const tail = audit.subscribe({ user: 'alice' });
    const received: AuditEvent[] = [];
    const done = (async () => {
      for await (const event of tail) received.push(event);
    })();
    const a = await audit.emit(login('alice'));
    await audit.emit(login('bob'));
    const b = await audit.emit({ type: 'session.start', identity: { user: 'alice' }, outcome: 'allow' });
    for (let i = 0; i < 100 && received.length < 2; i++) await sleep(10);
    tail.close();
    await done;
    assert.deepEqual(received, [a, b]);
  });
});
