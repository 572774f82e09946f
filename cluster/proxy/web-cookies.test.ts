import { test } from 'node:test';
import assert from 'node:assert/strict';
import type http from 'node:http';
import { AccessDeniedError } from '../../protocols/errors.ts';
import { checkCsrf, checkOrigin, sessionCookie, sessionIdOf } from './web-cookies.ts';

const request = (headers: Record<string, string>) => ({ headers }) as unknown as http.IncomingMessage;

test('the session cookie is __Host-, Secure, HttpOnly and SameSite=Strict, and is read back among other cookies', () => {
  assert.equal(sessionCookie('abc', 3600.7), '__Host-postern_session=abc; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=3600');
  assert.equal(sessionIdOf(request({ cookie: 'a=1; __Host-postern_session=xyz ; b=2' })), 'xyz');
  assert.equal(sessionIdOf(request({ cookie: 'postern_session=xyz' })), undefined, 'an unprefixed cookie (settable by a sibling host) is ignored');
  assert.equal(sessionIdOf(request({})), undefined);
});

test('CSRF: the token must match exactly; a cross-site Origin is refused; a same-site one passes', () => {
  const token = 'T'.repeat(43);
  assert.throws(() => checkCsrf(request({ host: 'p:1' }), token), AccessDeniedError);
  assert.throws(() => checkCsrf(request({ host: 'p:1', 'x-csrf-token': 'T'.repeat(42) }), token), AccessDeniedError);
  assert.throws(() => checkCsrf(request({ host: 'p:1', 'x-csrf-token': `${'T'.repeat(42)}U` }), token), AccessDeniedError);
  assert.throws(() => checkCsrf(request({ host: 'p:1', 'x-csrf-token': '' }), ''), AccessDeniedError, 'an empty expected token never matches');
  assert.throws(() => checkCsrf(request({ host: 'p:1', origin: 'https://evil.example', 'x-csrf-token': token }), token), /cross-site request refused/);
  checkCsrf(request({ host: 'p:1', origin: 'https://p:1', 'x-csrf-token': token }), token);
  checkCsrf(request({ ':authority': 'p:1', origin: 'https://p:1', 'x-csrf-token': token }), token);
  assert.throws(() => checkOrigin(request({ host: 'p:1', origin: 'http://p:1' })), AccessDeniedError, 'plain http is another origin');
});
