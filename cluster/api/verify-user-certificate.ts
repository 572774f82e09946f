/**
 * The check an agent makes of a user certificate a proxy forwards with a dial
 * (`postern-identity`: base64 of the user's X.509 PEM): chain to one of the cluster's
 * user CAs, validity, client usage, and the identity inside. Shared here so agents use
 * the auth server's own verifier without reaching into cluster/auth.
 */
import { verifyCertificateChain } from '../auth/pki/verify-certificate.ts';
import type { UserIdentity } from '../auth/pki/identity.ts';

export type { UserIdentity } from '../auth/pki/identity.ts';

/** Verifies a user certificate (PEM or DER) against the user CA certificates; throws a PosternError saying why not. */
export function verifyUserCertificate(certificate: string | Uint8Array, userCaPems: readonly string[], now?: Date): UserIdentity {
  return verifyCertificateChain(certificate, { trustedCaCerts: userCaPems, expectedKind: 'user', usage: 'client', now }) as UserIdentity;
}
