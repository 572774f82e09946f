/**
 * What the agent reads from an X.509 certificate without the auth server's PKI code:
 * the host id (subject CN), the system roles (one subject O each, as the cluster's
 * issuer writes them) and the validity window.
 */
import { X509Certificate } from 'node:crypto';

/** The parts of a host certificate the agent acts on. */
export interface CertificateInfo {
  /** Subject CN: the host id for host certificates. */
  commonName: string;
  /** Subject O values: the system roles for host certificates. */
  organizations: string[];
  notBefore: Date;
  notAfter: Date;
}

/** Reads the subject and validity of a PEM or DER certificate; throws on one that does not parse. */
export function certificateInfo(certificate: string | Buffer | X509Certificate): CertificateInfo {
  const parsed = certificate instanceof X509Certificate ? certificate : new X509Certificate(certificate);
  const subject = _subjectFields(parsed.subject);
  return {
    commonName: subject.filter(([key]) => key === 'CN').map(([, value]) => value)[0] ?? '',
    organizations: subject.filter(([key]) => key === 'O').map(([, value]) => value),
    notBefore: new Date(parsed.validFrom),
    notAfter: new Date(parsed.validTo),
  };
}

/** When a certificate reaches half its lifetime: the moment to renew it. */
export function halfLife(info: Pick<CertificateInfo, 'notBefore' | 'notAfter'>): Date {
  return new Date(info.notBefore.getTime() + (info.notAfter.getTime() - info.notBefore.getTime()) / 2);
}

/** Node prints a subject as `KEY=value` lines; multi-valued RDNs join with `+`. */
function _subjectFields(subject: string): Array<[string, string]> {
  const fields: Array<[string, string]> = [];
  for (const line of subject.split('\n')) {
    for (const part of line.split('+')) {
      const match = /^([A-Za-z0-9.]+)=(.*)$/.exec(part);
      if (match) fields.push([match[1] ?? '', match[2] ?? '']);
    }
  }
  return fields;
}
