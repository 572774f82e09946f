/**
 * Deciding whether a parsed OpenSSH certificate may be used, the way sshd does for
 * `TrustedUserCAKeys` and ssh does for `@cert-authority`: trusted CA, valid CA
 * signature, right type, inside its validity window, naming the principal, and no
 * critical option left unenforced. Also the check ssh2 leaves to us: the user's
 * signature over the session data, made with the key inside the certificate.
 */
import { KeyObject, timingSafeEqual } from 'node:crypto';
import type { SshCertificate, SshCertificateType } from './certificate.ts';
import { keyAlgorithmOfCertificate, sshTimeToDate } from './certificate.ts';
import {
  SshCertificateBadSignatureError,
  SshCertificateCriticalOptionError,
  SshCertificateExpiredError,
  SshCertificateNotYetValidError,
  SshCertificatePrincipalError,
  SshCertificateSourceAddressError,
  SshCertificateUnknownCaError,
  SshCertificateWrongTypeError,
  SshFormatError,
  SshSignatureError,
} from './errors.ts';
import { BadInputError, PosternError } from '../errors.ts';
import { publicKeyToBlob } from './public-key.ts';
import { checkSignatureAlgorithm, parseSignature, verifySignature } from './signature.ts';
import type { SshSignature } from './signature.ts';
import { matchSourceAddress } from './source-address.ts';
import { SshReader } from './wire.ts';

/** What a certificate is checked against. */
export interface VerifyCertificateOptions {
  now: Date;
  /** The CA public keys (KeyObjects or SSH blobs) whose certificates are accepted. */
  trustedCAs: readonly (KeyObject | Uint8Array)[];
  expectedType: SshCertificateType;
  /** The login (user certificates) or host name (host certificates) that must be listed. Unchecked when omitted. */
  principal?: string;
  /** Tolerance for clocks that disagree, applied to both ends of the validity window. Default 60. */
  clockSkewSeconds?: number;
  /** The peer's IP address; required when the certificate has a `source-address` option. */
  sourceAddress?: string;
}

/** A certificate that passed `verifyCertificate`, with the critical options the caller must enforce. */
export interface VerifiedSshCertificate extends SshCertificate {
  /** The `force-command` critical option: the only command the session may run. */
  forceCommand: string | undefined;
}

/** Critical options Postern enforces; any other one makes the certificate unusable (PROTOCOL.certkeys). */
const KNOWN_CRITICAL_OPTIONS = new Set(['force-command', 'source-address']);
const DEFAULT_CLOCK_SKEW_SECONDS = 60;

/** Checks a parsed certificate for use now; returns it with `forceCommand`, or throws an `SshCertificateError`. */
export function verifyCertificate(cert: SshCertificate, options: VerifyCertificateOptions): VerifiedSshCertificate {
  checkTrustedCa(cert, options.trustedCAs);
  checkCaSignature(cert);
  checkType(cert, options.expectedType);
  checkValidity(cert, options.now, options.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS);
  if (options.principal !== undefined) checkPrincipal(cert, options.principal);
  checkCriticalOptions(cert, options.sourceAddress);
  return { ...cert, forceCommand: cert.criticalOptions.get('force-command') };
}

function describe(cert: SshCertificate): string {
  return `SSH ${cert.type} certificate ${JSON.stringify(cert.keyId)} (serial ${cert.serial})`;
}

/** Compares against every trusted CA in constant time per key, without stopping at the first match. */
function checkTrustedCa(cert: SshCertificate, trustedCAs: VerifyCertificateOptions['trustedCAs']): void {
  let trusted = false;
  for (const ca of trustedCAs) {
    const blob = ca instanceof KeyObject ? publicKeyToBlob(ca) : Buffer.from(ca);
    const same = blob.length === cert.signatureKey.blob.length && timingSafeEqual(blob, cert.signatureKey.blob);
    trusted = same || trusted;
  }
  if (!trusted) {
    throw new SshCertificateUnknownCaError(`${describe(cert)} is signed by a CA that is not trusted here (${cert.signatureKey.algorithm}); it was issued by another cluster or an old CA: get a certificate from this cluster`);
  }
}

function checkCaSignature(cert: SshCertificate): void {
  let valid: boolean;
  try {
    valid = verifySignature(cert.signatureKey.key, { data: cert.signedData, signature: cert.signature });
  } catch (error) {
    if (!(error instanceof PosternError)) throw error;
    throw new SshCertificateBadSignatureError(`${describe(cert)} has an unusable CA signature: ${error.message}`);
  }
  if (!valid) throw new SshCertificateBadSignatureError(`${describe(cert)} has a CA signature that does not verify; the certificate was altered or is corrupt`);
}

function checkType(cert: SshCertificate, expected: SshCertificateType): void {
  if (cert.type !== expected) {
    throw new SshCertificateWrongTypeError(`${describe(cert)} is a ${cert.type} certificate, but a ${expected} certificate is required here`);
  }
}

function checkValidity(cert: SshCertificate, now: Date, skewSeconds: number): void {
  if (!Number.isFinite(now.getTime()) || !Number.isFinite(skewSeconds) || skewSeconds < 0) {
    throw new BadInputError(`Cannot check ${describe(cert)}: now (${String(now)}) must be a valid date and clockSkewSeconds (${skewSeconds}) a non-negative number`);
  }
  const nowMs = BigInt(now.getTime());
  const skewMs = BigInt(Math.round(skewSeconds * 1000));
  if (nowMs + skewMs < cert.validAfter * 1000n) {
    throw new SshCertificateNotYetValidError(`${describe(cert)} is not valid until ${formatTime(cert.validAfter)}; it is now ${now.toISOString()}: check this host's clock`);
  }
  if (nowMs - skewMs >= cert.validBefore * 1000n) {
    throw new SshCertificateExpiredError(`${describe(cert)} expired at ${formatTime(cert.validBefore)}; it is now ${now.toISOString()}: request a new certificate`);
  }
}

function formatTime(seconds: bigint): string {
  return sshTimeToDate(seconds)?.toISOString() ?? 'the end of time';
}

/** An empty principal list would match anyone (OpenSSH refuses it for users); Postern refuses it for both types. */
function checkPrincipal(cert: SshCertificate, principal: string): void {
  if (cert.principals.length === 0) {
    throw new SshCertificatePrincipalError(`${describe(cert)} lists no principals, so it names no ${cert.type === 'user' ? 'login' : 'host'}; Postern refuses such certificates`);
  }
  if (!cert.principals.includes(principal)) {
    throw new SshCertificatePrincipalError(`${describe(cert)} does not allow ${JSON.stringify(principal)}; it allows ${cert.principals.map((p) => JSON.stringify(p)).join(', ')}`);
  }
}

function checkCriticalOptions(cert: SshCertificate, sourceAddress: string | undefined): void {
  for (const [name, value] of cert.criticalOptions) {
    if (!KNOWN_CRITICAL_OPTIONS.has(name)) {
      throw new SshCertificateCriticalOptionError(`${describe(cert)} has critical option ${JSON.stringify(name)}, which Postern does not enforce, so the certificate cannot be used`);
    }
    if (value === '') {
      throw new SshCertificateCriticalOptionError(`${describe(cert)} has critical option ${JSON.stringify(name)} without a value`);
    }
  }
  const allowed = cert.criticalOptions.get('source-address');
  if (allowed !== undefined) checkSourceAddress(cert, allowed, sourceAddress);
}

function checkSourceAddress(cert: SshCertificate, allowed: string, sourceAddress: string | undefined): void {
  if (sourceAddress === undefined) {
    throw new SshCertificateSourceAddressError(`${describe(cert)} is limited to source addresses ${allowed}, but no peer address was given to check`);
  }
  let inside: boolean;
  try {
    inside = matchSourceAddress(sourceAddress, allowed);
  } catch (error) {
    if (!(error instanceof SshFormatError)) throw error;
    throw new SshCertificateSourceAddressError(`${describe(cert)} has an unusable source-address option: ${error.message}`);
  }
  if (!inside) {
    throw new SshCertificateSourceAddressError(`${describe(cert)} may only be used from ${allowed}, not from ${sourceAddress}`);
  }
}

/** The user's proof of key possession, as ssh2 hands it to the `authentication` handler. */
export interface UserSignature {
  /** `ctx.signature`: a full signature blob, or (when ssh2 stripped a prefix) the bare signature bytes. */
  signature: Uint8Array;
  /** `ctx.blob`: the data the client signed (session id and the userauth request). */
  signedData: Uint8Array;
  /** `ctx.key.algo`: the algorithm the client named, e.g. `rsa-sha2-512-cert-v01@openssh.com`. */
  keyAlgorithm?: string;
}

/**
 * Verifies the user's signature with the key inside the certificate (call after
 * `verifyCertificate`); throws `SshSignatureError` when it does not verify.
 */
export function verifyCertificateUserSignature(cert: SshCertificate, proof: UserSignature): void {
  const signature = readUserSignature(proof);
  if (proof.keyAlgorithm !== undefined) checkNamedAlgorithm(cert, proof.keyAlgorithm, signature);
  if (!verifySignature(cert.publicKey.key, { data: proof.signedData, signature })) {
    throw new SshSignatureError(`The signature for ${describe(cert)} does not verify with the certificate's ${cert.publicKey.algorithm} key; the client does not hold the certified private key`);
  }
}

/** A full blob parses as one; otherwise the bytes are the bare signature of the named algorithm. */
function readUserSignature(proof: UserSignature): SshSignature {
  if (looksLikeSignatureBlob(proof.signature)) return parseSignature(proof.signature);
  if (proof.keyAlgorithm === undefined) {
    throw new SshFormatError('Cannot verify user signature: it is not an SSH signature blob, and no key algorithm was given to read it as bare bytes');
  }
  return { algorithm: checkSignatureAlgorithm(signatureAlgorithmOf(proof.keyAlgorithm)), bytes: Buffer.from(proof.signature) };
}

function looksLikeSignatureBlob(bytes: Uint8Array): boolean {
  try {
    const reader = new SshReader(bytes, 'signature');
    reader.text('algorithm', 64);
    reader.string('signature');
    reader.end();
    return true;
  } catch {
    return false;
  }
}

/** `rsa-sha2-512-cert-v01@openssh.com` -> `rsa-sha2-512`; `ssh-ed25519-cert-v01@openssh.com` -> `ssh-ed25519`. */
function signatureAlgorithmOf(keyAlgorithm: string): string {
  return keyAlgorithm.replace(/-cert-v01@openssh\.com$/, '');
}

/**
 * The client names the algorithm in its request and again in the signature; like sshd,
 * insist they agree (`ssh-rsa-cert-v01@openssh.com` may carry either rsa-sha2 hash).
 */
function checkNamedAlgorithm(cert: SshCertificate, keyAlgorithm: string, signature: SshSignature): void {
  const named = signatureAlgorithmOf(keyAlgorithm);
  const rsaHashNamed = named === 'rsa-sha2-256' || named === 'rsa-sha2-512';
  const namedKey = rsaHashNamed ? 'ssh-rsa' : named;
  if (namedKey !== keyAlgorithmOfCertificate(cert.algorithm) || (rsaHashNamed && signature.algorithm !== named)) {
    throw new SshSignatureError(`The client asked to authenticate with ${keyAlgorithm} but presented a ${cert.algorithm} signed with ${signature.algorithm}`);
  }
}
