import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { auditEventSchema, auditIdFloor, maxFieldsBytes, newAuditId, sanitizeFields } from './audit-event.ts';

describe('newAuditId', () => {
  it('sorts by time, then by emit order within a millisecond', () => {
    const t0 = new Date('2026-01-01T12:00:00.000Z');
    const t1 = new Date('2026-01-01T12:00:00.001Z');
    const ids = [newAuditId(t0), newAuditId(t0), newAuditId(t0), newAuditId(t1), newAuditId(new Date('2030-01-01T00:00:00Z'))];
    assert.deepEqual([...ids].sort(), ids);
    assert.equal(new Set(ids).size, ids.length);
    for (const id of ids) assert.match(id, /^\d{15}-[0-9a-f]{6}-[0-9a-f]{8}$/);
    assert.ok(ids[0]!.startsWith(auditIdFloor(t0) + '-'));
    assert.ok(auditIdFloor(t1) > ids[2]!.slice(0, 15));
  });
});

describe('sanitizeFields', () => {
  it('redacts secret-sounding keys at any depth, whatever their spelling', () => {
    const clean = sanitizeFields({
      password: 'hunter2hunter2',
      nested: { Join_Token: 'abc', 'private-key': 'PEM', totpCode: '123456', note: 'kept' },
      list: [{ secret: 's' }],
    });
    assert.deepEqual(clean, {
      password: '[redacted]',
      nested: { Join_Token: '[redacted]', 'private-key': '[redacted]', totpCode: '[redacted]', note: 'kept' },
      list: [{ secret: '[redacted]' }],
    });
  });

  it('turns values JSON cannot hold into text, and drops functions', () => {
    const cyclic: Record<string, unknown> = { name: 'a' };
    cyclic.self = cyclic;
    const clean = sanitizeFields({
      big: 12n,
      bytes: Buffer.from('secret bytes'),
      when: new Date('2026-01-01T00:00:00Z'),
      nan: Number.NaN,
      fn: () => 1,
      missing: undefined,
      cyclic,
      deep: { a: { b: { c: { d: { e: { f: { g: { h: { i: 1 } } } } } } } } },
    });
    assert.deepEqual(clean, {
      big: '12',
      bytes: '[12 bytes]',
      when: '2026-01-01T00:00:00.000Z',
      nan: 'NaN',
      cyclic: { name: 'a', self: '[circular]' },
      deep: { a: { b: { c: { d: { e: { f: { g: '[too deep]' } } } } } } },
    });
    // The same object twice (not a cycle) is kept both times.
    const shared = { x: 1 };
    assert.deepEqual(sanitizeFields({ a: shared, b: shared }), { a: { x: 1 }, b: { x: 1 } });
  });

  it('replaces fields that are too large by their size', () => {
    const clean = sanitizeFields({ query: 'x'.repeat(maxFieldsBytes) });
    assert.equal(clean.truncated, true);
    assert.ok((clean.bytes as number) > maxFieldsBytes);
  });
});

describe('auditEventSchema', () => {
  const event = {
    id: '001767268800000-000001-9f2c41aa',
    time: '2026-01-01T12:00:00.000Z',
    type: 'user.login',
    cluster: 'root',
    identity: { user: 'alice' },
    outcome: 'success',
    fields: {},
  };

  it('accepts a well-formed event', () => {
    assert.equal(auditEventSchema.safeParse(event).success, true);
  });

  it('refuses a bad type, outcome, id or an unknown field', () => {
    for (const bad of [
      { ...event, type: 'Login' },
      { ...event, type: 'login' },
      { ...event, outcome: 'maybe' },
      { ...event, id: '12-ab' },
      { ...event, extra: 1 },
    ]) {
      assert.equal(auditEventSchema.safeParse(bad).success, false, JSON.stringify(bad));
    }
  });
});
