import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { PosternError } from '../errors.ts';
import { SshFormatError, SshUnsupportedAlgorithmError } from './errors.ts';
import { formatOpenSshPrivateKey, parseOpenSshPrivateKey } from './private-key.ts';
import { parseAuthorizedKey, publicKeyToBlob } from './public-key.ts';
import { SshReader, SshWriter } from './wire.ts';

/** An Ed25519 key written by OpenSSH 9.2's `ssh-keygen -t ed25519 -N '' -C 'gen ed25519'`, with its .pub line. */
const opensshEd25519 = `-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACBQ2pn8cQz7y4kVxjRjjL8jGFMhGi7yufMljGDX7WSFGQAAAJDIkRreyJEa
3gAAAAtzc2gtZWQyNTUxOQAAACBQ2pn8cQz7y4kVxjRjjL8jGFMhGi7yufMljGDX7WSFGQ
AAAEA6d7g8hUXHQgMsDyvf4E2NSi5X6o8yITF/mgbgtLsOPVDamfxxDPvLiRXGNGOMvyMY
UyEaLvK58yWMYNftZIUZAAAAC2dlbiBlZDI1NTE5AQI=
-----END OPENSSH PRIVATE KEY-----
`;
const opensshEd25519Pub = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFDamfxxDPvLiRXGNGOMvyMYUyEaLvK58yWMYNftZIUZ gen ed25519';

const pairs: Array<[string, () => { privateKey: KeyObject; publicKey: KeyObject }]> = [
  ['ssh-ed25519', () => generateKeyPairSync('ed25519')],
  ['ecdsa-sha2-nistp256', () => generateKeyPairSync('ec', { namedCurve: 'P-256' })],
  ['ecdsa-sha2-nistp384', () => generateKeyPairSync('ec', { namedCurve: 'P-384' })],
  ['ecdsa-sha2-nistp521', () => generateKeyPairSync('ec', { namedCurve: 'P-521' })],
  ['ssh-rsa', () => generateKeyPairSync('rsa', { modulusLength: 2048 })],
];

const body = (pem: string) => Buffer.from(pem.split('\n').filter((l) => l && !l.startsWith('-----')).join(''), 'base64');
const armour = (bytes: Buffer) => `-----BEGIN OPENSSH PRIVATE KEY-----\n${bytes.toString('base64')}\n-----END OPENSSH PRIVATE KEY-----\n`;

/** Rebuilds a key file with a replaced private section (to test what the parser checks inside it). */
function withSection(pem: string, edit: (section: Buffer) => Buffer): string {
  const reader = new SshReader(body(pem), 'test');
  const magic = reader.raw(15, 'magic');
  const head = new SshWriter().raw(magic).string(reader.string('c')).string(reader.string('k')).string(reader.string('o')).uint32(reader.uint32('n'));
  head.string(reader.string('pub'));
  return armour(head.string(edit(Buffer.from(reader.string('section')))).toBuffer());
}

for (const [algorithm, generate] of pairs) {
  test(`${algorithm}: write then read gives the same key, which still signs`, () => {
    const pair = generate();
    const pem = formatOpenSshPrivateKey(pair.privateKey, { comment: 'alice@laptop' });
    const loaded = parseOpenSshPrivateKey(pem);
    assert.equal(loaded.algorithm, algorithm);
    assert.equal(loaded.comment, 'alice@laptop');
    assert.deepEqual(publicKeyToBlob(loaded.publicKey), publicKeyToBlob(pair.publicKey));
    const data = Buffer.from('proof');
    const hash = algorithm === 'ssh-ed25519' ? null : 'sha256';
    assert.ok(verify(hash, data, pair.publicKey, sign(hash, data, loaded.privateKey)));
  });
}

test('writes the armour, 70-column lines and 1, 2, 3... padding OpenSSH expects', () => {
  const pem = formatOpenSshPrivateKey(generateKeyPairSync('ed25519').privateKey);
  const lines = pem.trimEnd().split('\n');
  assert.equal(lines[0], '-----BEGIN OPENSSH PRIVATE KEY-----');
  assert.equal(lines.at(-1), '-----END OPENSSH PRIVATE KEY-----');
  assert.ok(lines.slice(1, -1).every((l) => l.length <= 70));
  assert.ok(lines.slice(1, -2).every((l) => l.length === 70));
  assert.ok(body(pem).subarray(0, 15).equals(Buffer.from('openssh-key-v1\0')));
  withSection(pem, (section) => {
    assert.equal(section.length % 8, 0);
    return section;
  });
});

test('reads a key ssh-keygen wrote', () => {
  const loaded = parseOpenSshPrivateKey(opensshEd25519);
  assert.equal(loaded.comment, 'gen ed25519');
  assert.deepEqual(publicKeyToBlob(loaded.publicKey), parseAuthorizedKey(opensshEd25519Pub).publicKey.blob);
});

test('refuses encrypted keys and says how to decrypt', () => {
  const encrypted = new SshWriter().raw(Buffer.from('openssh-key-v1\0')).string('aes256-ctr').string('bcrypt').string(Buffer.alloc(24)).uint32(1).toBuffer();
  assert.throws(() => parseOpenSshPrivateKey(armour(encrypted)), (error: unknown) => {
    assert.ok(error instanceof SshUnsupportedAlgorithmError);
    assert.match(error.message, /encrypted \(aes256-ctr, bcrypt\).*ssh-keygen -p/);
    return true;
  });
});

test('refuses a public key, missing armour, and a wrong magic', () => {
  assert.throws(() => formatOpenSshPrivateKey(generateKeyPairSync('ed25519').publicKey), /is a public key/);
  assert.throws(() => parseOpenSshPrivateKey('ssh-ed25519 AAAA'), /missing/);
  assert.throws(() => parseOpenSshPrivateKey(armour(Buffer.from('openssh-key-v2\0xxxxxxxxxxxxxxxx'))), /openssh-key-v1/);
});

test('refuses differing check numbers, bad padding, and a private key that does not match the public key', () => {
  const pem = formatOpenSshPrivateKey(generateKeyPairSync('ed25519').privateKey, { comment: 'c' });
  assert.throws(() => parseOpenSshPrivateKey(withSection(pem, (s) => Buffer.concat([Buffer.of(s[0]! ^ 1), s.subarray(1)]))), /check numbers differ/);
  assert.throws(() => parseOpenSshPrivateKey(withSection(pem, (s) => Buffer.concat([s.subarray(0, -1), Buffer.of(9)]))), /padding/);
  const other = body(formatOpenSshPrivateKey(generateKeyPairSync('ed25519').privateKey, { comment: 'c' }));
  const otherSection = (() => {
    const reader = new SshReader(other, 't');
    reader.raw(15, 'm');
    for (const f of ['c', 'k', 'o']) reader.string(f);
    reader.uint32('n');
    reader.string('pub');
    return Buffer.from(reader.string('section'));
  })();
  assert.throws(() => parseOpenSshPrivateKey(withSection(pem, () => otherSection)), /does not match the public key/);
});

test('every truncation of a key file fails with a Postern error', () => {
  for (const [, generate] of [pairs[0]!, pairs[1]!]) {
    const bytes = body(formatOpenSshPrivateKey(generate().privateKey, { comment: 'x' }));
    for (let length = 0; length < bytes.length; length++) {
      assert.throws(() => parseOpenSshPrivateKey(armour(bytes.subarray(0, length))), PosternError, `length ${length}`);
    }
  }
});

test('refuses bodies that are not base64', () => {
  assert.throws(() => parseOpenSshPrivateKey('-----BEGIN OPENSSH PRIVATE KEY-----\n!!!\n-----END OPENSSH PRIVATE KEY-----'), SshFormatError);
});
