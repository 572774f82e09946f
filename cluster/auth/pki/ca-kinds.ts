/**
 * The kinds of certificate authority every cluster has (DESIGN.md 4):
 *
 *   host       X.509 + SSH   signs agents, proxies and auth servers
 *   user       X.509 + SSH   signs users and bots
 *   db-client  X.509         the agent's client identities towards upstream databases
 *   jwt        ES256 key     signs app assertions; its JWKS is served by the proxy
 */
import type { X509Certificate } from 'node:crypto';

export const caKinds = ['host', 'user', 'db-client', 'jwt'] as const;
export type CaKind = (typeof caKinds)[number];

/** The CAs that have an X.509 half. */
export const x509CaKinds = ['host', 'user', 'db-client'] as const;
export type X509CaKind = (typeof x509CaKinds)[number];

/** The CAs that have an SSH half. */
export const sshCaKinds = ['host', 'user'] as const;
export type SshCaKind = (typeof sshCaKinds)[number];

/** The Postern CA kind named by a certificate's subject (`O=Postern, OU=<kind>, CN=<cluster>`), if it has one. */
export function caKindOf(certificate: X509Certificate): X509CaKind | undefined {
  return caNameOf(certificate)?.kind;
}

/** Kind and cluster of a Postern CA certificate, from its subject; undefined for any other certificate. */
export function caNameOf(certificate: X509Certificate): { kind: X509CaKind; cluster: string } | undefined {
  // Node prints one attribute per line; cluster names hold no characters it would escape.
  const lines = certificate.subject.split('\n');
  if (lines.length !== 3 || lines[0] !== 'O=Postern' || !lines[2]!.startsWith('CN=')) return undefined;
  const kind = x509CaKinds.find((k) => lines[1] === `OU=${k}`);
  return kind === undefined ? undefined : { kind, cluster: lines[2]!.slice(3) };
}
