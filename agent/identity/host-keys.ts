/**
 * The key pairs a host generates for itself: ECDSA P-256 for TLS (browsers and every
 * TLS stack accept it) and Ed25519 for SSH. Only the public halves are sent to the
 * cluster; the private halves stay in the agent's identity file.
 */
import { generateKeyPair as generateKeyPairCallback } from 'node:crypto';
import { promisify } from 'node:util';
import { formatAuthorizedKey } from '../../protocols/ssh/public-key.ts';
import { formatOpenSshPrivateKey } from '../../protocols/ssh/private-key.ts';

const generateKeyPair = promisify(generateKeyPairCallback);

/** A host's fresh keys, in the encodings the join request and the identity file use. */
export interface HostKeys {
  /** PKCS#8 PEM of the TLS key. */
  tlsKeyPem: string;
  /** SPKI PEM of the TLS key, sent to the cluster. */
  tlsPublicKeyPem: string;
  /** OpenSSH private key file text of the SSH key. */
  sshKeyPem: string;
  /** `ssh-ed25519 AAAA...` line of the SSH key, sent to the cluster. */
  sshPublicKey: string;
}

/** Generates a new TLS and SSH key pair for a host. */
export async function generateHostKeys(comment = 'postern-host'): Promise<HostKeys> {
  const [tls, ssh] = await Promise.all([generateKeyPair('ec', { namedCurve: 'P-256' }), generateKeyPair('ed25519')]);
  return {
    tlsKeyPem: tls.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    tlsPublicKeyPem: tls.publicKey.export({ type: 'spki', format: 'pem' }) as string,
    sshKeyPem: formatOpenSshPrivateKey(ssh.privateKey, { comment }),
    sshPublicKey: formatAuthorizedKey(ssh.publicKey, comment),
  };
}
