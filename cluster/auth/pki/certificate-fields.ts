/**
 * Reads the few fields of a DER certificate that node:crypto's X509Certificate does not
 * expose: the subject Name's exact bytes (copied into the issuer field of what a CA
 * signs), and the extensions by OID (Postern's identity, the subject key identifier).
 *
 *   Certificate    ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
 *   TBSCertificate ::= SEQUENCE { [0] version, serialNumber, signature, issuer, validity,
 *                                 subject, subjectPublicKeyInfo, [1] issuerUID?,
 *                                 [2] subjectUID?, [3] extensions? }
 *   Extension      ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
 */
import { childrenOf, contentOf, decodeOid, encodingOf, expectElement, readWhole, TAG, type DerElement } from './der.ts';
import { DerFormatError } from './errors.ts';

export interface CertificateExtension {
  critical: boolean;
  /** The DER inside extnValue's OCTET STRING (a view into the certificate). */
  value: Buffer;
}

export interface CertificateFields {
  /** The subject Name, tag and length included. */
  subject: Buffer;
  /** Extensions by dotted OID. */
  extensions: Map<string, CertificateExtension>;
}

/** Subject and extensions of a DER certificate; throws DerFormatError when the structure is wrong. */
export function readCertificateFields(der: Uint8Array): CertificateFields {
  const certificate = readWhole(der, TAG.sequence, 'certificate');
  const tbs = expectElement(der, certificate.contentStart, certificate.end, TAG.sequence, 'tbsCertificate');
  const fields = childrenOf(der, tbs, 'tbsCertificate field');
  // With the [0] version present (v3), subject is the 6th field; without it (v1), the 5th.
  const hasVersion = fields[0]?.tag === 0xa0;
  const subject = fields[hasVersion ? 5 : 4];
  if (subject === undefined || subject.tag !== TAG.sequence) throw new DerFormatError('Cannot read certificate: no subject Name');
  const extensionsField = fields.find((f) => f.tag === 0xa3);
  return {
    subject: encodingOf(der, subject),
    extensions: extensionsField === undefined ? new Map() : _readExtensions(der, extensionsField),
  };
}

/** The subjectPublicKey bits of a SubjectPublicKeyInfo (what RFC 5280's key identifier hashes). */
export function subjectPublicKeyBits(spki: Uint8Array): Buffer {
  const outer = readWhole(spki, TAG.sequence, 'SubjectPublicKeyInfo');
  const [algorithm, bits] = childrenOf(spki, outer, 'SubjectPublicKeyInfo field');
  if (algorithm?.tag !== TAG.sequence || bits?.tag !== TAG.bitString || bits.end - bits.contentStart < 2) {
    throw new DerFormatError('Cannot read SubjectPublicKeyInfo: expected an algorithm and a BIT STRING');
  }
  return contentOf(spki, bits).subarray(1);
}

/** The named-curve OID in an EC SubjectPublicKeyInfo's algorithm parameters, or undefined when it has none. */
export function spkiCurveOid(spki: Uint8Array): string | undefined {
  try {
    const outer = readWhole(spki, TAG.sequence, 'SubjectPublicKeyInfo');
    const algorithm = expectElement(spki, outer.contentStart, outer.end, TAG.sequence, 'AlgorithmIdentifier');
    const [, parameters] = childrenOf(spki, algorithm, 'AlgorithmIdentifier field');
    return parameters?.tag === TAG.oid ? decodeOid(contentOf(spki, parameters)) : undefined;
  } catch {
    return undefined;
  }
}

/** The keyIdentifier of a SubjectKeyIdentifier extension value (an OCTET STRING). */
export function readKeyIdentifier(value: Uint8Array): Buffer {
  return contentOf(value, readWhole(value, TAG.octetString, 'subjectKeyIdentifier'));
}

function _readExtensions(der: Uint8Array, wrapper: DerElement): Map<string, CertificateExtension> {
  const list = expectElement(der, wrapper.contentStart, wrapper.end, TAG.sequence, 'extensions');
  if (list.end !== wrapper.end) throw new DerFormatError('Cannot read certificate extensions: trailing bytes');
  const extensions = new Map<string, CertificateExtension>();
  for (const element of childrenOf(der, list, 'extension')) {
    if (element.tag !== TAG.sequence) throw new DerFormatError('Cannot read certificate extension: not a SEQUENCE');
    const parts = childrenOf(der, element, 'extension field');
    const [id, second, third] = parts;
    const withCritical = parts.length === 3;
    const valueElement = withCritical ? third : second;
    if (id?.tag !== TAG.oid || valueElement?.tag !== TAG.octetString || parts.length > 3) {
      throw new DerFormatError('Cannot read certificate extension: expected OID, [critical,] OCTET STRING');
    }
    if (withCritical && (second!.tag !== TAG.boolean || second!.end - second!.contentStart !== 1)) {
      throw new DerFormatError('Cannot read certificate extension: critical flag is not a BOOLEAN');
    }
    const oid = decodeOid(contentOf(der, id));
    if (extensions.has(oid)) throw new DerFormatError(`Cannot read certificate: extension ${oid} appears twice`);
    extensions.set(oid, {
      critical: withCritical && der[second!.contentStart] !== 0,
      value: contentOf(der, valueElement),
    });
  }
  return extensions;
}
