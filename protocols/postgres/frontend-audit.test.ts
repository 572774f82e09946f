import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FrontendAudit, maxAuditedBytes, type FrontendEvent } from './frontend-audit.ts';
import { encodeMessage } from './messages.ts';

const cstr = (text: string): Buffer => Buffer.concat([Buffer.from(text), Buffer.from([0])]);
const int16 = (n: number): Buffer => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b; };

test('reports Query, Parse, Bind and Execute across any chunking, and passes other messages by', () => {
  const stream = Buffer.concat([
    encodeMessage('Q', cstr('select 1')),
    encodeMessage('d', Buffer.alloc(70_000, 7)),
    encodeMessage('P', Buffer.concat([cstr('s1'), cstr('select $1'), int16(1), Buffer.alloc(4)])),
    encodeMessage('B', Buffer.concat([cstr(''), cstr('s1'), int16(1), int16(0), int16(1), Buffer.from([0, 0, 0, 1, 0x35]), int16(0)])),
    encodeMessage('E', Buffer.concat([cstr(''), Buffer.alloc(4)])),
    encodeMessage('S', Buffer.alloc(0)),
    encodeMessage('Q', cstr('x'.repeat(maxAuditedBytes + 10))),
  ]);
  const expected: FrontendEvent[] = [
    { kind: 'query', sql: 'select 1', truncated: false },
    { kind: 'parse', statement: 's1', sql: 'select $1', truncated: false, parameterTypes: 1 },
    { kind: 'bind', portal: '', statement: 's1', parameters: 1 },
    { kind: 'execute', portal: '' },
    { kind: 'query', sql: 'x'.repeat(maxAuditedBytes), truncated: true },
  ];
  fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 5_000 }), { minLength: 1, maxLength: 40 }), (cuts) => {
    const events: FrontendEvent[] = [];
    const audit = new FrontendAudit((e) => events.push(e));
    let offset = 0;
    for (let i = 0; offset < stream.length; i++) {
      const size = cuts[i % cuts.length]!;
      audit.push(stream.subarray(offset, offset + size));
      offset += size;
    }
    assert.deepEqual(events, expected);
  }), { numRuns: 200 });
});

test('fuzz: arbitrary client bytes never throw', () => {
  fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 20 }), (chunks) => {
    const audit = new FrontendAudit(() => {});
    for (const chunk of chunks) audit.push(Buffer.from(chunk));
  }), { numRuns: 5_000 });
});
