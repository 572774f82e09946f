/** The user identity of a TLS client certificate, checked against the cluster's user CAs. */
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { PosternError } from '../../protocols/errors.ts';
import { encodeRoutedIdentity } from '../api/routed-identity.ts';
import type { UserIdentity } from '../auth/pki/identity.ts';
import { verifyCertificateChain } from '../auth/pki/verify-certificate.ts';

/** No certificate: `none`; a bad one: `bad` with why; else the identity. */
export type PeerUser = { kind: 'none' } | { kind: 'bad'; why: string } | { kind: 'user'; identity: UserIdentity; pem: string };

/** Checks the client certificate of `socket` (the port router asked for one but did not require it). */
export function peerUser(socket: TLSSocket, userCaPems: readonly string[], now?: Date): PeerUser {
  const raw = socket.getPeerCertificate()?.raw;
  if (raw === undefined) return { kind: 'none' };
  if (userCaPems.length === 0) return { kind: 'bad', why: 'this proxy has not loaded the user CA from the auth service yet; try again in a few seconds' };
  try {
    const identity = verifyCertificateChain(raw, { trustedCaCerts: [...userCaPems], expectedKind: 'user', usage: 'client', now }) as UserIdentity;
    return { kind: 'user', identity, pem: new X509Certificate(raw).toString() };
  } catch (error) {
    return { kind: 'bad', why: error instanceof PosternError ? error.message : `certificate check failed: ${String(error)}` };
  }
}

/** Header with the client's address as the proxy saw it (agents audit it). */
export const clientAddrHeader = 'postern-client-addr';

/**
 * How a certificate holder is dialled: to the certificate's route-to-cluster, with the
 * certificate itself as the identity (a leaf's proxy and agents verify it against the
 * root's CA and map its roles), and the client's address in a header.
 */
export function certificateDial(identity: Pick<UserIdentity, 'routeToCluster'>, pem: string, addr: string): { cluster: string; identity: string; headers: Record<string, string> } {
  return { cluster: identity.routeToCluster, identity: Buffer.from(pem).toString('base64'), headers: { [clientAddrHeader]: addr.slice(0, 64) } };
}

/** The dial identity header for a user the proxy vouches for without a certificate (an app session). */
export function routedHeader(identity: Pick<UserIdentity, 'username' | 'roles' | 'traits' | 'cluster' | 'expires'>, via: 'certificate' | 'app-session', addr: string): string {
  return encodeRoutedIdentity({ v: 1, username: identity.username, roles: identity.roles, traits: identity.traits, cluster: identity.cluster, expires: identity.expires.toISOString(), via, addr: addr.slice(0, 64) });
}
