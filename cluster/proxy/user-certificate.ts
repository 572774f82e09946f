/** The user identity of a TLS client certificate, checked against the cluster's user CAs. */
import type { TLSSocket } from 'node:tls';
import { PosternError } from '../../protocols/errors.ts';
import { encodeRoutedIdentity } from '../api/routed-identity.ts';
import type { UserIdentity } from '../auth/pki/identity.ts';
import { verifyCertificateChain } from '../auth/pki/verify-certificate.ts';

/** No certificate: `none`; a bad one: `bad` with why; else the identity. */
export type PeerUser = { kind: 'none' } | { kind: 'bad'; why: string } | { kind: 'user'; identity: UserIdentity };

/** Checks the client certificate of `socket` (the port router asked for one but did not require it). */
export function peerUser(socket: TLSSocket, userCaPems: readonly string[], now?: Date): PeerUser {
  const raw = socket.getPeerCertificate()?.raw;
  if (raw === undefined) return { kind: 'none' };
  if (userCaPems.length === 0) return { kind: 'bad', why: 'this proxy has not loaded the user CA from the auth service yet; try again in a few seconds' };
  try {
    return { kind: 'user', identity: verifyCertificateChain(raw, { trustedCaCerts: [...userCaPems], expectedKind: 'user', usage: 'client', now }) as UserIdentity };
  } catch (error) {
    return { kind: 'bad', why: error instanceof PosternError ? error.message : `certificate check failed: ${String(error)}` };
  }
}

/** The dial identity header for a verified user. */
export function routedHeader(identity: Pick<UserIdentity, 'username' | 'roles' | 'traits' | 'cluster' | 'expires'>, via: 'certificate' | 'app-session', addr: string): string {
  return encodeRoutedIdentity({ v: 1, username: identity.username, roles: identity.roles, traits: identity.traits, cluster: identity.cluster, expires: identity.expires.toISOString(), via, addr: addr.slice(0, 64) });
}
