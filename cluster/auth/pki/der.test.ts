import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  bitString,
  childrenOf,
  contentOf,
  decodeOid,
  expectElement,
  namedBits,
  oid,
  readElement,
  readWhole,
  seq,
  smallInteger,
  TAG,
  time,
  tlv,
  unsignedInteger,
  utf8String,
} from './der.ts';
import { DerFormatError } from './errors.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('DER writer', () => {
  it('encodes short, one-byte and two-byte lengths', () => {
    assert.equal(hex(tlv(0x04, Buffer.alloc(3))), '0403000000');
    assert.equal(hex(tlv(0x04, Buffer.alloc(200)).subarray(0, 3)), '0481c8');
    assert.equal(hex(tlv(0x04, Buffer.alloc(300)).subarray(0, 4)), '0482012c');
    assert.equal(tlv(0x04, Buffer.alloc(70_000)).length, 70_000 + 5);
  });

  it('encodes integers minimally, adding a zero byte before a set top bit', () => {
    assert.equal(hex(smallInteger(0)), '020100');
    assert.equal(hex(smallInteger(2)), '020102');
    assert.equal(hex(smallInteger(128)), '02020080');
    assert.equal(hex(smallInteger(65_536)), '0203010000');
    assert.equal(hex(unsignedInteger(Buffer.from('0000ff', 'hex'))), '020200ff');
    assert.equal(hex(unsignedInteger(Buffer.from('007f', 'hex'))), '02017f');
    assert.throws(() => smallInteger(-1), DerFormatError);
  });

  it('encodes OIDs, including multi-byte arcs', () => {
    assert.equal(hex(oid('2.5.4.3')), '0603550403');
    assert.equal(hex(oid('1.2.840.10045.4.3.2')), '06082a8648ce3d040302');
    // 7678376 = 3*128^3 + 84*128^2 + 83*128 + 40 -> 83 d4 d3 28
    assert.equal(hex(oid('1.3.6.1.4.1.7678376.1.1')), '060b2b0601040183d4d3280101');
    assert.throws(() => oid('1..2'), DerFormatError);
    assert.throws(() => oid('3.1'), DerFormatError);
  });

  it('decodes what it encodes, for OIDs with small and huge arcs', () => {
    for (const dotted of ['2.5.29.17', '1.3.6.1.4.1.7678376.1.2', '2.999.3', '2.25.329800735698586629295641978511506172918', '0.9.2342']) {
      assert.equal(decodeOid(contentOf(oid(dotted), readWhole(oid(dotted), TAG.oid, 'oid'))), dotted);
    }
    assert.throws(() => decodeOid(Buffer.from([0x2b, 0x86])), DerFormatError); // truncated arc
    assert.throws(() => decodeOid(Buffer.from([0x2b, 0x80, 0x01])), DerFormatError); // non-minimal arc
  });

  it('encodes named bits with trailing zero bits dropped', () => {
    assert.equal(hex(namedBits([0])), '03020780'); // digitalSignature
    assert.equal(hex(namedBits([5, 6])), '03020106'); // keyCertSign, cRLSign
    assert.equal(hex(namedBits([0, 2])), '030205a0'); // digitalSignature, keyEncipherment
    assert.equal(hex(namedBits([8])), '0303070080');
    assert.equal(hex(bitString(Buffer.from([1, 2]))), '0303000102');
  });

  it('uses UTCTime through 2049 and GeneralizedTime from 2050, whole seconds', () => {
    assert.equal(time(new Date('2026-01-02T03:04:05.999Z')).toString('latin1', 2), '260102030405Z');
    assert.equal(time(new Date('2026-01-02T03:04:05Z'))[0], TAG.utcTime);
    assert.equal(time(new Date('2049-12-31T23:59:59Z')).toString('latin1', 2), '491231235959Z');
    const late = time(new Date('2050-01-01T00:00:00Z'));
    assert.equal(late[0], TAG.generalizedTime);
    assert.equal(late.toString('latin1', 2), '20500101000000Z');
    assert.throws(() => time(new Date('1949-12-31T00:00:00Z')), DerFormatError);
    assert.throws(() => time(new Date(Number.NaN)), DerFormatError);
  });
});

describe('DER reader', () => {
  const sample = seq(oid('2.5.4.3'), utf8String('alice'), seq(smallInteger(7)));

  it('walks nested elements without copying', () => {
    const outer = readWhole(sample, TAG.sequence, 'sample');
    const [id, name, inner] = childrenOf(sample, outer);
    assert.equal(id!.tag, TAG.oid);
    assert.equal(contentOf(sample, name!).toString(), 'alice');
    assert.equal(contentOf(sample, name!).buffer, sample.buffer);
    const [seven] = childrenOf(sample, inner!);
    assert.equal(hex(contentOf(sample, seven!)), '07');
  });

  it('refuses every truncation of a valid encoding', () => {
    for (let cut = 0; cut < sample.length; cut++) {
      assert.throws(() => {
        const outer = readWhole(sample.subarray(0, cut), TAG.sequence, 'sample');
        childrenOf(sample, outer);
      }, DerFormatError, `cut at ${cut}`);
    }
  });

  it('refuses trailing bytes, wrong tags, indefinite and non-minimal lengths', () => {
    assert.throws(() => readWhole(Buffer.concat([sample, Buffer.of(0)]), TAG.sequence, 's'), /trailing/);
    assert.throws(() => expectElement(sample, 0, sample.length, TAG.set, 's'), /expected tag 0x31/);
    assert.throws(() => readElement(Buffer.from('3080000000', 'hex'), 0), /indefinite/);
    assert.throws(() => readElement(Buffer.from('04810100', 'hex'), 0), /minimally/);
    assert.throws(() => readElement(Buffer.from('0482000100', 'hex'), 0), /minimally/);
    assert.throws(() => readElement(Buffer.from('0485ffffffffff', 'hex'), 0), /too long/);
    assert.throws(() => readElement(Buffer.from('1f0100', 'hex'), 0), /multi-byte tags/);
  });

  it('refuses a child that overruns its parent even when the buffer has the bytes', () => {
    // SEQUENCE of length 3 whose child claims 4 content bytes; the buffer continues past it.
    const bytes = Buffer.from('300304040102030405', 'hex');
    const outer = readElement(bytes, 0);
    assert.throws(() => childrenOf(bytes, outer), /4 content bytes declared, 1 present/);
  });

  it('never throws anything but DerFormatError on random input', () => {
    let seed = 42;
    const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff;
    for (let round = 0; round < 2000; round++) {
      const bytes = Buffer.from(Array.from({ length: 1 + (round % 40) }, random));
      try {
        const el = readElement(bytes, 0);
        if ((el.tag & 0x20) !== 0) childrenOf(bytes, el);
      } catch (error) {
        assert.ok(error instanceof DerFormatError, `round ${round}: ${String(error)}`);
      }
    }
  });
});
