/**
 * SSH public keys: node:crypto KeyObjects to and from the SSH public key blob, the
 * OpenSSH `authorized_keys` line, and the `SHA256:` fingerprint.
 *
 * Blob layouts (RFC 4253 section 6.6, RFC 8709 section 4, RFC 5656 section 3.1):
 *
 *   ssh-ed25519           string "ssh-ed25519", string key (32 bytes)
 *   ecdsa-sha2-nistpNNN   string "ecdsa-sha2-nistpNNN", string "nistpNNN",
 *                         string Q (uncompressed point: 0x04 || X || Y)
 *   ssh-rsa               string "ssh-rsa", mpint e, mpint n
 *
 * Parsing is strict (exact lengths, minimal mpints, no trailing bytes), so a parsed
 * key re-encodes to the very bytes it came from and two blobs of one key are equal.
 */
import { createHash, createPublicKey, KeyObject } from 'node:crypto';
import type { JsonWebKey } from 'node:crypto';
import { SshFormatError, SshUnsupportedAlgorithmError } from './errors.ts';
import { SshReader, SshWriter, bytesToBigint } from './wire.ts';

/** The plain (non-certificate) key algorithms Postern reads and writes. */
export type SshKeyAlgorithm = 'ssh-ed25519' | 'ecdsa-sha2-nistp256' | 'ecdsa-sha2-nistp384' | 'ecdsa-sha2-nistp521' | 'ssh-rsa';

/** One SSH public key in both forms: the node:crypto object and the SSH blob. */
export interface SshPublicKey {
  algorithm: SshKeyAlgorithm;
  key: KeyObject;
  blob: Buffer;
}

/** An NIST curve as SSH, JOSE and OpenSSL name it, with its field size and signature hash. */
export interface EcdsaCurve {
  algorithm: 'ecdsa-sha2-nistp256' | 'ecdsa-sha2-nistp384' | 'ecdsa-sha2-nistp521';
  sshName: string;
  jwkName: string;
  opensslName: string;
  fieldBytes: number;
  hash: 'sha256' | 'sha384' | 'sha512';
}

/** The three curves of RFC 5656 that OpenSSH supports. */
export const ecdsaCurves: readonly EcdsaCurve[] = [
  { algorithm: 'ecdsa-sha2-nistp256', sshName: 'nistp256', jwkName: 'P-256', opensslName: 'prime256v1', fieldBytes: 32, hash: 'sha256' },
  { algorithm: 'ecdsa-sha2-nistp384', sshName: 'nistp384', jwkName: 'P-384', opensslName: 'secp384r1', fieldBytes: 48, hash: 'sha384' },
  { algorithm: 'ecdsa-sha2-nistp521', sshName: 'nistp521', jwkName: 'P-521', opensslName: 'secp521r1', fieldBytes: 66, hash: 'sha512' },
];

/** The algorithm names of `SshKeyAlgorithm`, for membership tests. */
export const sshKeyAlgorithms: readonly SshKeyAlgorithm[] = ['ssh-ed25519', ...ecdsaCurves.map((c) => c.algorithm), 'ssh-rsa'];

/** OpenSSH refuses RSA moduli below 1024 bits (SSH_RSA_MINIMUM_MODULUS_SIZE). */
export const RSA_MIN_BITS = 1024;
/** OpenSSL refuses RSA moduli above 16384 bits (OPENSSL_RSA_MAX_MODULUS_BITS). */
export const RSA_MAX_BITS = 16384;
/** Like Go's x/crypto/ssh, refuse public exponents over 24 bits: no real key has one, and they make verifying slow. */
const RSA_MAX_EXPONENT_BITS = 24;
const ED25519_KEY_BYTES = 32;

/** Whether `name` is one of the plain key algorithms. */
export function isSshKeyAlgorithm(name: string): name is SshKeyAlgorithm {
  return (sshKeyAlgorithms as readonly string[]).includes(name);
}

/** The curve entry for an ECDSA algorithm name, or undefined. */
export function ecdsaCurveOf(algorithm: string): EcdsaCurve | undefined {
  return ecdsaCurves.find((c) => c.algorithm === algorithm);
}

/** The SSH algorithm of a node:crypto key (public or private); refuses types SSH cannot carry. */
export function keyAlgorithmOf(key: KeyObject): SshKeyAlgorithm {
  switch (key.asymmetricKeyType) {
    case 'ed25519':
      return 'ssh-ed25519';
    case 'rsa':
      return 'ssh-rsa';
    case 'ec': {
      const curve = ecdsaCurves.find((c) => c.opensslName === key.asymmetricKeyDetails?.namedCurve);
      if (curve) return curve.algorithm;
      throw new SshUnsupportedAlgorithmError(`Cannot use EC key on curve ${key.asymmetricKeyDetails?.namedCurve} for SSH: only P-256, P-384 and P-521 are supported`);
    }
    default:
      throw new SshUnsupportedAlgorithmError(`Cannot use a ${key.asymmetricKeyType ?? key.type} key for SSH: use Ed25519, ECDSA (P-256/384/521) or RSA`);
  }
}

/** The SSH public key blob of a node:crypto key (a private key gives its public half). */
export function publicKeyToBlob(key: KeyObject): Buffer {
  const writer = new SshWriter();
  writer.string(keyAlgorithmOf(key));
  writePublicKeyFields(writer, key);
  return writer.toBuffer();
}

/** Both forms of a node:crypto key's public half. */
export function toSshPublicKey(key: KeyObject): SshPublicKey {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return { algorithm: keyAlgorithmOf(publicKey), key: publicKey, blob: publicKeyToBlob(publicKey) };
}

/** Parses an SSH public key blob; refuses certificates, unknown algorithms and trailing bytes. */
export function parsePublicKeyBlob(blob: Uint8Array): SshPublicKey {
  const reader = new SshReader(blob, 'SSH public key');
  const algorithm = reader.text('key algorithm', 64);
  if (!isSshKeyAlgorithm(algorithm)) {
    throw new SshUnsupportedAlgorithmError(`Cannot parse SSH public key of type ${JSON.stringify(algorithm)}: Postern supports ${sshKeyAlgorithms.join(', ')}`);
  }
  const key = readPublicKeyFields(reader, algorithm);
  reader.end();
  return { algorithm, key, blob: Buffer.from(blob) };
}

/**
 * Writes a key's algorithm-specific public fields (everything after the algorithm name).
 * Certificates embed exactly these fields after their nonce.
 */
export function writePublicKeyFields(writer: SshWriter, key: KeyObject): void {
  const algorithm = keyAlgorithmOf(key);
  const jwk = key.export({ format: 'jwk' });
  if (algorithm === 'ssh-ed25519') {
    writer.string(jwkBytes(jwk.x));
  } else if (algorithm === 'ssh-rsa') {
    writer.mpint(jwkBytes(jwk.e)).mpint(jwkBytes(jwk.n));
  } else {
    const curve = ecdsaCurveOf(algorithm)!;
    writer.string(curve.sshName).string(Buffer.concat([Buffer.of(4), jwkBytes(jwk.x), jwkBytes(jwk.y)]));
  }
}

/** Reads a key's algorithm-specific public fields and builds the node:crypto key. */
export function readPublicKeyFields(reader: SshReader, algorithm: SshKeyAlgorithm): KeyObject {
  if (algorithm === 'ssh-ed25519') return readEd25519(reader);
  if (algorithm === 'ssh-rsa') return readRsa(reader);
  return readEcdsa(reader, ecdsaCurveOf(algorithm)!);
}

function readEd25519(reader: SshReader): KeyObject {
  const x = reader.string('Ed25519 public key', ED25519_KEY_BYTES);
  if (x.length !== ED25519_KEY_BYTES) reader.fail(`Ed25519 public key is ${x.length} bytes, not ${ED25519_KEY_BYTES}`);
  return importJwk(reader, { kty: 'OKP', crv: 'Ed25519', x: x.toString('base64url') });
}

function readEcdsa(reader: SshReader, curve: EcdsaCurve): KeyObject {
  const name = reader.text('ECDSA curve name', 16);
  if (name !== curve.sshName) reader.fail(`ECDSA curve ${JSON.stringify(name)} does not match key type ${curve.algorithm}`);
  const point = reader.string('ECDSA public point', 1 + 2 * curve.fieldBytes);
  const { x, y } = splitEcPoint(reader, point, curve);
  return importJwk(reader, { kty: 'EC', crv: curve.jwkName, x: x.toString('base64url'), y: y.toString('base64url') });
}

/** Splits an uncompressed point into X and Y; SSH (RFC 5656) never uses compressed points. */
export function splitEcPoint(reader: SshReader, point: Buffer, curve: EcdsaCurve): { x: Buffer; y: Buffer } {
  if (point.length !== 1 + 2 * curve.fieldBytes || point[0] !== 4) {
    reader.fail(`ECDSA public point is not an uncompressed ${curve.jwkName} point (0x04 || X || Y, ${1 + 2 * curve.fieldBytes} bytes)`);
  }
  return { x: point.subarray(1, 1 + curve.fieldBytes), y: point.subarray(1 + curve.fieldBytes) };
}

function readRsa(reader: SshReader): KeyObject {
  const e = reader.mpint('RSA public exponent', 4);
  const n = reader.mpint('RSA modulus', RSA_MAX_BITS / 8);
  checkRsaParameters(reader, e, n);
  return importJwk(reader, { kty: 'RSA', e: e.toString('base64url'), n: n.toString('base64url') });
}

function checkRsaParameters(reader: SshReader, e: Buffer, n: Buffer): void {
  const exponent = bytesToBigint(e);
  if (exponent < 3n || exponent % 2n === 0n || exponent.toString(2).length > RSA_MAX_EXPONENT_BITS) {
    reader.fail(`RSA public exponent ${exponent} is not an odd number between 3 and 2^${RSA_MAX_EXPONENT_BITS}`);
  }
  const bits = n.length === 0 ? 0 : bytesToBigint(n).toString(2).length;
  if (bits < RSA_MIN_BITS) reader.fail(`RSA modulus has ${bits} bits; OpenSSH requires at least ${RSA_MIN_BITS}`);
}

function importJwk(reader: SshReader, jwk: JsonWebKey): KeyObject {
  try {
    return createPublicKey({ key: jwk, format: 'jwk' });
  } catch (error) {
    return reader.fail(`the ${jwk.kty} key is not valid (${(error as Error).message})`);
  }
}

/** Decodes a base64url JWK member that node:crypto always sets for the key types above. */
export function jwkBytes(value: string | undefined): Buffer {
  if (value === undefined) throw new SshFormatError('Cannot encode key: node:crypto exported a JWK without an expected member');
  return Buffer.from(value, 'base64url');
}

/** OpenSSH's fingerprint of a public key: `SHA256:` and the unpadded base64 SHA-256 of the blob. */
export function sshFingerprint(key: KeyObject | Uint8Array): string {
  const blob = key instanceof KeyObject ? publicKeyToBlob(key) : key;
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** One line of an `authorized_keys` file (or a `.pub` file, which has no options). */
export interface AuthorizedKey {
  /** The options field before the key type (`cert-authority,from="10.0.0.0/8"`), as written. */
  options: string | undefined;
  publicKey: SshPublicKey;
  comment: string;
}

/** The parts of an OpenSSH key line, before the blob is interpreted. */
export interface KeyLine {
  options: string | undefined;
  algorithm: string;
  blob: Buffer;
  comment: string;
}

/** Parses an `authorized_keys` / `.pub` line holding a plain key: `[options] algo base64 [comment]`. */
export function parseAuthorizedKey(line: string): AuthorizedKey {
  const parts = splitKeyLine(line, sshKeyAlgorithms);
  const publicKey = parsePublicKeyBlob(parts.blob);
  if (publicKey.algorithm !== parts.algorithm) {
    throw new SshFormatError(`Cannot parse key line: it names ${parts.algorithm} but its key is ${publicKey.algorithm}`);
  }
  return { options: parts.options, publicKey, comment: parts.comment };
}

/** Formats a key as an `authorized_keys` / `.pub` line: `algo base64 [comment]`. */
export function formatAuthorizedKey(key: KeyObject | SshPublicKey, comment?: string): string {
  const { algorithm, blob } = key instanceof KeyObject ? toSshPublicKey(key) : key;
  return formatKeyLine(algorithm, blob, comment);
}

/** `algo base64 [comment]`, refusing comments that would break the line. */
export function formatKeyLine(algorithm: string, blob: Uint8Array, comment?: string): string {
  if (comment !== undefined && /[\r\n]/.test(comment)) throw new SshFormatError('Cannot format key line: the comment contains a line break');
  const base = `${algorithm} ${Buffer.from(blob).toString('base64')}`;
  return comment ? `${base} ${comment}` : base;
}

/**
 * Splits `[options] algo base64 [comment]`. The options field is recognised the way
 * sshd does it: if the first word is not one of `knownAlgorithms`, it is options
 * (quoted parts may hold spaces) and the key follows.
 */
export function splitKeyLine(line: string, knownAlgorithms: readonly string[]): KeyLine {
  let rest = line.trim();
  if (rest === '' || rest.startsWith('#')) throw new SshFormatError('Cannot parse key line: it is empty or a comment');
  let options: string | undefined;
  const firstWord = rest.split(/\s/, 1)[0]!;
  if (!knownAlgorithms.includes(firstWord)) {
    const end = endOfOptions(rest);
    options = rest.slice(0, end);
    rest = rest.slice(end).trimStart();
  }
  const match = /^(\S+)\s+([A-Za-z0-9+/]+={0,2})(?:\s+(.*))?$/.exec(rest);
  if (!match) throw new SshFormatError(`Cannot parse key line: expected "algorithm base64 [comment]" after ${options === undefined ? 'the start' : 'the options'}`);
  const algorithm = match[1]!;
  if (!knownAlgorithms.includes(algorithm)) {
    throw new SshUnsupportedAlgorithmError(`Cannot parse key line: key type ${JSON.stringify(algorithm)} is not one of ${knownAlgorithms.join(', ')}`);
  }
  const blob = Buffer.from(match[2]!, 'base64');
  if (blob.toString('base64') !== match[2]) throw new SshFormatError('Cannot parse key line: the key is not canonical base64');
  const named = new SshReader(blob, 'key line').text('key algorithm', 64);
  if (named !== algorithm) throw new SshFormatError(`Cannot parse key line: it names ${algorithm} but its blob holds ${named}`);
  return { options, algorithm, blob, comment: (match[3] ?? '').trim() };
}

/** Index of the first whitespace outside double quotes (sshd's options syntax). */
function endOfOptions(text: string): number {
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '\\' && quoted) i++;
    else if (ch === '"') quoted = !quoted;
    else if (!quoted && /\s/.test(ch)) return i;
  }
  throw new SshFormatError('Cannot parse key line: it has options but no key after them (or an unclosed quote)');
}
