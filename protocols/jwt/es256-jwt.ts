/**
 * Compact JWS (RFC 7515) with ES256 (RFC 7518 3.4): what the app service puts in the
 * `Postern-Jwt-Assertion` header and what an upstream checks against the proxy's JWKS.
 * The signature is the raw 64-byte r||s form JOSE wants, not DER.
 */
import { createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { BadInputError } from '../errors.ts';

/** The claims Postern asserts to an app. */
export interface AppClaims {
  iss: string;
  sub: string;
  aud: string;
  username: string;
  roles: string[];
  traits: Record<string, string[]>;
  iat: number;
  nbf: number;
  exp: number;
}

/** One public key of a JWKS. */
export interface PublicJwk {
  kty: string;
  crv?: string;
  x?: string;
  y?: string;
  kid?: string;
  alg?: string;
}

/** Signs `claims` with an ECDSA P-256 private key; `kid` names the key in the header. */
export function signEs256Jwt(claims: object, key: KeyObject, kid: string): string {
  const header = _b64(JSON.stringify({ alg: 'ES256', typ: 'JWT', kid }));
  const payload = _b64(JSON.stringify(claims));
  const signature = sign('sha256', Buffer.from(`${header}.${payload}`), { key, dsaEncoding: 'ieee-p1363' });
  return `${header}.${payload}.${signature.toString('base64url')}`;
}

/**
 * The claims of `token` when a key of `jwks` with its `kid` verifies it and it is within
 * nbf..exp (60 s skew); otherwise a BadInputError saying why.
 */
export function verifyEs256Jwt(token: string, jwks: { keys: PublicJwk[] }, now = new Date()): Record<string, unknown> {
  const parts = token.split('.');
  if (parts.length !== 3) throw new BadInputError('not a compact JWT: expected three base64url parts separated by dots');
  const [rawHeader, rawPayload, rawSignature] = parts as [string, string, string];
  const header = _json(rawHeader, 'header');
  if (header.alg !== 'ES256') throw new BadInputError(`JWT algorithm ${JSON.stringify(header.alg)} is not accepted; only ES256`);
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  if (!jwk) throw new BadInputError(`no key in the JWKS has kid ${JSON.stringify(header.kid)}`);
  const publicKey = createPublicKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }, format: 'jwk' });
  const ok = verify('sha256', Buffer.from(`${rawHeader}.${rawPayload}`), { key: publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(rawSignature, 'base64url'));
  if (!ok) throw new BadInputError('the JWT signature does not verify with the key it names');
  const claims = _json(rawPayload, 'payload');
  const seconds = now.getTime() / 1000;
  if (typeof claims.exp !== 'number' || claims.exp + 60 < seconds) throw new BadInputError('the JWT has expired');
  if (typeof claims.nbf === 'number' && claims.nbf - 60 > seconds) throw new BadInputError('the JWT is not valid yet');
  return claims;
}

function _b64(text: string): string {
  return Buffer.from(text).toString('base64url');
}

function _json(part: string, what: string): Record<string, unknown> {
  try {
    const value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as unknown;
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // fall through to the error below
  }
  throw new BadInputError(`the JWT ${what} is not a base64url JSON object`);
}
