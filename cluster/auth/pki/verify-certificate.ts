/**
 * Turns a presented X.509 certificate into the Identity it speaks for, or refuses it
 * with a typed CertificateError. The Auth API calls this with the mTLS peer
 * certificate (grpc-js: `call.getAuthContext().sslPeerCertificate.raw`, DER) and the
 * CA certificates it trusts for that kind of caller.
 *
 *   parse -> find the trusted CA named as issuer (name + key identifier)
 *         -> verify its signature -> check the leaf and CA validity at `now`
 *         -> check it is a leaf, with the usage asked for
 *         -> read the one identity extension -> check kind (asked for, and the CA's)
 *         -> check the identity's cluster is the signing CA's
 *
 * Chains are one level deep (Postern CAs sign leaves directly, pathLen 0), so this is
 * the whole chain check. TLS has usually done it already; this repeats it against
 * exactly the CAs of the expected kind, which TLS (trusting every cluster CA) cannot.
 */
import { X509Certificate } from 'node:crypto';
import { readCertificateFields } from './certificate-fields.ts';
import {
  BadSignatureError,
  CertificateExpiredError,
  CertificateMalformedError,
  CertificateNotYetValidError,
  IdentityExtensionError,
  MissingIdentityError,
  UnknownAuthorityError,
  WrongClusterError,
  WrongIdentityKindError,
  WrongUsageError,
} from './errors.ts';
import type { Identity } from './identity.ts';
import { decodeIdentityExtension, hostIdentityOid, userIdentityOid } from './x509-extensions.ts';
import { caNameOf } from './ca-kinds.ts';

export interface VerifyCertificateOptions {
  /** CA certificates (PEM or DER) that may have issued it: active and additionally trusted ones. */
  trustedCaCerts: ReadonlyArray<string | Uint8Array>;
  /** Default: the wall clock. */
  now?: Date;
  /** Refuse the other kind (a host certificate where a user is expected). */
  expectedKind?: Identity['kind'];
  /** Require this extended key usage. */
  usage?: 'client' | 'server';
}

const EKU = { client: '1.3.6.1.5.5.7.3.2', server: '1.3.6.1.5.5.7.3.1' } as const;

/** Verifies `cert` (PEM or DER) against the trusted CAs and returns its identity; throws a CertificateError subclass otherwise. */
export function verifyCertificateChain(cert: string | Uint8Array, options: VerifyCertificateOptions): Identity {
  const now = options.now ?? new Date();
  const leaf = _parse(cert);
  const who = _describe(leaf);
  const issuer = _findIssuer(leaf, options.trustedCaCerts.map(_trustedCa), who);
  _checkValidity(leaf, now, who, 'certificate');
  _checkValidity(issuer, now, who, 'CA that issued the certificate');
  if (leaf.ca) throw new WrongUsageError(`${who} is a CA certificate, not a user or host certificate`);
  if (options.usage !== undefined && !(leaf.keyUsage ?? []).includes(EKU[options.usage])) {
    throw new WrongUsageError(`${who} is not issued for ${options.usage} authentication (extended key usage); get a certificate for that use`);
  }
  const identity = _readIdentity(leaf, who);
  _checkIssuerMatches(identity, issuer, who);
  if (options.expectedKind !== undefined && identity.kind !== options.expectedKind) {
    throw new WrongIdentityKindError(
      `${who} is a ${identity.kind} certificate where a ${options.expectedKind} certificate is required` +
        (options.expectedKind === 'user' ? '; log in as a user (psh login)' : '; use the host identity from the data directory'),
    );
  }
  return identity;
}

function _parse(cert: string | Uint8Array): X509Certificate {
  try {
    return new X509Certificate(typeof cert === 'string' ? cert : Buffer.from(cert.buffer, cert.byteOffset, cert.byteLength));
  } catch (error) {
    throw new CertificateMalformedError(`The presented certificate does not parse as X.509 (${(error as Error).message})`, { cause: error });
  }
}

const trustedCache = new Map<string | Uint8Array, X509Certificate>();
const maxTrustedCache = 256;

function _trustedCa(ca: string | Uint8Array): X509Certificate {
  // PEM strings are cached by value; byte arrays by identity (callers keep theirs).
  let parsed = trustedCache.get(ca);
  if (parsed === undefined) {
    try {
      parsed = new X509Certificate(typeof ca === 'string' ? ca : Buffer.from(ca.buffer, ca.byteOffset, ca.byteLength));
    } catch (error) {
      throw new CertificateMalformedError(`A trusted CA certificate does not parse (${(error as Error).message}); check the stored authorities`, {
        cause: error,
      });
    }
    if (trustedCache.size >= maxTrustedCache) trustedCache.delete(trustedCache.keys().next().value!);
    trustedCache.set(ca, parsed);
  }
  return parsed;
}

function _findIssuer(leaf: X509Certificate, trusted: X509Certificate[], who: string): X509Certificate {
  // checkIssued compares names and key identifiers only; during a rotation two CAs can match, so try each.
  const named = trusted.filter((ca) => ca.ca && leaf.checkIssued(ca));
  if (named.length === 0) {
    throw new UnknownAuthorityError(
      `${who} was issued by "${_oneLine(leaf.issuer)}", which is not a CA trusted here: it may come from another ` +
        'cluster, or from a CA since rotated out. Log in to this cluster again (psh login) or re-join the agent.',
    );
  }
  const issuer = named.find((ca) => leaf.verify(ca.publicKey));
  if (issuer === undefined) {
    throw new BadSignatureError(`${who} names the trusted CA "${_oneLine(leaf.issuer)}" as issuer, but its signature does not verify; it was altered or forged`);
  }
  return issuer;
}

function _checkValidity(certificate: X509Certificate, now: Date, who: string, what: string): void {
  const notBefore = certificate.validFromDate;
  const notAfter = certificate.validToDate;
  if (now.getTime() > notAfter.getTime()) {
    const subject = what === 'certificate' ? who : `${who}: the ${what}`;
    throw new CertificateExpiredError(
      `${subject} expired at ${notAfter.toISOString()} (now ${now.toISOString()}); ` +
        (what === 'certificate' ? 'log in again (psh login) or let the agent renew its identity' : 'the cluster CA must be rotated'),
      notAfter,
    );
  }
  if (now.getTime() < notBefore.getTime()) {
    throw new CertificateNotYetValidError(
      `${who}: the ${what} is not valid before ${notBefore.toISOString()} (now ${now.toISOString()}); check this machine's clock`,
      notBefore,
    );
  }
}

function _readIdentity(leaf: X509Certificate, who: string): Identity {
  let extensions;
  try {
    extensions = readCertificateFields(leaf.raw).extensions;
  } catch (error) {
    throw new CertificateMalformedError(`${who} has malformed extensions (${(error as Error).message})`, { cause: error });
  }
  const user = extensions.get(userIdentityOid);
  const host = extensions.get(hostIdentityOid);
  if (user !== undefined && host !== undefined) throw new IdentityExtensionError(`${who} carries both a user and a host identity; refusing it`);
  const found = user ?? host;
  if (found === undefined) {
    throw new MissingIdentityError(`${who} carries no Postern identity (extension ${userIdentityOid} or ${hostIdentityOid}); it was not issued for logging in`);
  }
  return decodeIdentityExtension(user !== undefined ? userIdentityOid : hostIdentityOid, found.value, { notAfter: leaf.validToDate });
}

/** A Postern CA vouches only for identities of its own kind and cluster (a leaf's CA cannot speak for root users). */
function _checkIssuerMatches(identity: Identity, issuer: X509Certificate, who: string): void {
  const ca = caNameOf(issuer);
  if (ca === undefined) return;
  if (ca.kind !== identity.kind) {
    throw new WrongIdentityKindError(`${who} carries a ${identity.kind} identity but was signed by the ${ca.kind} CA; refusing it`);
  }
  if (ca.cluster !== identity.cluster) {
    throw new WrongClusterError(`${who} claims cluster ${identity.cluster} but was signed by the CA of cluster ${ca.cluster}; refusing it`);
  }
}

function _describe(leaf: X509Certificate): string {
  return `certificate "${_oneLine(leaf.subject)}" (serial ${leaf.serialNumber})`;
}

function _oneLine(name: string): string {
  return name.replaceAll('\n', ', ');
}
