/**
 * The public form of the `jwt` CA's ES256 (ECDSA P-256) key, as served in the proxy's
 * JWKS, with `kid` = the key's RFC 7638 JWK thumbprint: deterministic, so every auth
 * server and proxy computes the same id for the same key, and a rotated key gets a new one.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { BadInputError } from '../../../protocols/errors.ts';

/** An EC P-256 public JWK for ES256 signatures. */
export interface Es256PublicJwk {
  kty: 'EC';
  crv: 'P-256';
  x: string;
  y: string;
  use: 'sig';
  alg: 'ES256';
  kid: string;
}

/** The public JWK (with kid) of an ECDSA P-256 key, public or private. */
export function es256PublicJwk(key: KeyObject): Es256PublicJwk {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  const jwk = publicKey.export({ format: 'jwk' });
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || typeof jwk.x !== 'string' || typeof jwk.y !== 'string') {
    throw new BadInputError(`Cannot use a ${publicKey.asymmetricKeyType} key for ES256: the jwt CA key must be ECDSA P-256`);
  }
  return { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y, use: 'sig', alg: 'ES256', kid: jwkThumbprint(jwk.x, jwk.y) };
}

/** RFC 7638 thumbprint of an EC P-256 key: base64url SHA-256 of `{"crv","kty","x","y"}` in that order, no spaces. */
export function jwkThumbprint(x: string, y: string): string {
  const canonical = JSON.stringify({ crv: 'P-256', kty: 'EC', x, y });
  return createHash('sha256').update(canonical).digest('base64url');
}

/** The KeyObject of a public JWK, after checking that its kid is its thumbprint. */
export function keyFromEs256Jwk(jwk: Es256PublicJwk): KeyObject {
  if (jwk.kid !== jwkThumbprint(jwk.x, jwk.y)) {
    throw new BadInputError(`Cannot use JWK "${jwk.kid}": its kid is not the RFC 7638 thumbprint of its key`);
  }
  try {
    return createPublicKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }, format: 'jwk' });
  } catch (error) {
    throw new BadInputError(`Cannot use JWK "${jwk.kid}": it is not a valid P-256 public key (${(error as Error).message})`, { cause: error });
  }
}
