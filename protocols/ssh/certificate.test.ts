import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import fc from 'fast-check';
import { PosternError } from '../errors.ts';
import {
  MAX_CERTIFICATE_BYTES,
  SSH_TIME_FOREVER,
  dateToSshTime,
  formatCertificate,
  parseCertificate,
  parseCertificateLine,
  signCertificate,
  sshTimeToDate,
} from './certificate.ts';
import type { CertificateFields } from './certificate.ts';
import { SshFormatError, SshUnsupportedAlgorithmError } from './errors.ts';
import { formatAuthorizedKey, publicKeyToBlob, writePublicKeyFields } from './public-key.ts';
import { createSignature, parseSignature } from './signature.ts';
import { verifyCertificate } from './verify-certificate.ts';
import { SshReader, SshWriter } from './wire.ts';

type Pair = { privateKey: KeyObject; publicKey: KeyObject };
const keys: Record<string, Pair> = {
  'ssh-ed25519': generateKeyPairSync('ed25519'),
  'ecdsa-sha2-nistp256': generateKeyPairSync('ec', { namedCurve: 'P-256' }),
  'ecdsa-sha2-nistp384': generateKeyPairSync('ec', { namedCurve: 'P-384' }),
  'ecdsa-sha2-nistp521': generateKeyPairSync('ec', { namedCurve: 'P-521' }),
  'ssh-rsa': generateKeyPairSync('rsa', { modulusLength: 2048 }),
};
const ca = generateKeyPairSync('ed25519');
const subject = keys['ssh-ed25519']!;

function fields(overrides: Partial<CertificateFields> = {}): CertificateFields {
  return {
    type: 'user',
    publicKey: subject.publicKey,
    keyId: 'alice@example',
    principals: ['alice', 'root'],
    validAfter: 1_800_000_000n,
    validBefore: 1_800_003_600n,
    serial: 42n,
    criticalOptions: { 'source-address': '127.0.0.1/32', 'force-command': '/usr/bin/true' },
    extensions: { 'permit-pty': '', 'postern-roles': '["dev"]', 'permit-agent-forwarding': '' },
    ...overrides,
  };
}

for (const [subjectType, subjectPair] of Object.entries(keys)) {
  for (const [caType, caPair] of Object.entries(keys)) {
    test(`${subjectType} certificate signed by a ${caType} CA round-trips`, () => {
      const nonce = Buffer.alloc(32, 7);
      const blob = signCertificate(fields({ publicKey: subjectPair.publicKey, nonce }), caPair.privateKey);
      const cert = parseCertificate(blob);
      assert.equal(cert.algorithm, `${subjectType}-cert-v01@openssh.com`);
      assert.deepEqual(cert.nonce, nonce);
      assert.ok(cert.publicKey.key.equals(subjectPair.publicKey));
      assert.deepEqual(cert.publicKey.blob, publicKeyToBlob(subjectPair.publicKey));
      assert.equal(cert.serial, 42n);
      assert.equal(cert.type, 'user');
      assert.equal(cert.keyId, 'alice@example');
      assert.deepEqual(cert.principals, ['alice', 'root']);
      assert.equal(cert.validAfter, 1_800_000_000n);
      assert.equal(cert.validBefore, 1_800_003_600n);
      assert.deepEqual([...cert.criticalOptions], [['force-command', '/usr/bin/true'], ['source-address', '127.0.0.1/32']]);
      assert.deepEqual([...cert.extensions], [['permit-agent-forwarding', ''], ['permit-pty', ''], ['postern-roles', '["dev"]']]);
      assert.deepEqual(cert.signatureKey.blob, publicKeyToBlob(caPair.publicKey));
      assert.equal(parseSignature(cert.signature).algorithm, caType === 'ssh-rsa' ? 'rsa-sha2-512' : caType);
      assert.deepEqual(Buffer.concat([cert.signedData, new SshWriter().string(cert.signature).toBuffer()]), blob);
      assert.deepEqual(cert.blob, blob);
      verifyCertificate(cert, { now: new Date(1_800_000_100_000), trustedCAs: [caPair.publicKey], expectedType: 'user', sourceAddress: '127.0.0.1' });
    });
  }
}

test('host certificates, rsa-sha2-256 CA signatures and certificates that never expire', () => {
  const blob = signCertificate(fields({ type: 'host', principals: ['node1.example'], validBefore: SSH_TIME_FOREVER }), keys['ssh-rsa']!.privateKey, { rsaHash: 'sha256' });
  const cert = parseCertificate(blob);
  assert.equal(cert.type, 'host');
  assert.equal(cert.validBefore, SSH_TIME_FOREVER);
  assert.equal(sshTimeToDate(cert.validBefore), undefined);
  assert.equal(parseSignature(cert.signature).algorithm, 'rsa-sha2-256');
});

test('takes Dates for validity, rounding down to whole seconds', () => {
  const cert = parseCertificate(signCertificate(fields({ validAfter: new Date(1_800_000_000_999), validBefore: new Date('2027-02-01T00:00:00Z') }), ca.privateKey));
  assert.equal(cert.validAfter, 1_800_000_000n);
  assert.deepEqual(sshTimeToDate(cert.validBefore), new Date('2027-02-01T00:00:00Z'));
  assert.equal(dateToSshTime(new Date(0)), 0n);
  assert.throws(() => dateToSshTime(new Date(Number.NaN)), SshFormatError);
});

test('writes options and extensions in byte order, flags empty and values as a string inside a string', () => {
  const cert = parseCertificate(signCertificate(fields({ criticalOptions: {}, extensions: new Map([['z', 'v'], ['a', ''], ['B', 'x']]) }), ca.privateKey));
  assert.deepEqual([...cert.extensions.keys()], ['B', 'a', 'z']);
  const reader = new SshReader(cert.signedData, 't');
  for (const field of ['name', 'nonce', 'key']) reader.string(field);
  reader.uint64('serial');
  reader.uint32('type');
  reader.string('key id');
  reader.string('principals');
  reader.uint64('after');
  reader.uint64('before');
  assert.deepEqual(reader.string('critical options'), Buffer.alloc(0));
  const expected = new SshWriter()
    .string('B').string(new SshWriter().string('x').toBuffer())
    .string('a').string('')
    .string('z').string(new SshWriter().string('v').toBuffer())
    .toBuffer();
  assert.deepEqual(reader.string('extensions'), expected);
  assert.deepEqual(reader.string('reserved'), Buffer.alloc(0));
});

test('formats and parses certificate lines', () => {
  const blob = signCertificate(fields(), ca.privateKey);
  const line = formatCertificate(blob, 'alice cert');
  assert.match(line, /^ssh-ed25519-cert-v01@openssh\.com [A-Za-z0-9+/]+=* alice cert$/);
  const parsed = parseCertificateLine(`${line}\n`);
  assert.equal(parsed.comment, 'alice cert');
  assert.deepEqual(parsed.certificate.blob, blob);
  assert.equal(formatCertificate(blob), line.replace(' alice cert', ''));
  assert.throws(() => parseCertificateLine(formatAuthorizedKey(subject.publicKey)), SshFormatError);
  assert.throws(() => formatCertificate(publicKeyToBlob(subject.publicKey)), SshUnsupportedAlgorithmError);
});

test('refuses to sign certificates OpenSSH would misread or that Postern never issues', () => {
  assert.throws(() => signCertificate(fields({ principals: [] }), ca.privateKey), /no principals/);
  assert.throws(() => signCertificate(fields({ principals: [''] }), ca.privateKey), /principal is empty/);
  assert.throws(() => signCertificate(fields({ principals: ['a\0b'] }), ca.privateKey), /NUL/);
  assert.throws(() => signCertificate(fields({ principals: Array.from({ length: 257 }, (_, i) => `p${i}`) }), ca.privateKey), /257 principals/);
  assert.throws(() => signCertificate(fields({ validAfter: 10n, validBefore: 10n }), ca.privateKey), /not before/);
  assert.throws(() => signCertificate(fields({ keyId: 'x\0' }), ca.privateKey), /key id/);
  assert.throws(() => signCertificate(fields({ extensions: { '': 'x' } }), ca.privateKey), /empty/);
  assert.throws(() => signCertificate(fields({ serial: -1n }), ca.privateKey), SshFormatError);
});

/** The raw pieces of a certificate, to build ones signCertificate refuses to make. */
interface RawCertificate {
  name: string;
  keyFields: Buffer;
  typeNumber: number;
  keyId: Buffer;
  principals: Buffer;
  criticalOptions: Buffer;
  extensions: Buffer;
  signatureKey: Buffer;
  signature?: Buffer;
  trailing: Buffer;
}

function rawCertificate(overrides: Partial<RawCertificate> = {}): Buffer {
  const keyFields = new SshWriter();
  writePublicKeyFields(keyFields, subject.publicKey);
  const raw: RawCertificate = {
    name: 'ssh-ed25519-cert-v01@openssh.com',
    keyFields: keyFields.toBuffer(),
    typeNumber: 1,
    keyId: Buffer.from('k'),
    principals: principalSection(['alice']),
    criticalOptions: Buffer.alloc(0),
    extensions: optionSection([['permit-pty', '']]),
    signatureKey: publicKeyToBlob(ca.publicKey),
    trailing: Buffer.alloc(0),
    ...overrides,
  };
  const signed = new SshWriter()
    .string(raw.name).string(Buffer.alloc(32, 1)).raw(raw.keyFields)
    .uint64(1n).uint32(raw.typeNumber).string(raw.keyId).string(raw.principals)
    .uint64(0n).uint64(SSH_TIME_FOREVER)
    .string(raw.criticalOptions).string(raw.extensions).string('').string(raw.signatureKey)
    .toBuffer();
  const signature = raw.signature ?? createSignature(ca.privateKey, signed);
  return Buffer.concat([signed, new SshWriter().string(signature).toBuffer(), raw.trailing]);
}

function principalSection(principals: string[]): Buffer {
  const writer = new SshWriter();
  for (const p of principals) writer.string(p);
  return writer.toBuffer();
}

/** Options in the order given; `''` becomes empty data, a Buffer is used as the raw data. */
function optionSection(entries: Array<[string, string | Buffer]>): Buffer {
  const writer = new SshWriter();
  for (const [name, value] of entries) {
    const data = typeof value !== 'string' ? value : value === '' ? Buffer.alloc(0) : new SshWriter().string(value).toBuffer();
    writer.string(name).string(data);
  }
  return writer.toBuffer();
}

test('the hand-built certificate of these tests parses and verifies', () => {
  const cert = parseCertificate(rawCertificate());
  verifyCertificate(cert, { now: new Date(), trustedCAs: [ca.publicKey], expectedType: 'user', principal: 'alice' });
});

test('refuses trailing bytes, unknown certificate types and unknown type names', () => {
  assert.throws(() => parseCertificate(rawCertificate({ trailing: Buffer.of(0) })), /trailing/);
  assert.throws(() => parseCertificate(rawCertificate({ typeNumber: 3 })), /certificate type 3 is neither 1 \(user\) nor 2 \(host\)/);
  assert.throws(() => parseCertificate(rawCertificate({ typeNumber: 0 })), SshFormatError);
  assert.throws(() => parseCertificate(rawCertificate({ name: 'ssh-dss-cert-v01@openssh.com' })), SshUnsupportedAlgorithmError);
  assert.throws(() => parseCertificate(rawCertificate({ name: 'rsa-sha2-512-cert-v01@openssh.com' })), SshUnsupportedAlgorithmError);
  assert.throws(() => parseCertificate(rawCertificate({ name: 'ssh-ed25519' })), SshUnsupportedAlgorithmError);
  assert.throws(() => parseCertificate(rawCertificate({ name: 'ecdsa-sha2-nistp256-cert-v01@openssh.com' })), SshFormatError, 'Ed25519 fields under an ECDSA name');
});

test('refuses options out of order, repeated, empty-named or with malformed data', () => {
  const bad: Array<[string, Buffer]> = [
    ['out of order', optionSection([['permit-pty', ''], ['permit-agent-forwarding', '']])],
    ['repeated', optionSection([['permit-pty', ''], ['permit-pty', '']])],
    ['empty name', optionSection([['', '']])],
    ['value with trailing bytes', optionSection([['x', Buffer.concat([new SshWriter().string('v').toBuffer(), Buffer.of(0)])]])],
    ['value that is not a string', optionSection([['x', Buffer.of(1, 2, 3)]])],
    ['value with NUL', optionSection([['x', new SshWriter().string('a\0b').toBuffer()]])],
    ['name cut short', Buffer.of(0, 0, 0, 9, 0x61)],
  ];
  for (const [what, section] of bad) {
    assert.throws(() => parseCertificate(rawCertificate({ extensions: section })), SshFormatError, `extensions: ${what}`);
    assert.throws(() => parseCertificate(rawCertificate({ criticalOptions: section })), SshFormatError, `critical options: ${what}`);
  }
  assert.throws(() => parseCertificate(rawCertificate({ extensions: optionSection([['b', ''], ['a', '']]) })), /"a" is out of order or repeated/);
  // Byte order, not alphabetical order: 'Z' (0x5a) sorts before 'a' (0x61).
  assert.deepEqual([...parseCertificate(rawCertificate({ extensions: optionSection([['Z', ''], ['a', '']]) })).extensions.keys()], ['Z', 'a']);
});

test('refuses key ids and principals that are not clean text, and too many principals', () => {
  assert.throws(() => parseCertificate(rawCertificate({ keyId: Buffer.from('a\0b') })), /key id contains a NUL byte/);
  assert.throws(() => parseCertificate(rawCertificate({ keyId: Buffer.of(0xff) })), /not valid UTF-8/);
  assert.throws(() => parseCertificate(rawCertificate({ principals: Buffer.of(0, 0, 0, 5, 0x61) })), SshFormatError);
  assert.throws(() => parseCertificate(rawCertificate({ principals: principalSection(Array.from({ length: 257 }, (_, i) => `p${i}`)) })), /more than OpenSSH's 256 principals/);
  assert.equal(parseCertificate(rawCertificate({ principals: principalSection(Array.from({ length: 256 }, (_, i) => `p${i}`)) })).principals.length, 256);
  assert.deepEqual(parseCertificate(rawCertificate({ principals: Buffer.alloc(0) })).principals, []);
});

test('refuses a certificate as the signature key, and a malformed signature field', () => {
  const certAsCa = signCertificate(fields(), ca.privateKey);
  assert.throws(() => parseCertificate(rawCertificate({ signatureKey: certAsCa })), /signature key is itself a certificate/);
  assert.throws(() => parseCertificate(rawCertificate({ signatureKey: Buffer.from('junk') })), SshFormatError);
  assert.throws(() => parseCertificate(rawCertificate({ signature: Buffer.of(0, 0, 0, 1) })), SshFormatError);
  const sigWithTrailing = Buffer.concat([createSignature(ca.privateKey, Buffer.from('x')), Buffer.of(0)]);
  assert.throws(() => parseCertificate(rawCertificate({ signature: sigWithTrailing })), /trailing/);
});

test('refuses certificates larger than the maximum before reading them', () => {
  assert.throws(() => parseCertificate(Buffer.alloc(MAX_CERTIFICATE_BYTES + 1)), /more than the 65536 allowed/);
});

for (const [keyType, pair] of Object.entries(keys)) {
  test(`${keyType}: every truncation of a certificate throws SshFormatError`, () => {
    const blob = signCertificate(fields({ publicKey: pair.publicKey }), pair.privateKey);
    for (let length = 0; length < blob.length; length++) {
      assert.throws(() => parseCertificate(blob.subarray(0, length)), SshFormatError, `length ${length}`);
    }
  });
}

test('fuzz: random bytes and mutated certificates fail only with Postern errors, and no mutation verifies', () => {
  const blob = signCertificate(fields(), ca.privateKey);
  const now = new Date(1_800_000_100_000);
  const tryParse = (bytes: Uint8Array) => {
    try {
      return parseCertificate(bytes);
    } catch (error) {
      if (!(error instanceof PosternError)) throw error;
      return undefined;
    }
  };
  fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => void tryParse(bytes)), { numRuns: 4000 });
  const mutation = fc.record({
    edits: fc.array(fc.tuple(fc.nat({ max: blob.length - 1 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
    cut: fc.option(fc.nat({ max: blob.length })),
    append: fc.uint8Array({ maxLength: 4 }),
  });
  fc.assert(
    fc.property(mutation, ({ edits, cut, append }) => {
      const mutated = Buffer.from(blob);
      for (const [position, value] of edits) mutated[position] = value;
      const bytes = Buffer.concat([mutated.subarray(0, cut ?? mutated.length), append]);
      const cert = tryParse(bytes);
      if (cert === undefined) return;
      let verified = true;
      try {
        verifyCertificate(cert, { now, trustedCAs: [ca.publicKey], expectedType: 'user', sourceAddress: '127.0.0.1' });
      } catch (error) {
        if (!(error instanceof PosternError)) throw error;
        verified = false;
      }
      assert.equal(verified, bytes.equals(blob), 'a certificate verifies exactly when it is the one the CA signed');
    }),
    { numRuns: 10_000 },
  );
});
