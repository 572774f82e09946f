/**
 * The identities of the client certificates auth's callers present, verified once and
 * then remembered for a short while: every agent and proxy calls auth every few seconds
 * with the same certificate, and a full chain check per call (parsing the certificate
 * and every trusted CA) was a tenth of an idle auth server's CPU.
 */
import { verifyCertificateChain } from '../pki/verify-certificate.ts';
import type { Identity } from '../pki/identity.ts';

/** A verified certificate is checked again after this long even if nothing changed. */
const reverifyMs = 60_000;
/** More distinct certificates than this and the memo starts over (each entry is small). */
const maxEntries = 10_000;

interface _Verified {
  identity: Identity;
  /** The CA certificates it was verified against: a change (rotation, a new trust) re-verifies. */
  cas: readonly string[];
  verifiedAt: number;
}

export class PeerIdentities {
  readonly #verified = new Map<string, _Verified>();

  /**
   * The identity of DER certificate `raw` for a client, as verifyCertificateChain would
   * give it (and throwing what it throws), answered from memory when the same certificate
   * was verified against the same CAs less than a minute ago and has not expired since.
   */
  verify(raw: Uint8Array, trustedCaCerts: readonly string[], now: Date): Identity {
    const key = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64');
    const known = this.#verified.get(key);
    const at = now.getTime();
    if (known && at - known.verifiedAt < reverifyMs && at >= known.verifiedAt && at < known.identity.expires.getTime() && _same(known.cas, trustedCaCerts)) {
      return known.identity;
    }
    this.#verified.delete(key);
    const identity = verifyCertificateChain(raw, { trustedCaCerts, now, usage: 'client' });
    if (this.#verified.size >= maxEntries) this.#verified.clear();
    this.#verified.set(key, { identity, cas: [...trustedCaCerts], verifiedAt: at });
    return identity;
  }
}

function _same(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((pem, i) => pem === b[i]);
}
