/**
 * Errors of the SSH key and certificate codec. Every class carries a stable `code`;
 * callers that only care "was this certificate refused" catch `SshCertificateError`.
 */
import { PosternError } from '../errors.ts';

/** Bytes or text that do not follow the SSH wire format (truncated, oversized, trailing data). */
export class SshFormatError extends PosternError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PST_SSH_MALFORMED', message, options);
  }
}

/** A key type or signature algorithm Postern does not implement, or refuses (ssh-rsa SHA-1). */
export class SshUnsupportedAlgorithmError extends PosternError {
  constructor(message: string) {
    super('PST_SSH_UNSUPPORTED_ALGORITHM', message);
  }
}

/** A signature that does not verify with the key it claims. */
export class SshSignatureError extends PosternError {
  constructor(message: string) {
    super('PST_SSH_BAD_SIGNATURE', message);
  }
}

/** Base of every reason a well-formed certificate is refused by `verifyCertificate`. */
export class SshCertificateError extends PosternError {}

/** The certificate was signed by a key that is not one of the trusted CAs. */
export class SshCertificateUnknownCaError extends SshCertificateError {
  constructor(message: string) {
    super('PST_SSH_CERT_UNKNOWN_CA', message);
  }
}

/** The CA signature over the certificate does not verify. */
export class SshCertificateBadSignatureError extends SshCertificateError {
  constructor(message: string) {
    super('PST_SSH_CERT_BAD_SIGNATURE', message);
  }
}

/** A host certificate offered as a user certificate, or the other way round. */
export class SshCertificateWrongTypeError extends SshCertificateError {
  constructor(message: string) {
    super('PST_SSH_CERT_WRONG_TYPE', message);
  }
}

/** The certificate's validity starts in the future (beyond the allowed clock skew). */
export class SshCertificateNotYetValidError extends SshCertificateError {
  constructor(message: string) {
    super('PST_SSH_CERT_NOT_YET_VALID', message);
  }
}

/** The certificate's validity ended (beyond the allowed clock skew). */
export class SshCertificateExpiredError extends SshCertificateError {
  constructor(message: string) {
    super('PST_SSH_CERT_EXPIRED', message);
  }
}

/** The requested login or host name is not among the certificate's principals. */
export class SshCertificatePrincipalError extends SshCertificateError {
  constructor(message: string) {
    super('PST_SSH_CERT_PRINCIPAL_NOT_ALLOWED', message);
  }
}

/** The connecting address is outside the certificate's `source-address` list. */
export class SshCertificateSourceAddressError extends SshCertificateError {
  constructor(message: string) {
    super('PST_SSH_CERT_SOURCE_ADDRESS', message);
  }
}

/** A critical option Postern does not understand; PROTOCOL.certkeys says to refuse the certificate. */
export class SshCertificateCriticalOptionError extends SshCertificateError {
  constructor(message: string) {
    super('PST_SSH_CERT_UNKNOWN_CRITICAL_OPTION', message);
  }
}
