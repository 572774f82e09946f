/**
 * OpenSSH certificates: signing, formatting and parsing, per OpenSSH PROTOCOL.certkeys
 * (key blobs per RFC 4253 / 8709 / 5656 / 8332, data types per RFC 4251). Checking a
 * certificate against trusted CAs and a login is in `verify-certificate.ts`.
 *
 * Layout of the certificate blob (every field is signed except the last):
 *
 *   string  "<key type>-cert-v01@openssh.com"   (ssh-ed25519, ecdsa-sha2-nistpNNN, ssh-rsa)
 *   string  nonce                               (random, so the signed data is unpredictable)
 *   ...     the key's public fields             (ed25519: string pk;
 *                                                ecdsa: string curve, string Q;
 *                                                rsa: mpint e, mpint n)
 *   uint64  serial
 *   uint32  type                                (1 = user, 2 = host)
 *   string  key id                              (free text, logged by sshd)
 *   string  valid principals                    (a sequence of string: logins or host names)
 *   uint64  valid after                         (seconds since 1970, inclusive)
 *   uint64  valid before                        (exclusive; 2^64-1 means forever)
 *   string  critical options                    (sequence of string name, string data;
 *   string  extensions                           names in strict byte order, no duplicates;
 *                                                data empty for flags like permit-pty,
 *                                                otherwise a string holding the value)
 *   string  reserved                            (ignored)
 *   string  signature key                       (the CA's public key blob, never a certificate)
 *   string  signature                           (CA signature over all the bytes above)
 *
 * Parsing is strict: trailing bytes, unknown certificate types, malformed or unsorted
 * options and over-long fields are refused with an `SshFormatError`, never a crash.
 */
import { KeyObject, randomBytes } from 'node:crypto';
import { SshFormatError, SshUnsupportedAlgorithmError } from './errors.ts';
import {
  isSshKeyAlgorithm,
  parsePublicKeyBlob,
  readPublicKeyFields,
  splitKeyLine,
  formatKeyLine,
  toSshPublicKey,
  writePublicKeyFields,
  sshKeyAlgorithms,
} from './public-key.ts';
import type { SshKeyAlgorithm, SshPublicKey } from './public-key.ts';
import { createSignature } from './signature.ts';
import { SshReader, SshWriter } from './wire.ts';

/** Who a certificate is for: a user logging in, or a host proving its name. */
export type SshCertificateType = 'user' | 'host';

/** A parsed OpenSSH certificate. The signature is not checked here; see `verifyCertificate`. */
export interface SshCertificate {
  /** The certificate type name, e.g. `ssh-ed25519-cert-v01@openssh.com`. */
  algorithm: string;
  nonce: Buffer;
  /** The certified key (the subject's key), as KeyObject and plain blob. */
  publicKey: SshPublicKey;
  serial: bigint;
  type: SshCertificateType;
  keyId: string;
  principals: string[];
  /** Seconds since 1970; the certificate is valid from this second on. */
  validAfter: bigint;
  /** Seconds since 1970; the certificate is valid before this second. `SSH_TIME_FOREVER` = no end. */
  validBefore: bigint;
  /** Option name to value; `''` for a flag option. */
  criticalOptions: Map<string, string>;
  /** Extension name to value; `''` for a flag extension such as `permit-pty`. */
  extensions: Map<string, string>;
  /** The CA key that signed the certificate. */
  signatureKey: SshPublicKey;
  /** The CA's signature blob (`string algorithm, string signature`). */
  signature: Buffer;
  /** The bytes the signature covers: the certificate up to the signature field. */
  signedData: Buffer;
  /** The whole certificate blob. */
  blob: Buffer;
}

/** What the CA writes into a certificate it signs. */
export interface CertificateFields {
  type: SshCertificateType;
  /** The subject's key (a private key contributes its public half). */
  publicKey: KeyObject | SshPublicKey;
  keyId: string;
  principals: readonly string[];
  validAfter: Date | bigint;
  validBefore: Date | bigint;
  /** Defaults to 0 (a CA that does not number its certificates). */
  serial?: bigint;
  /** Defaults to 32 random bytes, as ssh-keygen does. */
  nonce?: Uint8Array;
  criticalOptions?: ReadonlyMap<string, string> | Readonly<Record<string, string>>;
  extensions?: ReadonlyMap<string, string> | Readonly<Record<string, string>>;
}

/** `valid before` meaning "never expires". */
export const SSH_TIME_FOREVER = 0xffff_ffff_ffff_ffffn;
/** A certificate larger than this is refused: ssh2 caps whole packets at 35,000 bytes. */
export const MAX_CERTIFICATE_BYTES = 64 * 1024;
/** OpenSSH's limit on principals per certificate (SSHKEY_CERT_MAX_PRINCIPALS). */
export const MAX_PRINCIPALS = 256;
const CERT_SUFFIX = '-cert-v01@openssh.com';
const certificateTypeNumbers: Record<SshCertificateType, number> = { user: 1, host: 2 };
const MAX_NAME_BYTES = 256;

/** The certificate type name for a plain key algorithm (`ssh-ed25519` -> `ssh-ed25519-cert-v01@openssh.com`). */
export function certificateAlgorithmFor(keyAlgorithm: SshKeyAlgorithm): string {
  return `${keyAlgorithm}${CERT_SUFFIX}`;
}

/** The certificate type names Postern parses. */
export const sshCertificateAlgorithms: readonly string[] = sshKeyAlgorithms.map(certificateAlgorithmFor);

/** The plain key algorithm of a certificate type name; refuses names that are not certificate types. */
export function keyAlgorithmOfCertificate(certificateAlgorithm: string): SshKeyAlgorithm {
  const base = certificateAlgorithm.endsWith(CERT_SUFFIX) ? certificateAlgorithm.slice(0, -CERT_SUFFIX.length) : '';
  if (!isSshKeyAlgorithm(base)) {
    throw new SshUnsupportedAlgorithmError(`Cannot parse SSH certificate of type ${JSON.stringify(certificateAlgorithm)}: Postern supports ${sshCertificateAlgorithms.join(', ')}`);
  }
  return base;
}

/** Seconds since 1970 for a Date, rounded down (SSH certificate times have one-second resolution). */
export function dateToSshTime(date: Date): bigint {
  const ms = date.getTime();
  if (!Number.isFinite(ms) || ms < 0) throw new SshFormatError(`Cannot encode certificate time ${String(date)}: it must be a valid date after 1970`);
  return BigInt(Math.floor(ms / 1000));
}

/** The Date for certificate seconds, or undefined when it is past what a Date holds (as "forever" is). */
export function sshTimeToDate(seconds: bigint): Date | undefined {
  const maxDateSeconds = 8_640_000_000_000n;
  return seconds > maxDateSeconds ? undefined : new Date(Number(seconds) * 1000);
}

/**
 * Signs a certificate with the CA's private key and returns the certificate blob.
 * RSA CAs sign with rsa-sha2-512 (as ssh-keygen does) unless `rsaHash: 'sha256'`.
 */
export function signCertificate(fields: CertificateFields, caPrivateKey: KeyObject, options: { rsaHash?: 'sha256' | 'sha512' } = {}): Buffer {
  const subject = fields.publicKey instanceof KeyObject ? toSshPublicKey(fields.publicKey) : fields.publicKey;
  const validAfter = toSshTime(fields.validAfter);
  const validBefore = toSshTime(fields.validBefore);
  if (validAfter >= validBefore) throw new SshFormatError(`Cannot sign certificate ${JSON.stringify(fields.keyId)}: valid after (${validAfter}) is not before valid before (${validBefore})`);
  const writer = new SshWriter()
    .string(certificateAlgorithmFor(subject.algorithm))
    .string(fields.nonce ?? randomBytes(32));
  writePublicKeyFields(writer, subject.key);
  writer
    .uint64(fields.serial ?? 0n)
    .uint32(certificateTypeNumbers[fields.type])
    .string(checkText(fields.keyId, 'key id'))
    .string(encodePrincipals(fields.principals))
    .uint64(validAfter)
    .uint64(validBefore)
    .string(encodeOptions(fields.criticalOptions, 'critical option'))
    .string(encodeOptions(fields.extensions, 'extension'))
    .string('')
    .string(toSshPublicKey(caPrivateKey).blob);
  const signedData = writer.toBuffer();
  const signature = createSignature(caPrivateKey, signedData, options);
  return new SshWriter().raw(signedData).string(signature).toBuffer();
}

function toSshTime(value: Date | bigint): bigint {
  return typeof value === 'bigint' ? value : dateToSshTime(value);
}

function checkText(value: string, field: string): string {
  if (value.includes('\0')) throw new SshFormatError(`Cannot sign certificate: ${field} ${JSON.stringify(value)} contains a NUL character`);
  return value;
}

function encodePrincipals(principals: readonly string[]): Buffer {
  if (principals.length === 0) throw new SshFormatError('Cannot sign certificate: it has no principals; a certificate without principals is valid for every login or host name, which Postern never issues');
  if (principals.length > MAX_PRINCIPALS) throw new SshFormatError(`Cannot sign certificate: ${principals.length} principals is more than OpenSSH's ${MAX_PRINCIPALS}`);
  const writer = new SshWriter();
  for (const principal of principals) {
    if (principal === '') throw new SshFormatError('Cannot sign certificate: a principal is empty');
    writer.string(checkText(principal, 'principal'));
  }
  return writer.toBuffer();
}

/** Options and extensions in strict byte order of their names, as OpenSSH requires. */
function encodeOptions(options: CertificateFields['criticalOptions'], kind: string): Buffer {
  const entries = options === undefined ? [] : options instanceof Map ? [...options] : Object.entries(options);
  entries.sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const writer = new SshWriter();
  for (const [name, value] of entries) {
    if (name === '' || Buffer.byteLength(name) > MAX_NAME_BYTES) throw new SshFormatError(`Cannot sign certificate: ${kind} name ${JSON.stringify(name)} is empty or longer than ${MAX_NAME_BYTES} bytes`);
    writer.string(checkText(name, `${kind} name`));
    writer.string(value === '' ? Buffer.alloc(0) : new SshWriter().string(checkText(value, `${kind} ${name}`)).toBuffer());
  }
  return writer.toBuffer();
}

/** Formats a certificate blob as a `.pub`-style line: `<type>-cert-v01@openssh.com base64 [comment]`. */
export function formatCertificate(blob: Uint8Array, comment?: string): string {
  const algorithm = new SshReader(blob, 'SSH certificate').text('certificate type name', 64);
  keyAlgorithmOfCertificate(algorithm);
  return formatKeyLine(algorithm, blob, comment);
}

/** Parses a certificate line (`...-cert-v01@openssh.com base64 [comment]`, as in `id_ed25519-cert.pub`). */
export function parseCertificateLine(line: string): { certificate: SshCertificate; comment: string } {
  const parts = splitKeyLine(line, sshCertificateAlgorithms);
  if (parts.options !== undefined) throw new SshFormatError('Cannot parse certificate line: it starts with options; expected "<type>-cert-v01@openssh.com base64 [comment]"');
  return { certificate: parseCertificate(parts.blob), comment: parts.comment };
}

/** Parses a certificate blob strictly; it does not check the CA signature (`verifyCertificate` does). */
export function parseCertificate(blob: Uint8Array): SshCertificate {
  if (blob.length > MAX_CERTIFICATE_BYTES) throw new SshFormatError(`Cannot parse SSH certificate: ${blob.length} bytes is more than the ${MAX_CERTIFICATE_BYTES} allowed`);
  const bytes = Buffer.from(blob);
  const reader = new SshReader(bytes, 'SSH certificate');
  const algorithm = reader.text('certificate type name', 64);
  const keyAlgorithm = keyAlgorithmOfCertificate(algorithm);
  const nonce = reader.string('nonce');
  const publicKey = toSshPublicKey(readPublicKeyFields(reader, keyAlgorithm));
  const serial = reader.uint64('serial');
  const type = readCertificateType(reader);
  const keyId = reader.text('key id');
  const principals = readPrincipals(reader.string('valid principals'));
  const validAfter = reader.uint64('valid after');
  const validBefore = reader.uint64('valid before');
  const criticalOptions = readOptions(reader.string('critical options'), 'critical option');
  const extensions = readOptions(reader.string('extensions'), 'extension');
  reader.string('reserved');
  const signatureKey = readSignatureKey(reader);
  const signedData = bytes.subarray(0, reader.offset);
  const signature = readSignatureBlob(reader);
  reader.end();
  return { algorithm, nonce, publicKey, serial, type, keyId, principals, validAfter, validBefore, criticalOptions, extensions, signatureKey, signature, signedData, blob: bytes };
}

function readCertificateType(reader: SshReader): SshCertificateType {
  const number = reader.uint32('certificate type');
  if (number === certificateTypeNumbers.user) return 'user';
  if (number === certificateTypeNumbers.host) return 'host';
  return reader.fail(`certificate type ${number} is neither 1 (user) nor 2 (host)`);
}

function readPrincipals(section: Buffer): string[] {
  const reader = new SshReader(section, 'SSH certificate principals');
  const principals: string[] = [];
  while (reader.remaining > 0) {
    if (principals.length === MAX_PRINCIPALS) reader.fail(`more than OpenSSH's ${MAX_PRINCIPALS} principals`);
    principals.push(reader.text(`principal ${principals.length + 1}`));
  }
  return principals;
}

/** Reads `(string name, string data)*`; data is empty (a flag) or exactly one string (the value). */
function readOptions(section: Buffer, kind: string): Map<string, string> {
  const reader = new SshReader(section, `SSH certificate ${kind}s`);
  const options = new Map<string, string>();
  let previous: Buffer | undefined;
  while (reader.remaining > 0) {
    const name = reader.text(`${kind} name`, MAX_NAME_BYTES);
    if (name === '') reader.fail(`a ${kind} has an empty name`);
    // Strict UTF-8 decoding makes this the exact bytes on the wire, which OpenSSH orders by.
    const nameBytes = Buffer.from(name, 'utf8');
    if (previous !== undefined && Buffer.compare(previous, nameBytes) >= 0) {
      reader.fail(`${kind} ${JSON.stringify(name)} is out of order or repeated; OpenSSH requires names in strictly increasing byte order`);
    }
    previous = nameBytes;
    options.set(name, readOptionValue(reader.string(`${kind} ${name} data`), `${kind} ${name}`));
  }
  return options;
}

function readOptionValue(data: Buffer, field: string): string {
  if (data.length === 0) return '';
  const reader = new SshReader(data, `SSH certificate ${field}`);
  const value = reader.text('value');
  reader.end();
  return value;
}

function readSignatureKey(reader: SshReader): SshPublicKey {
  const blob = reader.string('signature key');
  const name = new SshReader(blob, 'SSH certificate signature key').text('key type', 64);
  if (name.endsWith(CERT_SUFFIX)) reader.fail('the signature key is itself a certificate; a CA must sign with a plain key');
  return parsePublicKeyBlob(blob);
}

/** Checks the signature's outer structure only; the algorithm is judged when it is verified. */
function readSignatureBlob(reader: SshReader): Buffer {
  const blob = reader.string('signature');
  const inner = new SshReader(blob, 'SSH certificate signature');
  inner.text('signature algorithm', 64);
  inner.string('signature bytes');
  inner.end();
  return blob;
}
