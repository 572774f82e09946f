/**
 * CA pins: `sha256:<64 hex digits>`, the SHA-256 of the CA certificate's
 * SubjectPublicKeyInfo DER (DESIGN.md 4: "sha256: of the cluster CA's public key").
 * An agent joining with `--ca-pin` checks the CA the proxy presents against it before
 * it sends its token. Pinning the key rather than the certificate means a re-issued CA
 * certificate with the same key keeps its pin. Equal to:
 *
 *   openssl x509 -in ca.pem -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum
 */
import { createHash, timingSafeEqual, X509Certificate } from 'node:crypto';
import { BadInputError } from '../../../protocols/errors.ts';
import { CaPinMismatchError } from './errors.ts';

const pinPattern = /^sha256:([0-9a-f]{64})$/;

/** The pin of a CA certificate given as PEM or DER. */
export function caPin(caCert: string | Uint8Array): string {
  return `sha256:${_spkiDigest(caCert).toString('hex')}`;
}

/** Parses a pin to its 32 digest bytes; accepts upper-case hex; BadInputError when it is not a pin. */
export function parseCaPin(pin: string): Buffer {
  const match = pinPattern.exec(pin.trim().toLowerCase());
  if (match === null) {
    throw new BadInputError(
      `Cannot use "${pin}" as a CA pin: expected sha256: followed by 64 hex digits; ` +
        'copy it from `pctl status` on the cluster (or `postern configure` output)',
    );
  }
  return Buffer.from(match[1]!, 'hex');
}

/** Whether the CA certificate's key matches any of the pins; compares in constant time. */
export function matchesCaPin(caCert: string | Uint8Array, pins: string | readonly string[]): boolean {
  const digest = _spkiDigest(caCert);
  let matched = false;
  for (const pin of typeof pins === 'string' ? [pins] : pins) {
    // No early exit: every pin is compared, so timing does not tell which one matched.
    matched = timingSafeEqual(digest, parseCaPin(pin)) || matched;
  }
  return matched;
}

/** Throws CaPinMismatchError unless the CA certificate's key matches one of the pins. */
export function verifyCaPin(caCert: string | Uint8Array, pins: string | readonly string[]): void {
  const list = typeof pins === 'string' ? [pins] : pins;
  if (list.length === 0) throw new BadInputError('Cannot verify the cluster CA: no CA pin given');
  if (!matchesCaPin(caCert, list)) {
    throw new CaPinMismatchError(
      `The cluster presented a CA whose pin is ${caPin(caCert)}, not the expected ${list.join(' or ')}. ` +
        'Either the pin was mistyped, the CA was rotated (get the new pin with `pctl status`), or something is ' +
        'intercepting the connection: do not join until the pins match.',
    );
  }
}

function _spkiDigest(caCert: string | Uint8Array): Buffer {
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(typeof caCert === 'string' ? caCert : Buffer.from(caCert.buffer, caCert.byteOffset, caCert.byteLength));
  } catch (error) {
    throw new BadInputError(`Cannot compute a CA pin: the certificate does not parse (${(error as Error).message})`, { cause: error });
  }
  return createHash('sha256').update(certificate.publicKey.export({ type: 'spki', format: 'der' })).digest();
}
