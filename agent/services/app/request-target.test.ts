import assert from 'node:assert/strict';
import { test } from 'node:test';
import { refusedTarget } from './request-target.ts';

test('ordinary targets pass, dots inside names and queries included', () => {
  for (const target of ['/', '/a/b.html', '/.well-known/x', '/a..b/', '/v1.2/..x', '/search?q=../..', '/a%20b', '/%E2%82%AC', '/a/...']) {
    assert.equal(refusedTarget(target), undefined, target);
  }
});

test('dot segments are refused, raw or encoded, with slash or backslash', () => {
  for (const target of ['/..', '/../admin', '/app/./x', '/a/..', '/%2e%2e/admin', '/%2E%2e/x', '/.%2E/x', '/a%2f..%2fadmin', '/a\\..\\admin', '/a%5c..%5cadmin', '/./']) {
    const why = refusedTarget(target);
    assert.ok(why, target);
    assert.match(why, /has a dot segment/);
  }
});
