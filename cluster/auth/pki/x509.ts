/**
 * X.509 certificates for Postern's CAs and the users and hosts they sign.
 *
 * Issuance builds the DER TBSCertificate itself (der.ts) and signs it with
 * `crypto.sign('sha256', tbs, caKey)` (ECDSA signatures come out DER-encoded).
 * Measured here (Node 24, one core): @peculiar/x509's `X509CertificateGenerator.create` issued 270-740
 * certificates/s, which alone misses the 2,000 X.509 + SSH pairs/s target; the DER
 * builder issues ~9,500/s (~110 us CPU each, bench/certs.ts), the ECDSA signature
 * (~37 us) and OpenSSL's parse of the holder's key (~16 us) being the largest parts. Verification (verify-certificate.ts) uses node:crypto's X509Certificate
 * (OpenSSL underneath, nothing to load); @peculiar/x509 is used only by the tests, as
 * an independent parser of what we build.
 *
 * Every CA key is ECDSA P-256 (browsers refuse Ed25519 TLS certificates); leaf keys
 * may be ECDSA P-256/P-384/P-521, Ed25519 or RSA >= 2048 bits.
 *
 * ```ts
 * const ca = createCaCertificate({ clusterName: 'root', kind: 'user' });
 * const pem = issueCertificate({ ca, publicKey: clientKeyPem, identity, notAfter, usage: 'client' });
 * ```
 */
import { createHash, createPrivateKey, generateKeyPairSync, type KeyObject, randomBytes, sign, X509Certificate } from 'node:crypto';
import { BadInputError } from '../../../protocols/errors.ts';
import { bitString, boolean, explicit, implicitPrimitive, namedBits, octetString, oid, seq, set, smallInteger, time, unsignedInteger, utf8String } from './der.ts';
import { readCertificateFields, readKeyIdentifier, subjectPublicKeyBits } from './certificate-fields.ts';
import { caNameOf, x509CaKinds, type X509CaKind } from './ca-kinds.ts';
import { AuthorityError } from './errors.ts';
import type { Identity } from './identity.ts';
import { publicKeyInfo } from './public-key-info.ts';
import { encodeSubjectAltName } from './subject-alt-name.ts';
import { encodeIdentityExtension, subjectFor } from './x509-extensions.ts';

export { verifyCertificateChain, type VerifyCertificateOptions } from './verify-certificate.ts';
export { caPin, matchesCaPin, verifyCaPin } from './ca-pin.ts';

export { x509CaKinds, type X509CaKind } from './ca-kinds.ts';

export type CertificateUsage = 'client' | 'server' | 'both';

/** A CA certificate and its PKCS#8 private key, as stored. */
export interface CaCertificateAndKey {
  certPem: string;
  keyPem: string;
}

/** What createCaCertificate returns: the stored form plus the key ready to sign with. */
export interface CreatedCa extends CaCertificateAndKey {
  key: KeyObject;
}

/** A CA parsed once for issuing: see loadCa. */
export interface X509Ca {
  readonly certPem: string;
  readonly certificate: X509Certificate;
  /** The CA's subject Name DER, copied into the issuer field of what it signs. */
  readonly subject: Buffer;
  /** The CA's subject key identifier, copied into authorityKeyIdentifier. */
  readonly keyId: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly key: KeyObject;
  /** From the CA's OU when it is a Postern CA. */
  readonly kind: X509CaKind | undefined;
  /** From the CA's CN when it is a Postern CA. */
  readonly cluster: string | undefined;
}

const OID = {
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  organizationalUnit: '2.5.4.11',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

const KEY_USAGE = { digitalSignature: 0, keyEncipherment: 2, keyCertSign: 5, cRLSign: 6 } as const;

/** notBefore is set this far in the past, so a verifier whose clock runs a little behind accepts a fresh certificate. */
export const clockSkewBackdateMs = 60_000;
const defaultCaValidityDays = 3650;
const clusterNamePattern = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$/;
const ecdsaWithSha256 = seq(oid(OID.ecdsaWithSha256));

export interface CreateCaOptions {
  clusterName: string;
  kind: X509CaKind;
  /** Default 3650 (ten years, as Teleport's). */
  validityDays?: number;
  now?: Date;
}

/** Creates a self-signed ECDSA P-256 CA certificate `O=Postern, OU=<kind>, CN=<clusterName>` and its key. */
export function createCaCertificate(options: CreateCaOptions): CreatedCa {
  const { clusterName, kind } = options;
  if (!clusterNamePattern.test(clusterName)) {
    throw new BadInputError(
      `Cannot create a CA for cluster "${clusterName}": a cluster name is 1-253 letters, digits, '.', '_' or '-', starting and ending with a letter or digit`,
    );
  }
  if (!x509CaKinds.includes(kind)) throw new BadInputError(`Cannot create an X.509 CA of kind "${kind}": expected one of ${x509CaKinds.join(', ')}`);
  const days = options.validityDays ?? defaultCaValidityDays;
  if (!Number.isFinite(days) || days <= 0) throw new BadInputError(`Cannot create a CA valid for ${days} days: expected a positive number`);
  const now = options.now ?? new Date();
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const name = encodeName([
    [OID.organization, 'Postern'],
    [OID.organizationalUnit, kind],
    [OID.commonName, clusterName],
  ]);
  const der = _signCertificate({
    issuer: name,
    subject: name,
    notBefore: new Date(now.getTime() - clockSkewBackdateMs),
    notAfter: new Date(now.getTime() + days * 86_400_000),
    spki,
    key: privateKey,
    extensions: [
      _extension(OID.basicConstraints, true, seq(boolean(true), smallInteger(0))), // CA, signs leaves only
      _extension(OID.keyUsage, true, namedBits([KEY_USAGE.keyCertSign, KEY_USAGE.cRLSign])),
      _extension(OID.subjectKeyIdentifier, false, octetString(keyIdentifier(spki))),
    ],
  });
  return { certPem: derToPem(der), keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, key: privateKey };
}

const loadedCas = new Map<string, X509Ca>();
const maxLoadedCas = 64;

/**
 * Parses a CA certificate and key once for issuing (cached by their PEM text): checks
 * the certificate is a CA, the key is its ECDSA P-256 key, and extracts what every
 * issued certificate copies from it.
 */
export function loadCa(material: CaCertificateAndKey): X509Ca {
  const cacheKey = `${material.certPem}\n${material.keyPem}`;
  const cached = loadedCas.get(cacheKey);
  if (cached !== undefined) return cached;
  const ca = _parseCa(material);
  if (loadedCas.size >= maxLoadedCas) loadedCas.delete(loadedCas.keys().next().value!);
  loadedCas.set(cacheKey, ca);
  return ca;
}

function _parseCa(material: CaCertificateAndKey): X509Ca {
  let certificate: X509Certificate;
  let key: KeyObject;
  try {
    certificate = new X509Certificate(material.certPem);
    key = createPrivateKey(material.keyPem);
  } catch (error) {
    throw new AuthorityError(`Cannot load the CA: its certificate or key PEM does not parse (${(error as Error).message})`, { cause: error });
  }
  if (!certificate.ca) throw new AuthorityError(`Cannot load the CA "${certificate.subject}": the certificate is not a CA certificate`);
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1' || !certificate.checkPrivateKey(key)) {
    throw new AuthorityError(`Cannot load the CA "${certificate.subject}": the key is not the certificate's ECDSA P-256 key`);
  }
  const fields = readCertificateFields(certificate.raw);
  const ski = fields.extensions.get(OID.subjectKeyIdentifier);
  const spki = certificate.publicKey.export({ type: 'spki', format: 'der' });
  const name = caNameOf(certificate);
  return {
    certPem: material.certPem,
    certificate,
    subject: Buffer.from(fields.subject),
    keyId: ski === undefined ? keyIdentifier(spki) : Buffer.from(readKeyIdentifier(ski.value)),
    notBefore: certificate.validFromDate,
    notAfter: certificate.validToDate,
    key,
    kind: name?.kind,
    cluster: name?.cluster,
  };
}

export interface IssueCertificateOptions {
  /** A CA from loadCa, or its stored PEMs (parsed once and cached). */
  ca: X509Ca | CaCertificateAndKey;
  /** The holder's public key: PEM or DER SubjectPublicKeyInfo, or a KeyObject. */
  publicKey: string | Uint8Array | KeyObject;
  /** Who the certificate speaks for: adds the identity extension; the subject follows from it. */
  identity?: Identity;
  /** The subject when there is no identity (a db-client certificate: CN = database user). */
  subject?: { commonName: string; organizations?: string[] };
  notAfter: Date;
  /** Default: the wall clock. notBefore is `now` minus clockSkewBackdateMs. */
  now?: Date;
  dnsNames?: string[];
  ipAddresses?: string[];
  usage: CertificateUsage;
}

/** Issues a leaf certificate signed by `ca` and returns it as PEM. */
export function issueCertificate(options: IssueCertificateOptions): string {
  return derToPem(issueCertificateDer(options));
}

/** Issues a leaf certificate signed by `ca` and returns its DER. */
export function issueCertificateDer(options: IssueCertificateOptions): Buffer {
  const ca = 'certificate' in options.ca ? options.ca : loadCa(options.ca);
  const now = options.now ?? new Date();
  const notBefore = new Date(Math.max(now.getTime() - clockSkewBackdateMs, ca.notBefore.getTime()));
  _checkLifetime(options.notAfter, now, ca);
  const { spki, rsa } = publicKeyInfo(options.publicKey);
  const { subject, identityExtension } = _subjectOf(options, ca);
  const extensions = [
    _extension(OID.basicConstraints, true, seq()), // CA:FALSE
    _extension(OID.keyUsage, true, namedBits(rsa ? [KEY_USAGE.digitalSignature, KEY_USAGE.keyEncipherment] : [KEY_USAGE.digitalSignature])),
    _extension(OID.extKeyUsage, false, seq(..._extKeyUsages(options.usage).map((u) => oid(u)))),
    _extension(OID.subjectKeyIdentifier, false, octetString(_leafKeyIdentifier(spki))),
    _extension(OID.authorityKeyIdentifier, false, seq(implicitPrimitive(0, ca.keyId))),
  ];
  const dnsNames = options.dnsNames ?? [];
  const ipAddresses = options.ipAddresses ?? [];
  if (dnsNames.length + ipAddresses.length > 0) {
    extensions.push(_extension(OID.subjectAltName, false, encodeSubjectAltName(dnsNames, ipAddresses)));
  }
  if (identityExtension !== undefined) extensions.push(identityExtension);
  return _signCertificate({ issuer: ca.subject, subject, notBefore, notAfter: options.notAfter, spki, key: ca.key, extensions });
}

/** RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
export function keyIdentifier(spki: Uint8Array): Buffer {
  return createHash('sha1').update(subjectPublicKeyBits(spki)).digest();
}

function _leafKeyIdentifier(spki: Buffer): Buffer {
  try {
    return keyIdentifier(spki);
  } catch (error) {
    throw new BadInputError(`Cannot issue a certificate: the public key is not DER (${(error as Error).message})`, { cause: error });
  }
}

/** DER -> PEM `CERTIFICATE` block, 64 characters a line. */
export function derToPem(der: Uint8Array): string {
  const base64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < base64.length; i += 64) lines.push(base64.slice(i, i + 64));
  return `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`;
}

/** A Name: one RDN per attribute, in the order given. */
export function encodeName(attributes: ReadonlyArray<readonly [string, string]>): Buffer {
  return seq(...attributes.map(([type, value]) => set(seq(oid(type), utf8String(value)))));
}

function _checkLifetime(notAfter: Date, now: Date, ca: X509Ca): void {
  if (!(notAfter instanceof Date) || Number.isNaN(notAfter.getTime())) throw new BadInputError('Cannot issue a certificate: notAfter is not a valid Date');
  if (notAfter.getTime() <= now.getTime()) {
    throw new BadInputError(`Cannot issue a certificate that expires at ${notAfter.toISOString()}: that is not after now (${now.toISOString()})`);
  }
  if (notAfter.getTime() > ca.notAfter.getTime()) {
    throw new BadInputError(
      `Cannot issue a certificate valid until ${notAfter.toISOString()}: the ${ca.kind ?? ''} CA "${ca.certificate.subject.replaceAll('\n', ', ')}" ` +
        `expires at ${ca.notAfter.toISOString()}; ask for a shorter TTL, or rotate the CA (pctl auth rotate)`,
    );
  }
}

function _subjectOf(options: IssueCertificateOptions, ca: X509Ca): { subject: Buffer; identityExtension?: Buffer } {
  const { identity, subject } = options;
  if ((identity === undefined) === (subject === undefined)) {
    throw new BadInputError('Cannot issue a certificate: pass exactly one of identity (user or host) and subject (plain certificate)');
  }
  if (identity !== undefined && ca.kind !== undefined && ca.kind !== identity.kind) {
    throw new BadInputError(`Cannot issue a ${identity.kind} certificate with the ${ca.kind} CA: use the ${identity.kind} CA`);
  }
  if (identity !== undefined && ca.cluster !== undefined && ca.cluster !== identity.cluster) {
    throw new BadInputError(`Cannot issue a certificate for cluster ${identity.cluster} with the CA of cluster ${ca.cluster}: a cluster's CA vouches only for its own identities`);
  }
  const names = identity !== undefined ? subjectFor(identity) : { commonName: subject!.commonName, organizations: subject!.organizations ?? [] };
  if (names.commonName.length === 0) throw new BadInputError('Cannot issue a certificate with an empty common name');
  const encoded = encodeName([
    ...names.organizations.map((o) => [OID.organization, o] as const),
    [OID.commonName, names.commonName],
  ]);
  if (identity === undefined) return { subject: encoded };
  const ext = encodeIdentityExtension(identity);
  return { subject: encoded, identityExtension: _extension(ext.oid, ext.critical, ext.value) };
}

function _extKeyUsages(usage: CertificateUsage): string[] {
  switch (usage) {
    case 'client':
      return [OID.clientAuth];
    case 'server':
      return [OID.serverAuth];
    case 'both':
      return [OID.serverAuth, OID.clientAuth];
    default:
      throw new BadInputError(`Cannot issue a certificate for usage "${String(usage)}": expected client, server or both`);
  }
}

function _extension(type: string, critical: boolean, value: Buffer): Buffer {
  return critical ? seq(oid(type), boolean(true), octetString(value)) : seq(oid(type), octetString(value));
}

interface CertificateParts {
  issuer: Buffer;
  subject: Buffer;
  notBefore: Date;
  notAfter: Date;
  spki: Buffer;
  extensions: Buffer[];
  key: KeyObject;
}

let randomPool = Buffer.alloc(0);
let randomOffset = 0;

/** 16 random bytes, positive with the top bits 01: always 16 bytes long, 126 random bits. Drawn from a pool (one syscall per 256 serials). */
function _randomSerial(): Buffer {
  if (randomOffset + 16 > randomPool.length) {
    randomPool = randomBytes(4096);
    randomOffset = 0;
  }
  const serial = Buffer.from(randomPool.subarray(randomOffset, randomOffset + 16));
  randomOffset += 16;
  serial[0] = (serial[0]! & 0x7f) | 0x40;
  return serial;
}

function _signCertificate(parts: CertificateParts): Buffer {
  const serial = _randomSerial();
  const tbs = seq(
    explicit(0, smallInteger(2)), // v3
    unsignedInteger(serial),
    ecdsaWithSha256,
    parts.issuer,
    seq(time(parts.notBefore), time(parts.notAfter)),
    parts.subject,
    parts.spki,
    explicit(3, seq(...parts.extensions)),
  );
  // The KeyObject itself, not `{ key, dsaEncoding: 'der' }` (DER is the default): Node
  // probes an options object with brand checks that throw internally, ~25 us a call.
  const signature = sign('sha256', tbs, parts.key);
  return seq(tbs, ecdsaWithSha256, bitString(signature));
}
