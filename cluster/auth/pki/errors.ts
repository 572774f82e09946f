import { PosternError } from '../../../protocols/errors.ts';

/**
 * Errors of the cluster's PKI: certificate authorities, X.509 issuance and the checks
 * that turn a peer certificate into an Identity. Every refusal of a presented
 * certificate is a `CertificateError`, so an API layer can map the whole family to
 * "unauthenticated" while logs and tests still see the precise `code`.
 */

/** A presented certificate was refused; the subclass and `code` say why. */
export class CertificateError extends PosternError {}

/** The bytes are not an X.509 certificate (or not one Postern can read). */
export class CertificateMalformedError extends CertificateError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PST_CERT_MALFORMED', message, options);
  }
}

/** No trusted CA issued the certificate: it comes from another cluster, or from a CA since rotated out. */
export class UnknownAuthorityError extends CertificateError {
  constructor(message: string) {
    super('PST_CERT_UNKNOWN_CA', message);
  }
}

/** The certificate names a trusted CA as issuer, but the CA's signature does not verify (tampered or forged). */
export class BadSignatureError extends CertificateError {
  constructor(message: string) {
    super('PST_CERT_BAD_SIGNATURE', message);
  }
}

/** The certificate (or the CA that issued it) expired before `now`. */
export class CertificateExpiredError extends CertificateError {
  readonly notAfter: Date;

  constructor(message: string, notAfter: Date) {
    super('PST_CERT_EXPIRED', message);
    this.notAfter = notAfter;
  }
}

/** The certificate's validity starts after `now` (a clock far behind, or a certificate from the future). */
export class CertificateNotYetValidError extends CertificateError {
  readonly notBefore: Date;

  constructor(message: string, notBefore: Date) {
    super('PST_CERT_NOT_YET_VALID', message);
    this.notBefore = notBefore;
  }
}

/** A validly signed certificate carries no Postern identity extension (a CA, or a plain db-client certificate). */
export class MissingIdentityError extends CertificateError {
  constructor(message: string) {
    super('PST_CERT_NO_IDENTITY', message);
  }
}

/** The identity is of the other kind: a host certificate where a user was expected, or the reverse. */
export class WrongIdentityKindError extends CertificateError {
  constructor(message: string) {
    super('PST_CERT_WRONG_KIND', message);
  }
}

/** The identity names another cluster than the one whose CA signed it. */
export class WrongClusterError extends CertificateError {
  constructor(message: string) {
    super('PST_CERT_WRONG_CLUSTER', message);
  }
}

/** The certificate is not allowed for this use (a server-only certificate presented by a client, a CA as a leaf). */
export class WrongUsageError extends CertificateError {
  constructor(message: string) {
    super('PST_CERT_WRONG_USAGE', message);
  }
}

/** A Postern identity extension is present but its value does not decode or validate. */
export class IdentityExtensionError extends CertificateError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PST_CERT_BAD_IDENTITY', message, options);
  }
}

/** The CA a server presented does not match the pin the operator gave (`--ca-pin`). */
export class CaPinMismatchError extends PosternError {
  constructor(message: string) {
    super('PST_CA_PIN_MISMATCH', message);
  }
}

/** The cluster's certificate authorities are missing, unreadable, or asked for before `ensure()`. */
export class AuthorityError extends PosternError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PST_CA', message, options);
  }
}

/** DER bytes that do not follow the encoding rules (truncated, indefinite length, a wrong tag). */
export class DerFormatError extends PosternError {
  constructor(message: string) {
    super('PST_DER_MALFORMED', message);
  }
}
