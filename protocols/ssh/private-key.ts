/**
 * OpenSSH's own private key file format (`-----BEGIN OPENSSH PRIVATE KEY-----`), so that
 * keys Postern generates work with real `ssh -i`, and keys `ssh-keygen` made can be loaded.
 * Only unencrypted files (cipher and KDF `none`): Postern keeps keys in protected
 * directories; it does not ask for passphrases.
 *
 * Layout (OpenSSH PROTOCOL.key), base64 inside the PEM armour, lines of 70 characters:
 *
 *   "openssh-key-v1\0"
 *   string  cipher name ("none")        string  KDF name ("none")
 *   string  KDF options ("")            uint32  number of keys (1)
 *   string  public key blob
 *   string  private section:
 *             uint32 check, uint32 check (equal; a wrong passphrase shows here)
 *             string key type, then the private fields:
 *               ssh-ed25519  string public (32), string seed || public (64)
 *               ecdsa-*      string curve, string Q, mpint d
 *               ssh-rsa      mpint n, mpint e, mpint d, mpint iqmp, mpint p, mpint q
 *             string comment
 *             padding 1, 2, 3, ... up to a multiple of 8
 */
import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import type { JsonWebKey, KeyObject } from 'node:crypto';
import { SshFormatError, SshUnsupportedAlgorithmError } from './errors.ts';
import {
  RSA_MAX_BITS,
  ecdsaCurveOf,
  isSshKeyAlgorithm,
  jwkBytes,
  keyAlgorithmOf,
  parsePublicKeyBlob,
  publicKeyToBlob,
  splitEcPoint,
} from './public-key.ts';
import type { EcdsaCurve, SshKeyAlgorithm } from './public-key.ts';
import { SshReader, SshWriter, bigintToBytes, bytesToBigint } from './wire.ts';

const MAGIC = Buffer.from('openssh-key-v1\0', 'latin1');
const BEGIN = '-----BEGIN OPENSSH PRIVATE KEY-----';
const END = '-----END OPENSSH PRIVATE KEY-----';
const BLOCK_SIZE = 8;
const LINE_LENGTH = 70;

/** A private key read from an OpenSSH key file. */
export interface OpenSshPrivateKey {
  algorithm: SshKeyAlgorithm;
  privateKey: KeyObject;
  publicKey: KeyObject;
  comment: string;
}

/** Formats a private key as an unencrypted OpenSSH key file (PEM text ending in a newline). */
export function formatOpenSshPrivateKey(privateKey: KeyObject, options: { comment?: string } = {}): string {
  if (privateKey.type !== 'private') throw new SshFormatError('Cannot write OpenSSH private key: the key given is a public key');
  const algorithm = keyAlgorithmOf(privateKey);
  const checkInt = randomBytes(4).readUInt32BE(0);
  const section = new SshWriter().uint32(checkInt).uint32(checkInt).string(algorithm);
  writePrivateFields(section, privateKey, algorithm);
  section.string(options.comment ?? '');
  const unpadded = section.toBuffer();
  const padLength = (BLOCK_SIZE - (unpadded.length % BLOCK_SIZE)) % BLOCK_SIZE;
  const padding = Buffer.from(Array.from({ length: padLength }, (_, i) => i + 1));
  const body = new SshWriter()
    .raw(MAGIC)
    .string('none')
    .string('none')
    .string('')
    .uint32(1)
    .string(publicKeyToBlob(privateKey))
    .string(Buffer.concat([unpadded, padding]))
    .toBuffer();
  const lines = body.toString('base64').match(new RegExp(`.{1,${LINE_LENGTH}}`, 'g')) ?? [];
  return `${BEGIN}\n${lines.join('\n')}\n${END}\n`;
}

function writePrivateFields(writer: SshWriter, key: KeyObject, algorithm: SshKeyAlgorithm): void {
  const jwk = key.export({ format: 'jwk' });
  if (algorithm === 'ssh-ed25519') {
    const publicBytes = jwkBytes(jwk.x);
    writer.string(publicBytes).string(Buffer.concat([jwkBytes(jwk.d), publicBytes]));
  } else if (algorithm === 'ssh-rsa') {
    writer.mpint(jwkBytes(jwk.n)).mpint(jwkBytes(jwk.e)).mpint(jwkBytes(jwk.d));
    writer.mpint(jwkBytes(jwk.qi)).mpint(jwkBytes(jwk.p)).mpint(jwkBytes(jwk.q));
  } else {
    const curve = ecdsaCurveOf(algorithm)!;
    writer.string(curve.sshName).string(Buffer.concat([Buffer.of(4), jwkBytes(jwk.x), jwkBytes(jwk.y)]));
    writer.mpint(jwkBytes(jwk.d));
  }
}

/** Parses an unencrypted OpenSSH private key file; refuses encrypted files with how to decrypt them. */
export function parseOpenSshPrivateKey(text: string): OpenSshPrivateKey {
  const reader = new SshReader(dearmour(text), 'OpenSSH private key');
  if (!reader.raw(MAGIC.length, 'magic').equals(MAGIC)) reader.fail('it does not start with "openssh-key-v1"');
  const cipher = reader.text('cipher name', 64);
  const kdf = reader.text('KDF name', 64);
  reader.string('KDF options', 1024);
  if (cipher !== 'none' || kdf !== 'none') {
    throw new SshUnsupportedAlgorithmError(`Cannot load OpenSSH private key: it is encrypted (${cipher}, ${kdf}); remove the passphrase with: ssh-keygen -p -N '' -f FILE`);
  }
  if (reader.uint32('number of keys') !== 1) reader.fail('it holds more than one key; Postern expects one key per file');
  const publicKey = parsePublicKeyBlob(reader.string('public key', 8192));
  const section = reader.string('private section');
  reader.end();
  return readPrivateSection(new SshReader(section, 'OpenSSH private key section'), publicKey.blob);
}

function dearmour(text: string): Buffer {
  const start = text.indexOf(BEGIN);
  const end = text.indexOf(END);
  if (start < 0 || end < start) throw new SshFormatError(`Cannot load OpenSSH private key: missing "${BEGIN}" / "${END}" lines`);
  const base64 = text.slice(start + BEGIN.length, end).replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(base64)) throw new SshFormatError('Cannot load OpenSSH private key: the body is not base64');
  return Buffer.from(base64, 'base64');
}

function readPrivateSection(reader: SshReader, publicBlob: Buffer): OpenSshPrivateKey {
  if (reader.remaining % BLOCK_SIZE !== 0) reader.fail(`its length is not a multiple of ${BLOCK_SIZE}`);
  if (reader.uint32('check 1') !== reader.uint32('check 2')) reader.fail('its two check numbers differ (corrupt, or encrypted)');
  const algorithm = reader.text('key type', 64);
  if (!isSshKeyAlgorithm(algorithm)) throw new SshUnsupportedAlgorithmError(`Cannot load OpenSSH private key of type ${JSON.stringify(algorithm)}`);
  const privateKey = readPrivateFields(reader, algorithm);
  const comment = reader.text('comment', 4096);
  checkPadding(reader);
  const publicKey = createPublicKey(privateKey);
  if (!publicKeyToBlob(publicKey).equals(publicBlob)) reader.fail('the private key does not match the public key stored beside it');
  return { algorithm, privateKey, publicKey, comment };
}

function checkPadding(reader: SshReader): void {
  const padding = reader.rest();
  if (padding.length >= BLOCK_SIZE || padding.some((b, i) => b !== i + 1)) reader.fail('its padding is not 1, 2, 3, ...');
}

function readPrivateFields(reader: SshReader, algorithm: SshKeyAlgorithm): KeyObject {
  if (algorithm === 'ssh-ed25519') return readEd25519Private(reader);
  if (algorithm === 'ssh-rsa') return readRsaPrivate(reader);
  return readEcdsaPrivate(reader, ecdsaCurveOf(algorithm)!);
}

function readEd25519Private(reader: SshReader): KeyObject {
  const publicBytes = reader.string('Ed25519 public key', 32);
  const secret = reader.string('Ed25519 secret key', 64);
  if (publicBytes.length !== 32 || secret.length !== 64 || !secret.subarray(32).equals(publicBytes)) {
    reader.fail('the Ed25519 key is not a 32-byte public key and a 64-byte seed || public key');
  }
  return importPrivateJwk(reader, { kty: 'OKP', crv: 'Ed25519', x: b64u(publicBytes), d: b64u(secret.subarray(0, 32)) });
}

function readEcdsaPrivate(reader: SshReader, curve: EcdsaCurve): KeyObject {
  if (reader.text('ECDSA curve name', 16) !== curve.sshName) reader.fail(`the curve name does not match ${curve.algorithm}`);
  const { x, y } = splitEcPoint(reader, reader.string('ECDSA public point', 1 + 2 * curve.fieldBytes), curve);
  const d = reader.mpint('ECDSA private scalar', curve.fieldBytes);
  const padded = Buffer.concat([Buffer.alloc(curve.fieldBytes - d.length), d]);
  return importPrivateJwk(reader, { kty: 'EC', crv: curve.jwkName, x: b64u(x), y: b64u(y), d: b64u(padded) });
}

function readRsaPrivate(reader: SshReader): KeyObject {
  const max = RSA_MAX_BITS / 8;
  const [n, e, d, iqmp, p, q] = ['n', 'e', 'd', 'iqmp', 'p', 'q'].map((name) => reader.mpint(`RSA ${name}`, max)) as [Buffer, Buffer, Buffer, Buffer, Buffer, Buffer];
  const [dBig, pBig, qBig] = [bytesToBigint(d), bytesToBigint(p), bytesToBigint(q)];
  if (pBig < 2n || qBig < 2n || pBig * qBig !== bytesToBigint(n)) reader.fail('the RSA primes do not multiply to the modulus');
  const dp = bigintToBytes(dBig % (pBig - 1n));
  const dq = bigintToBytes(dBig % (qBig - 1n));
  const jwk = { kty: 'RSA', n: b64u(n), e: b64u(e), d: b64u(d), p: b64u(p), q: b64u(q), dp: b64u(dp), dq: b64u(dq), qi: b64u(iqmp) };
  return importPrivateJwk(reader, jwk);
}

function importPrivateJwk(reader: SshReader, jwk: JsonWebKey): KeyObject {
  try {
    return createPrivateKey({ key: jwk, format: 'jwk' });
  } catch (error) {
    return reader.fail(`the ${jwk.kty} private key is not valid (${(error as Error).message})`);
  }
}

function b64u(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64url');
}
