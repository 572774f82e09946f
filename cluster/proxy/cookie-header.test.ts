import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cookieValue } from './cookie-header.ts';

test('cookieValue finds the first cookie of that name, blanks around it ignored', () => {
  assert.equal(cookieValue('a=1; __Host-x=abc; b=2', '__Host-x'), 'abc');
  assert.equal(cookieValue('  __Host-x = abc ;b=2', '__Host-x'), 'abc');
  assert.equal(cookieValue('__Host-x=first; __Host-x=second', '__Host-x'), 'first');
  assert.equal(cookieValue(['a=1', '__Host-x=v=w'], '__Host-x'), 'v=w', 'split headers are one list; "=" in a value is kept');
  assert.equal(cookieValue('__Host-x=', '__Host-x'), '');
});

test('cookieValue: no such cookie, a longer or shorter name, or no header', () => {
  assert.equal(cookieValue('x=1; __Host-xy=2; Host-x=3', '__Host-x'), undefined);
  assert.equal(cookieValue('a=__Host-x=1', '__Host-x'), undefined, 'a value that looks like the name is not the cookie');
  assert.equal(cookieValue(undefined, '__Host-x'), undefined);
  assert.equal(cookieValue('', '__Host-x'), undefined);
});
