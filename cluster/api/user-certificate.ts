/**
 * Verifies a user's X.509 certificate forwarded by a proxy (the `postern-identity` of
 * a tunnel dial) against the user CA certificates read from auth. For agents, which
 * reach the cluster only through this API package: the check itself is the PKI's
 * (cluster/auth/pki/verify-certificate.ts), pure and stateless.
 */
import { verifyCertificateChain } from '../auth/pki/verify-certificate.ts';
import type { UserIdentity } from '../auth/pki/identity.ts';

export type { UserIdentity, DatabaseRoute } from '../auth/pki/identity.ts';

/** The identity a user certificate (PEM or DER) speaks for; throws a PosternError naming what is wrong. */
export function verifyUserCertificate(certificate: string | Uint8Array, userCaPems: readonly string[], now?: Date): UserIdentity {
  return verifyCertificateChain(certificate, { trustedCaCerts: userCaPems, expectedKind: 'user', usage: 'client', now }) as UserIdentity;
}
