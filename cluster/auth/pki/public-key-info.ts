/**
 * The holder's public key for a certificate: its SubjectPublicKeyInfo DER, checked to
 * be a key type Postern certifies (ECDSA P-256/P-384/P-521, Ed25519, RSA >= 2048).
 */
import { createPublicKey, KeyObject } from 'node:crypto';
import { BadInputError } from '../../../protocols/errors.ts';
import { spkiCurveOid } from './certificate-fields.ts';

const exportedSpki = new WeakMap<KeyObject, Buffer>();
const spkiPemPattern = /^\s*-----BEGIN PUBLIC KEY-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END PUBLIC KEY-----\s*$/;

/**
 * The SPKI DER of a PEM or DER SubjectPublicKeyInfo or a KeyObject (a private key gives
 * its public half), and whether it is RSA (which adds keyEncipherment). Speed matters here: OpenSSL parses a `PUBLIC KEY` PEM in ~16 us but the same bytes as
 * DER in ~40 us (it tries decoders in turn), and exporting a KeyObject costs ~46 us. So
 * SPKI bytes are parsed through a PEM wrapper and embedded as given (OpenSSL has just
 * accepted exactly them), and a KeyObject's export is cached.
 */
export function publicKeyInfo(input: string | Uint8Array | KeyObject): { spki: Buffer; rsa: boolean } {
  let key: KeyObject;
  let spki: Buffer | undefined;
  try {
    if (input instanceof KeyObject) {
      key = input.type === 'public' ? input : createPublicKey(input);
      spki = exportedSpki.get(key);
    } else {
      const match = typeof input === 'string' ? spkiPemPattern.exec(input) : null;
      spki = typeof input === 'string' ? (match ? Buffer.from(match[1]!, 'base64') : undefined) : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
      key = createPublicKey(spki === undefined ? (input as string) : _publicKeyPem(spki));
    }
  } catch (error) {
    throw new BadInputError(
      `Cannot issue a certificate: the public key does not parse as a PEM or DER SubjectPublicKeyInfo (${(error as Error).message})`,
      { cause: error },
    );
  }
  _checkKeyType(key, spki);
  if (spki === undefined) {
    spki = key.export({ type: 'spki', format: 'der' });
    if (input instanceof KeyObject) exportedSpki.set(key, spki);
  }
  return { spki, rsa: key.asymmetricKeyType === 'rsa' };
}

function _publicKeyPem(der: Buffer): string {
  return `-----BEGIN PUBLIC KEY-----\n${der.toString('base64')}\n-----END PUBLIC KEY-----\n`;
}

const namedCurves: Record<string, string> = {
  '1.2.840.10045.3.1.7': 'prime256v1',
  '1.3.132.0.34': 'secp384r1',
  '1.3.132.0.35': 'secp521r1',
};

function _checkKeyType(key: KeyObject, spki: Buffer | undefined): void {
  const type = key.asymmetricKeyType;
  // asymmetricKeyDetails is recomputed on every access (~17 us for EC): read the curve
  // from the SPKI's algorithm parameters when we have the bytes.
  const curveOid = type === 'ec' && spki !== undefined ? spkiCurveOid(spki) : undefined;
  const details = curveOid === undefined && type !== 'ed25519' ? key.asymmetricKeyDetails : undefined;
  const curve = curveOid !== undefined ? namedCurves[curveOid] : details?.namedCurve;
  const bits = details?.modulusLength ?? 0;
  const ok =
    (type === 'ec' && (curve === 'prime256v1' || curve === 'secp384r1' || curve === 'secp521r1')) ||
    type === 'ed25519' ||
    (type === 'rsa' && bits >= 2048);
  if (!ok) {
    throw new BadInputError(
      `Cannot issue a certificate for a ${type}${curve ? ` ${curve}` : ''}${bits ? ` ${bits}-bit` : ''} key: use ECDSA P-256 (preferred), P-384, P-521, Ed25519 or RSA of at least 2048 bits`,
    );
  }
}
