import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { SshFormatError, SshUnsupportedAlgorithmError } from './errors.ts';
import { publicKeyToBlob } from './public-key.ts';
import { createSignature, formatSignature, parseSignature, verifySignature } from './signature.ts';
import { SshReader, SshWriter } from './wire.ts';

const pairs: Array<[string, () => { privateKey: KeyObject; publicKey: KeyObject }]> = [
  ['ssh-ed25519', () => generateKeyPairSync('ed25519')],
  ['ecdsa-sha2-nistp256', () => generateKeyPairSync('ec', { namedCurve: 'P-256' })],
  ['ecdsa-sha2-nistp384', () => generateKeyPairSync('ec', { namedCurve: 'P-384' })],
  ['ecdsa-sha2-nistp521', () => generateKeyPairSync('ec', { namedCurve: 'P-521' })],
  ['rsa-sha2-512', () => generateKeyPairSync('rsa', { modulusLength: 2048 })],
];
const data = Buffer.from('session id and userauth request');

for (const [algorithm, generate] of pairs) {
  test(`${algorithm}: signs and verifies; other data, other keys and altered bytes fail`, () => {
    const pair = generate();
    const blob = createSignature(pair.privateKey, data);
    assert.equal(parseSignature(blob).algorithm, algorithm);
    assert.equal(verifySignature(pair.publicKey, { data, signature: blob }), true);
    assert.equal(verifySignature(publicKeyToBlob(pair.publicKey), { data, signature: blob }), true, 'key given as SSH blob');
    assert.equal(verifySignature(pair.privateKey, { data, signature: parseSignature(blob) }), true, 'private key, parsed signature');
    assert.equal(verifySignature(pair.publicKey, { data: Buffer.from('other'), signature: blob }), false);
    assert.equal(verifySignature(generate().publicKey, { data, signature: blob }), false);
    const altered = Buffer.from(blob);
    altered[altered.length - 2]! ^= 0x01;
    assert.equal(verifySignature(pair.publicKey, { data, signature: altered }), false);
  });
}

test('rsa-sha2-256 on request, and each RSA hash verifies only as itself', () => {
  const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const blob = createSignature(pair.privateKey, data, { rsaHash: 'sha256' });
  const parsed = parseSignature(blob);
  assert.equal(parsed.algorithm, 'rsa-sha2-256');
  assert.equal(parsed.bytes.length, 256);
  assert.equal(verifySignature(pair.publicKey, { data, signature: blob }), true);
  assert.equal(verifySignature(pair.publicKey, { data, signature: { algorithm: 'rsa-sha2-512', bytes: parsed.bytes } }), false);
});

test('a signature of one key type never verifies under another key type', () => {
  const ed = generateKeyPairSync('ed25519');
  const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const edSig = createSignature(ed.privateKey, data);
  const p256Sig = parseSignature(createSignature(p256.privateKey, data));
  assert.equal(verifySignature(p256.publicKey, { data, signature: edSig }), false);
  assert.equal(verifySignature(p256.publicKey, { data, signature: { algorithm: 'ecdsa-sha2-nistp384', bytes: p256Sig.bytes } }), false);
  assert.equal(verifySignature(ed.publicKey, { data, signature: { algorithm: 'ssh-ed25519', bytes: Buffer.alloc(63) } }), false);
});

test('refuses ssh-rsa (SHA-1) signatures with the reason and the fix', () => {
  const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const sha1 = formatSignatureUnchecked('ssh-rsa', sign('sha1', data, pair.privateKey));
  assert.throws(() => verifySignature(pair.publicKey, { data, signature: sha1 }), (error: unknown) => {
    assert.ok(error instanceof SshUnsupportedAlgorithmError);
    assert.match(error.message, /SHA-1.*rsa-sha2-256 or rsa-sha2-512/);
    return true;
  });
  assert.throws(() => parseSignature(formatSignatureUnchecked('ssh-dss', Buffer.alloc(40))), SshUnsupportedAlgorithmError);
});

test('accepts an RSA signature whose leading zero bytes were dropped, as OpenSSH does', () => {
  const pair = generateKeyPairSync('rsa', { modulusLength: 1024 });
  for (let i = 0; i < 10_000; i++) {
    const message = Buffer.from(`message ${i}`);
    const bytes = sign('sha512', message, pair.privateKey);
    if (bytes[0] !== 0) continue;
    const short = formatSignature({ algorithm: 'rsa-sha2-512', bytes: bytes.subarray(1) });
    assert.equal(verifySignature(pair.publicKey, { data: message, signature: short }), true);
    const long = formatSignature({ algorithm: 'rsa-sha2-512', bytes: Buffer.concat([Buffer.of(0), bytes]) });
    assert.equal(verifySignature(pair.publicKey, { data: message, signature: long }), false);
    return;
  }
  assert.fail('no signature with a leading zero byte in 10,000 tries');
});

test('encodes ECDSA r and s as minimal mpints and refuses other encodings', () => {
  const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const { bytes } = parseSignature(createSignature(pair.privateKey, data));
  const reader = new SshReader(bytes, 't');
  const r = reader.mpint('r', 32);
  const s = reader.mpint('s', 32);
  reader.end();
  assert.equal(verifySignature(pair.publicKey, { data, signature: { algorithm: 'ecdsa-sha2-nistp256', bytes } }), true);
  const padded = new SshWriter().string(Buffer.concat([Buffer.of(0, 0), r])).mpint(s).toBuffer();
  assert.throws(() => verifySignature(pair.publicKey, { data, signature: { algorithm: 'ecdsa-sha2-nistp256', bytes: padded } }), SshFormatError);
  const extra = Buffer.concat([bytes, Buffer.of(0)]);
  assert.throws(() => verifySignature(pair.publicKey, { data, signature: { algorithm: 'ecdsa-sha2-nistp256', bytes: extra } }), /trailing/);
  const zero = new SshWriter().mpint(0n).mpint(s).toBuffer();
  assert.equal(verifySignature(pair.publicKey, { data, signature: { algorithm: 'ecdsa-sha2-nistp256', bytes: zero } }), false);
  const tooLong = new SshWriter().mpint(Buffer.alloc(33, 1)).mpint(s).toBuffer();
  assert.throws(() => verifySignature(pair.publicKey, { data, signature: { algorithm: 'ecdsa-sha2-nistp256', bytes: tooLong } }), SshFormatError);
});

test('refuses signature blobs with trailing bytes or cut short', () => {
  const blob = createSignature(generateKeyPairSync('ed25519').privateKey, data);
  assert.throws(() => parseSignature(Buffer.concat([blob, Buffer.of(1)])), /trailing/);
  for (let length = 0; length < blob.length; length++) {
    assert.throws(() => parseSignature(blob.subarray(0, length)), SshFormatError);
  }
});

function formatSignatureUnchecked(algorithm: string, bytes: Buffer): Buffer {
  return new SshWriter().string(algorithm).string(bytes).toBuffer();
}
