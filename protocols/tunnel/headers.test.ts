import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { BadInputError } from '../errors.ts';
import { MAX_REASON_LENGTH, decodeReason, dialHeaders, encodeReason, extraHeaders, isValidService } from './headers.ts';

describe('dial headers', () => {
  it('builds a POST /dial with the service, the identity and extra headers', () => {
    assert.deepEqual(dialHeaders('db/pg-main', 'aWQ', { 'postern-target-port': '5432' }), {
      ':method': 'POST', ':path': '/dial', 'postern-service': 'db/pg-main', 'postern-identity': 'aWQ', 'postern-target-port': '5432',
    });
  });

  it('rejects service names, identities and headers that could not travel or would clash', () => {
    for (const service of ['', '-ssh', 'a b', 'x'.repeat(256), 'ssh\n', 'é']) assert.equal(isValidService(service), false, service);
    for (const service of ['ssh', 'db/pg-main', 'kube:prod', 'app@grafana', 'x'.repeat(255)]) assert.equal(isValidService(service), true, service);
    assert.throws(() => dialHeaders('ssh', 'a\r\nb'), BadInputError);
    assert.throws(() => dialHeaders('ssh', 'x', { 'postern-service': 'other' }), BadInputError);
    assert.throws(() => dialHeaders('ssh', 'x', { ':path': '/x' }), BadInputError);
    assert.throws(() => dialHeaders('ssh', 'x', { Upper: 'x' }), BadInputError);
    assert.throws(() => dialHeaders('ssh', 'x', { ok: 'bad\nvalue' }), BadInputError);
  });

  it('keeps only caller-added headers on the agent side', () => {
    assert.deepEqual(extraHeaders({ ':path': '/dial', 'postern-service': 's', 'postern-identity': 'i', 'x-a': '1', 'set-cookie': ['a'] }), { 'x-a': '1' });
  });
});

describe('refusal reasons', () => {
  it('round-trip any text, cut to the maximum length (property)', () => {
    fc.assert(fc.property(fc.string({ unit: 'grapheme', maxLength: 300 }), (reason) => {
      const encoded = encodeReason(reason);
      assert.match(encoded, /^[\x21-\x7e]*$/);
      assert.equal(decodeReason(encoded), reason);
    }));
    assert.equal(decodeReason(encodeReason('x'.repeat(5_000))).length, MAX_REASON_LENGTH);
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 2_000 }), (reason) => {
      const decoded = decodeReason(encodeReason(reason)); // lone surrogates and cut pairs must not throw
      assert.ok(decoded.length <= MAX_REASON_LENGTH);
    }));
    assert.equal(decodeReason(encodeReason('x'.repeat(MAX_REASON_LENGTH - 1) + '😀')), 'x'.repeat(MAX_REASON_LENGTH - 1) + '\ufffd');
  });

  it('decode malformed or missing values without throwing', () => {
    assert.equal(decodeReason('%E0%A4%A'), '%E0%A4%A');
    assert.equal(decodeReason(undefined), 'no reason given');
  });
});
