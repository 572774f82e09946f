/**
 * A host's SSH key (an agent's, or the proxy's jump server's) as ssh2 wants it, presenting the host certificate instead of
 * the bare key. ssh2 (with patches/ssh2+1.17.0.patch) offers a host key under its
 * `type` and sends `getPublicSSH()` as K_S, and signs with the key underneath: an
 * object made with `Object.create(parsedKey)` whose `type` is the certificate algorithm
 * and whose `getPublicSSH()` returns the certificate does exactly that.
 */
import { timingSafeEqual } from 'node:crypto';
import ssh2 from 'ssh2';
import type { ParsedKey } from 'ssh2';
import { parseCertificateLine } from './certificate.ts';
import type { SshCertificate } from './certificate.ts';
import { BadInputError } from '../errors.ts';

/** Host certificate algorithms ssh2 can serve (one signature algorithm per key type). */
const SERVABLE = new Set([
  'ssh-ed25519-cert-v01@openssh.com',
  'ecdsa-sha2-nistp256-cert-v01@openssh.com',
  'ecdsa-sha2-nistp384-cert-v01@openssh.com',
  'ecdsa-sha2-nistp521-cert-v01@openssh.com',
]);

export interface CertifiedHostKey {
  /** Pass as `hostKeys: [{ key }]` to `new ssh2.Server`. */
  key: ParsedKey;
  certificate: SshCertificate;
}

/**
 * Builds the ssh2 host key from the OpenSSH private key file text and the host
 * certificate line (`ssh-ed25519-cert-v01@openssh.com AAAA... [comment]`).
 * Throws BadInputError when they do not belong together.
 */
export function certifiedHostKey(privateKeyText: string, certificateLine: string): CertifiedHostKey {
  const parsed = ssh2.utils.parseKey(privateKeyText);
  if (parsed instanceof Error) throw new BadInputError(`SSH host key cannot be read: ${parsed.message}; get a new identity (re-join)`);
  const base = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!base || base.isPrivateKey() !== true) throw new BadInputError('SSH host key file holds no private key; get a new identity (re-join)');
  const { certificate } = parseCertificateLine(certificateLine);
  if (certificate.type !== 'host') throw new BadInputError(`SSH host certificate ${JSON.stringify(certificate.keyId)} is a ${certificate.type} certificate; a host key needs a host certificate`);
  if (!SERVABLE.has(certificate.algorithm)) {
    throw new BadInputError(`SSH host certificate type ${certificate.algorithm} cannot be served; use an Ed25519 or ECDSA host key`);
  }
  const own = base.getPublicSSH();
  const certified = certificate.publicKey.blob;
  if (own.length !== certified.length || !timingSafeEqual(own, certified)) {
    throw new BadInputError(`SSH host certificate ${JSON.stringify(certificate.keyId)} certifies a different key than the host key; the identity file is inconsistent: re-join`);
  }
  const key: ParsedKey = Object.create(base);
  const blob = Buffer.from(certificate.blob);
  Object.defineProperty(key, 'type', { value: certificate.algorithm, enumerable: true });
  Object.defineProperty(key, 'getPublicSSH', { value: () => blob });
  return { key, certificate };
}
