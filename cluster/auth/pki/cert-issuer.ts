/**
 * Issues the certificate pairs the cluster hands out: for users (X.509 from the user
 * CA + an SSH user certificate) and for hosts (X.509 from the host CA + an SSH host
 * certificate). Both halves carry the same identity and expiry, so every protocol
 * reaches the same decision.
 */
import { randomBytes } from 'node:crypto';
import { parseAuthorizedKey } from '../../../protocols/ssh/public-key.ts';
import { formatCertificate, signCertificate } from '../../../protocols/ssh/certificate.ts';
import { BadInputError } from '../../../protocols/errors.ts';
import type { Clock } from '../../common/clock.ts';
import type { CertAuthorities } from './authorities.ts';
import type { HostIdentity, UserIdentity } from './identity.ts';
import { issueCertificate } from './x509.ts';
import { sshUserExtensions, type SshPermissions } from '../../api/ssh-identity.ts';

export interface IssuedPair {
  /** `…-cert-v01@openssh.com AAAA…` line. */
  sshCertificate: string;
  tlsCertPem: string;
  expires: Date;
}

/** How far back certificates are dated, so a peer whose clock lags a little accepts them. */
const backdateMs = 60_000;

export class CertIssuer {
  readonly #authorities: CertAuthorities;
  readonly #clock: Clock;

  constructor(authorities: CertAuthorities, clock: Clock) {
    this.#authorities = authorities;
    this.#clock = clock;
  }

  /** A user's pair; `identity.expires` is the expiry of both halves. */
  /** An X.509 client certificate only (no SSH half): route certificates for apps and Kubernetes. */
  issueUserTls(identity: UserIdentity, tlsPublicKey: string): string {
    return issueCertificate({ ca: this.#authorities.x509Signer('user'), publicKey: tlsPublicKey, identity, notAfter: identity.expires, now: this.#clock.now(), usage: 'client' });
  }

  issueUser(options: { identity: UserIdentity; sshPublicKey: string; tlsPublicKey: string; permit: SshPermissions }): IssuedPair {
    const { identity } = options;
    const now = this.#clock.now();
    const tlsCertPem = issueCertificate({
      ca: this.#authorities.x509Signer('user'),
      publicKey: options.tlsPublicKey,
      identity,
      notAfter: identity.expires,
      now,
      usage: 'client',
    });
    const blob = signCertificate(
      {
        type: 'user',
        publicKey: parseSshKey(options.sshPublicKey),
        keyId: identity.username,
        principals: identity.logins.length > 0 ? identity.logins : [`-postern-nologin-${randomBytes(4).toString('hex')}`],
        validAfter: new Date(now.getTime() - backdateMs),
        validBefore: identity.expires,
        serial: serial(),
        extensions: sshUserExtensions(identity, options.permit),
      },
      this.#authorities.sshSigner('user'),
    );
    return { sshCertificate: formatCertificate(blob, identity.username), tlsCertPem, expires: identity.expires };
  }

  /** A host's pair: X.509 for mutual TLS (client and server) and an SSH host certificate. */
  issueHost(options: {
    identity: HostIdentity;
    sshPublicKey?: string;
    tlsPublicKey: string;
    dnsNames?: string[];
    ipAddresses?: string[];
  }): { tlsCertPem: string; sshCertificate?: string; expires: Date } {
    const { identity } = options;
    const now = this.#clock.now();
    const dnsNames = [identity.hostId, `${identity.hostId}.${identity.cluster}`, ...(options.dnsNames ?? [])];
    const tlsCertPem = issueCertificate({
      ca: this.#authorities.x509Signer('host'),
      publicKey: options.tlsPublicKey,
      identity,
      notAfter: identity.expires,
      now,
      dnsNames: [...new Set(dnsNames)],
      ipAddresses: options.ipAddresses ?? [],
      usage: 'both',
    });
    if (!options.sshPublicKey) return { tlsCertPem, expires: identity.expires };
    const principals = [...new Set([identity.hostId, identity.nodeName, `${identity.hostId}.${identity.cluster}`, ...(options.dnsNames ?? []), ...(options.ipAddresses ?? [])])];
    const blob = signCertificate(
      {
        type: 'host',
        publicKey: parseSshKey(options.sshPublicKey),
        keyId: identity.hostId,
        principals,
        validAfter: new Date(now.getTime() - backdateMs),
        validBefore: identity.expires,
        serial: serial(),
      },
      this.#authorities.sshSigner('host'),
    );
    return { tlsCertPem, sshCertificate: formatCertificate(blob, identity.nodeName), expires: identity.expires };
  }
}

function parseSshKey(line: string) {
  try {
    return parseAuthorizedKey(line).publicKey;
  } catch (error) {
    throw new BadInputError(`ssh public key: ${(error as Error).message}`);
  }
}

function serial(): bigint {
  return randomBytes(8).readBigUInt64BE() & 0x7fff_ffff_ffff_ffffn;
}
