import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SshFormatError } from './errors.ts';
import { SshReader, SshWriter, bigintToBytes, bytesToBigint } from './wire.ts';

const hex = (text: string) => Buffer.from(text.replace(/\s+/g, ''), 'hex');

test('round-trips every data type', () => {
  const bytes = new SshWriter()
    .byte(7)
    .boolean(true)
    .uint32(0xdeadbeef)
    .uint64(0xffff_ffff_ffff_ffffn)
    .string('héllo')
    .string(Buffer.of(0, 1, 2))
    .mpint(0x80n)
    .mpint(Buffer.of(0, 0, 5))
    .nameList(['zlib', 'none'])
    .raw(Buffer.of(9))
    .toBuffer();
  const reader = new SshReader(bytes, 'test data');
  assert.equal(reader.byte('b'), 7);
  assert.equal(reader.boolean('flag'), true);
  assert.equal(reader.uint32('u32'), 0xdeadbeef);
  assert.equal(reader.uint64('u64'), 0xffff_ffff_ffff_ffffn);
  assert.equal(reader.text('text'), 'héllo');
  assert.deepEqual(reader.string('bin'), Buffer.of(0, 1, 2));
  assert.deepEqual(reader.mpint('m1', 4), Buffer.of(0x80));
  assert.deepEqual(reader.mpint('m2', 4), Buffer.of(5));
  assert.deepEqual(reader.nameList('names'), ['zlib', 'none']);
  assert.deepEqual(reader.rest(), Buffer.of(9));
  reader.end();
});

test('encodes mpints as the examples of RFC 4251 section 5', () => {
  assert.deepEqual(new SshWriter().mpint(0n).toBuffer(), hex('00000000'));
  assert.deepEqual(new SshWriter().mpint(0x9a378f9b2e332a7n).toBuffer(), hex('00000008 09 a3 78 f9 b2 e3 32 a7'));
  assert.deepEqual(new SshWriter().mpint(0x80n).toBuffer(), hex('00000002 00 80'));
  assert.deepEqual(new SshReader(hex('00000000'), 't').mpint('zero', 1), Buffer.alloc(0));
});

test('refuses negative and non-minimal mpints and ones above the maximum', () => {
  assert.throws(() => new SshReader(hex('00000001 80'), 't').mpint('m', 4), /m is negative/);
  assert.throws(() => new SshReader(hex('00000002 00 01'), 't').mpint('m', 4), /needless leading zero/);
  assert.throws(() => new SshReader(hex('00000001 00'), 't').mpint('m', 4), /needless leading zero/);
  assert.throws(() => new SshReader(hex('00000003 01 02 03'), 't').mpint('m', 2), SshFormatError);
  assert.deepEqual(new SshReader(hex('00000003 00 80 01'), 't').mpint('m', 2), Buffer.of(0x80, 1));
  assert.throws(() => new SshWriter().mpint(-1n), SshFormatError);
});

test('refuses a declared length beyond what remains or beyond the maximum, naming the field', () => {
  assert.throws(() => new SshReader(hex('00000005 6162'), 'test blob').string('key id'), (error: unknown) => {
    assert.ok(error instanceof SshFormatError);
    assert.equal(error.code, 'PST_SSH_MALFORMED');
    assert.match(error.message, /^Cannot parse test blob: key id needs 5 byte\(s\) at offset 4 but only 2 remain/);
    return true;
  });
  assert.throws(() => new SshReader(hex('ffffffff'), 't').string('s'), /needs 4294967295 byte/);
  assert.throws(() => new SshReader(hex('00000003 616263'), 't').string('s', 2), /declares 3 bytes, more than the 2 allowed/);
});

test('refuses text that is not UTF-8 or holds NUL', () => {
  assert.throws(() => new SshReader(hex('00000002 c328'), 't').text('name'), /name is not valid UTF-8/);
  assert.throws(() => new SshReader(hex('00000003 610062'), 't').text('name'), /name contains a NUL byte/);
});

test('reads name-lists strictly', () => {
  assert.deepEqual(new SshReader(hex('00000000'), 't').nameList('n'), []);
  assert.throws(() => new SshReader(new SshWriter().string('a,,b').toBuffer(), 't').nameList('n'), /empty name/);
  assert.throws(() => new SshReader(new SshWriter().string('a,b,').toBuffer(), 't').nameList('n'), /empty name/);
  assert.throws(() => new SshReader(new SshWriter().string('a b').toBuffer(), 't').nameList('n'), /not printable ASCII/);
  assert.throws(() => new SshWriter().nameList(['a,b']), SshFormatError);
  assert.throws(() => new SshWriter().nameList(['']), SshFormatError);
});

test('refuses trailing bytes', () => {
  const reader = new SshReader(hex('00000001 ff'), 't');
  reader.uint32('n');
  assert.throws(() => reader.end(), /1 unexpected trailing byte\(s\) at offset 4/);
});

test('refuses out-of-range integers when writing', () => {
  assert.throws(() => new SshWriter().uint32(2 ** 32), SshFormatError);
  assert.throws(() => new SshWriter().uint32(-1), SshFormatError);
  assert.throws(() => new SshWriter().uint32(1.5), SshFormatError);
  assert.throws(() => new SshWriter().uint64(2n ** 64n), SshFormatError);
  assert.throws(() => new SshWriter().byte(256), SshFormatError);
});

test('every truncation of a structure throws SshFormatError, never a RangeError', () => {
  const bytes = new SshWriter().uint32(1).uint64(2n).string('abc').mpint(0xffn).nameList(['x']).byte(1).toBuffer();
  const readAll = (reader: SshReader) => {
    reader.uint32('a');
    reader.uint64('b');
    reader.text('c');
    reader.mpint('d', 8);
    reader.nameList('e');
    reader.boolean('f');
    reader.end();
  };
  readAll(new SshReader(bytes, 'whole'));
  for (let length = 0; length < bytes.length; length++) {
    assert.throws(() => readAll(new SshReader(bytes.subarray(0, length), 'truncated')), SshFormatError, `length ${length}`);
  }
});

test('reads from a view into a larger buffer without seeing outside it', () => {
  const backing = Buffer.from('00000002616200000000', 'hex');
  const view = backing.subarray(4, 6);
  const reader = new SshReader(view, 'view');
  assert.equal(reader.remaining, 2);
  assert.throws(() => reader.uint32('n'), SshFormatError);
});

test('converts bigints and bytes', () => {
  assert.deepEqual(bigintToBytes(0n), Buffer.alloc(0));
  assert.deepEqual(bigintToBytes(0x1234n), Buffer.of(0x12, 0x34));
  assert.deepEqual(bigintToBytes(0x123n), Buffer.of(0x01, 0x23));
  assert.equal(bytesToBigint(Buffer.of(1, 0)), 256n);
  assert.equal(bytesToBigint(Buffer.alloc(0)), 0n);
});
