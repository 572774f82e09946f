import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { signEs256Jwt, verifyEs256Jwt } from './es256-jwt.ts';

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...createPublicKey(privateKey).export({ format: 'jwk' }), kid: 'k1' } as { kty: string; crv: string; x: string; y: string; kid: string };
const jwks = { keys: [jwk] };
const now = Math.floor(Date.now() / 1000);

test('a signed assertion verifies with its JWKS and carries the claims', () => {
  const token = signEs256Jwt({ sub: 'alice', roles: ['dev'], exp: now + 60 }, privateKey, 'k1');
  assert.deepEqual(verifyEs256Jwt(token, jwks), { sub: 'alice', roles: ['dev'], exp: now + 60 });
});

test('refusals: tampered payload, unknown kid, other algorithm, expired, not yet valid, garbage', () => {
  const token = signEs256Jwt({ sub: 'alice', exp: now + 60 }, privateKey, 'k1');
  const [header, , signature] = token.split('.');
  const forged = `${header}.${Buffer.from(JSON.stringify({ sub: 'root', exp: now + 60 })).toString('base64url')}.${signature}`;
  assert.throws(() => verifyEs256Jwt(forged, jwks), /signature does not verify/);
  assert.throws(() => verifyEs256Jwt(signEs256Jwt({ exp: now + 60 }, privateKey, 'k2'), jwks), /no key in the JWKS has kid "k2"/);
  const none = `${Buffer.from(JSON.stringify({ alg: 'none', kid: 'k1' })).toString('base64url')}.${Buffer.from('{}').toString('base64url')}.`;
  assert.throws(() => verifyEs256Jwt(none, jwks), /only ES256/);
  assert.throws(() => verifyEs256Jwt(signEs256Jwt({ exp: now - 120 }, privateKey, 'k1'), jwks), /expired/);
  assert.throws(() => verifyEs256Jwt(signEs256Jwt({ exp: now + 600, nbf: now + 300 }, privateKey, 'k1'), jwks), /not valid yet/);
  assert.throws(() => verifyEs256Jwt('not-a-jwt', jwks), /three base64url parts/);
});
