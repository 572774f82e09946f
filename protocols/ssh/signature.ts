/**
 * SSH signature blobs: `string algorithm, string signature` (RFC 4253 section 6.6).
 *
 *   ssh-ed25519          the 64-byte Ed25519 signature (RFC 8709 section 6)
 *   ecdsa-sha2-nistpNNN  a string holding mpint r, mpint s; SHA-256/384/512 by curve
 *                        (RFC 5656 section 3.1.2)
 *   rsa-sha2-256/512     the PKCS#1 v1.5 signature, as long as the modulus (RFC 8332)
 *
 * `ssh-rsa` (PKCS#1 with SHA-1) is refused: OpenSSH turned it off by default in 8.8,
 * SHA-1 has chosen-prefix collisions, and every client that can hold a Postern
 * certificate speaks rsa-sha2-*.
 */
import { constants, createPublicKey, sign, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { SshUnsupportedAlgorithmError } from './errors.ts';
import { ecdsaCurveOf, keyAlgorithmOf, parsePublicKeyBlob } from './public-key.ts';
import type { EcdsaCurve, SshKeyAlgorithm } from './public-key.ts';
import { SshReader, SshWriter } from './wire.ts';

/** The signature algorithms Postern signs with and accepts. */
export type SshSignatureAlgorithm =
  | 'ssh-ed25519'
  | 'ecdsa-sha2-nistp256'
  | 'ecdsa-sha2-nistp384'
  | 'ecdsa-sha2-nistp521'
  | 'rsa-sha2-256'
  | 'rsa-sha2-512';

/** A signature blob taken apart. */
export interface SshSignature {
  algorithm: SshSignatureAlgorithm;
  /** The algorithm-specific signature bytes (for ECDSA still the SSH `mpint r, mpint s` form). */
  bytes: Buffer;
}

const signatureAlgorithms: readonly SshSignatureAlgorithm[] = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-256',
  'rsa-sha2-512',
];
const MAX_SIGNATURE_BYTES = 4096;

/** Whether `name` is a signature algorithm Postern accepts. */
export function isSshSignatureAlgorithm(name: string): name is SshSignatureAlgorithm {
  return (signatureAlgorithms as readonly string[]).includes(name);
}

/** Parses `string algorithm, string signature`; refuses ssh-rsa (SHA-1), unknown names and trailing bytes. */
export function parseSignature(blob: Uint8Array): SshSignature {
  const reader = new SshReader(blob, 'SSH signature');
  const algorithm = reader.text('signature algorithm', 64);
  const bytes = reader.string('signature', MAX_SIGNATURE_BYTES);
  reader.end();
  return { algorithm: checkSignatureAlgorithm(algorithm), bytes };
}

/** Narrows an algorithm name, explaining the refusal of ssh-rsa and of anything unknown. */
export function checkSignatureAlgorithm(algorithm: string): SshSignatureAlgorithm {
  if (algorithm === 'ssh-rsa') {
    throw new SshUnsupportedAlgorithmError('Cannot accept an ssh-rsa signature: it uses SHA-1, which Postern refuses; the signer must use rsa-sha2-256 or rsa-sha2-512 (OpenSSH 7.2 and later do)');
  }
  if (!isSshSignatureAlgorithm(algorithm)) {
    throw new SshUnsupportedAlgorithmError(`Cannot accept signature algorithm ${JSON.stringify(algorithm)}: Postern accepts ${signatureAlgorithms.join(', ')}`);
  }
  return algorithm;
}

/** Builds the signature blob from its parts. */
export function formatSignature(signature: SshSignature): Buffer {
  return new SshWriter().string(signature.algorithm).string(signature.bytes).toBuffer();
}

/**
 * Signs `data` with a private key and returns the SSH signature blob. RSA keys sign with
 * rsa-sha2-512 unless `rsaHash: 'sha256'` is asked for.
 */
export function createSignature(privateKey: KeyObject, data: Uint8Array, options: { rsaHash?: 'sha256' | 'sha512' } = {}): Buffer {
  const keyAlgorithm = keyAlgorithmOf(privateKey);
  if (keyAlgorithm === 'ssh-ed25519') {
    return formatSignature({ algorithm: 'ssh-ed25519', bytes: sign(null, data, privateKey) });
  }
  if (keyAlgorithm === 'ssh-rsa') {
    const hash = options.rsaHash ?? 'sha512';
    return formatSignature({ algorithm: `rsa-sha2-${hash === 'sha256' ? '256' : '512'}`, bytes: sign(hash, data, privateKey) });
  }
  const curve = ecdsaCurveOf(keyAlgorithm)!;
  const p1363 = sign(curve.hash, data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
  const rs = new SshWriter().mpint(p1363.subarray(0, curve.fieldBytes)).mpint(p1363.subarray(curve.fieldBytes)).toBuffer();
  return formatSignature({ algorithm: curve.algorithm, bytes: rs });
}

/**
 * Verifies an SSH signature blob over `data` with a public key (KeyObject or SSH blob).
 * Returns false when the signature does not match the key or data; throws for malformed
 * blobs and refused algorithms (ssh-rsa).
 */
export function verifySignature(publicKey: KeyObject | Uint8Array, signed: { data: Uint8Array; signature: Uint8Array | SshSignature }): boolean {
  const key = isKeyObject(publicKey) ? asPublic(publicKey) : parsePublicKeyBlob(publicKey).key;
  const signature = signed.signature instanceof Uint8Array ? parseSignature(signed.signature) : signed.signature;
  const keyAlgorithm = keyAlgorithmOf(key);
  if (!signatureFitsKey(checkSignatureAlgorithm(signature.algorithm), keyAlgorithm)) return false;
  if (keyAlgorithm === 'ssh-ed25519') {
    return signature.bytes.length === 64 && verify(null, signed.data, key, signature.bytes);
  }
  if (keyAlgorithm === 'ssh-rsa') return verifyRsa(key, signed.data, signature);
  const curve = ecdsaCurveOf(keyAlgorithm)!;
  const p1363 = ecdsaToP1363(signature.bytes, curve);
  return p1363 !== undefined && verify(curve.hash, signed.data, { key, dsaEncoding: 'ieee-p1363' }, p1363);
}

/** Whether a signature algorithm is one the key type can produce. */
export function signatureFitsKey(signatureAlgorithm: SshSignatureAlgorithm, keyAlgorithm: SshKeyAlgorithm): boolean {
  if (keyAlgorithm === 'ssh-rsa') return signatureAlgorithm === 'rsa-sha2-256' || signatureAlgorithm === 'rsa-sha2-512';
  return signatureAlgorithm === keyAlgorithm;
}

function verifyRsa(key: KeyObject, data: Uint8Array, signature: SshSignature): boolean {
  const modulusBytes = Math.ceil((key.asymmetricKeyDetails?.modulusLength ?? 0) / 8);
  if (signature.bytes.length > modulusBytes || signature.bytes.length === 0) return false;
  // Like OpenSSH (ssh-rsa.c), accept a signature with its leading zero bytes dropped.
  const padded = Buffer.concat([Buffer.alloc(modulusBytes - signature.bytes.length), signature.bytes]);
  const hash = signature.algorithm === 'rsa-sha2-256' ? 'sha256' : 'sha512';
  return verify(hash, data, { key, padding: constants.RSA_PKCS1_PADDING }, padded);
}

/** `mpint r, mpint s` to the fixed-width r || s that node:crypto verifies; undefined for a zero r or s. */
function ecdsaToP1363(bytes: Buffer, curve: EcdsaCurve): Buffer | undefined {
  const reader = new SshReader(bytes, `${curve.algorithm} signature`);
  const r = reader.mpint('r', curve.fieldBytes);
  const s = reader.mpint('s', curve.fieldBytes);
  reader.end();
  if (r.length === 0 || s.length === 0) return undefined;
  const width = curve.fieldBytes;
  return Buffer.concat([Buffer.alloc(width - r.length), r, Buffer.alloc(width - s.length), s]);
}

function isKeyObject(value: KeyObject | Uint8Array): value is KeyObject {
  return !(value instanceof Uint8Array);
}

function asPublic(key: KeyObject): KeyObject {
  return key.type === 'private' ? createPublicKey(key) : key;
}
