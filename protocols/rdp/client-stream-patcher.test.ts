import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ClientStreamPatcher } from './client-stream-patcher.ts';
import { offerFullColour } from './colour-depth-patch.ts';
import { REMOTEFX_GUIDS, withoutRemoteFx } from './remotefx-patch.ts';

/** The Confirm Active PDU ironrdp-wasm 1.1.0 sent to xrdp 0.9.21 (1024x768, 32 bpp), as the gateway saw it. */
const CONFIRM_ACTIVE = Buffer.from(
  '0300020002f08064000403eb7081f1f1011300ed03ea030100ea030800d90149524f4e52445000100000001a0008000040300001001800000000000002000000' +
  '000104000000000000000002001c00200001000100010000040003000001000100000e0100000003005800000000000000000000000000000000000000000001' +
  '0014000000010000000a000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000004' +
  '0028000000000000000000000000000000000000000000000000000000000000000000000000000d005800ffff00000000000004000000000000000c00000000' +
  '00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000008' +
  '000a000100200020000f000800000000001000340000000000000000000000000000000000000000000000000000000000000000000000000000000000000000' +
  '000000000011000c00000000000000000014000c0000000000000000000c000800000000001b00060003001c000c0052000000000000001d00410001122f7776' +
  '72bd6344afb3b73c9c6f788603290029000000000000001d000000c0cb080000000100c1cb1500000001c0cf0100080000014000000101041e00080014000000'  , 'hex');

/** The MCS Connect Initial PDU ironrdp-wasm 1.1.0 sent to freerdp-shadow-cli; Client Core Data at byte 0x89. */
const CONNECT_INITIAL = Buffer.from(
  '0300019302f0807f658201870401010401010101ff301a020122020102020100020101020100020101020300ffff020102301902010102010102010102010102' +
  '0100020101020204200201023020020300ffff020300fc17020300ffff020101020100020101020300ffff02010204820121000500147c000181160008001000' +
  '01c00044756361810a01c0ea00040008000004000301ca03aa0000000000000000690072006f006e007200640070002d00770065006200000000000000000000' +
  '0004000000000000000c000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000' +
  '0000000000000000000000000001ca01000000000018000200290800000000000000000000000000000000000000000000000000000000000000000000000000' +
  '00000000000000000000000000000000000000000000000000000006000200000000000000000000000000000000000000000002c00c00000000000000000003' +
  'c0140001000000636c69707264720000008000'
  , 'hex');
const CORE = 0x89;

// TPKT + X.224 data + MCS SendDataRequest + basic security header (SEC_INFO_PKT) + TS_INFO_PACKET start.
const INFO = Buffer.from('0300001f' + '02f080' + '64000703eb70' + '10' + '40000000' + '00000000' + '33010000' + '0000000000', 'hex');
const ATTACH_USER = Buffer.from('0300000802f08028', 'hex');
const FAST_PATH_INPUT = Buffer.from('0406012a0000', 'hex'); // one scancode event
const CREDSSP = Buffer.concat([Buffer.from('3082010a', 'hex'), Buffer.alloc(0x10a, 7)]);

/** Every length that encloses the capability sets, read back from a Confirm Active PDU. */
function lengths(frame: Buffer): { tpkt: number; per: number; share: number; combined: number; codecs: { count: number; guids: string[] } } {
  const per = ((frame[13]! & 0x3f) << 8) | frame[14]!;
  const share = 15;
  const capsAt = share + 16 + frame.readUInt16LE(share + 12);
  let at = capsAt + 4;
  let codecs = { count: -1, guids: [] as string[] };
  for (let i = 0; i < frame.readUInt16LE(capsAt); i++) {
    if (frame.readUInt16LE(at) === 0x1d) {
      const count = frame[at + 4]!;
      const guids: string[] = [];
      for (let c = 0, p = at + 5; c < count; c++) {
        guids.push(frame.subarray(p, p + 16).toString('hex'));
        p += 19 + frame.readUInt16LE(p + 17);
      }
      codecs = { count, guids };
    }
    at += frame.readUInt16LE(at + 2);
  }
  assert.equal(at, frame.length, 'the capability sets end where the frame ends');
  return { tpkt: frame.readUInt16BE(2), per, share: frame.readUInt16LE(share), combined: frame.readUInt16LE(share + 14), codecs };
}

describe('withoutRemoteFx', () => {
  it('takes RemoteFX out of a real Confirm Active PDU and shrinks every enclosing length', () => {
    const before = lengths(CONFIRM_ACTIVE);
    assert.deepEqual(before.codecs.guids, [REMOTEFX_GUIDS[0]!.toString('hex')]);
    const out = withoutRemoteFx(CONFIRM_ACTIVE);
    assert.ok(out);
    const after = lengths(out);
    const removed = CONFIRM_ACTIVE.length - out.length;
    assert.equal(removed, 16 + 1 + 2 + 0x29, 'GUID, id, properties length and the 41 bytes of properties');
    assert.deepEqual(after, { tpkt: out.length, per: before.per - removed, share: before.share - removed, combined: before.combined - removed, codecs: { count: 0, guids: [] } });
    assert.ok(!out.includes(REMOTEFX_GUIDS[0]!));
    // The source descriptor and the capability sets before the codecs are unchanged.
    const codecsAt = CONFIRM_ACTIVE.indexOf(REMOTEFX_GUIDS[0]!) - 5;
    assert.ok(out.subarray(15 + 16, codecsAt).equals(CONFIRM_ACTIVE.subarray(15 + 16, codecsAt)));
  });

  it('leaves other PDUs, a Confirm Active without RemoteFX and a truncated one alone', () => {
    assert.equal(withoutRemoteFx(INFO), undefined);
    assert.equal(withoutRemoteFx(ATTACH_USER), undefined);
    assert.equal(withoutRemoteFx(withoutRemoteFx(CONFIRM_ACTIVE)!), undefined);
    for (let cut = 0; cut < CONFIRM_ACTIVE.length; cut += 7) {
      const short = Buffer.from(CONFIRM_ACTIVE.subarray(0, cut));
      if (short.length >= 4) short.writeUInt16BE(short.length, 2);
      assert.equal(withoutRemoteFx(short), undefined, `cut at ${cut}`);
    }
  });
});

describe('offerFullColour', () => {
  it('offers 24 or 32 bpp in a real Client Core Data, in place', () => {
    const frame = Buffer.from(CONNECT_INITIAL);
    assert.equal(frame.readUInt16LE(CORE), 0xc001);
    assert.deepEqual([frame.readUInt16LE(CORE + 140), frame.readUInt16LE(CORE + 142), frame.readUInt16LE(CORE + 144)], [24, 0x0002, 0x0829], 'as the wasm sends it: 16 bpp only');
    assert.ok(offerFullColour(frame, 24));
    assert.deepEqual([frame.readUInt16LE(CORE + 140), frame.readUInt16LE(CORE + 142), frame.readUInt16LE(CORE + 144)], [24, 0x0003, 0x0829]);
    assert.deepEqual([...frame.keys()].filter((i) => frame[i] !== CONNECT_INITIAL[i]), [CORE + 142]);
    const deep = Buffer.from(CONNECT_INITIAL);
    assert.ok(offerFullColour(deep, 32));
    assert.deepEqual([deep.readUInt16LE(CORE + 140), deep.readUInt16LE(CORE + 142), deep.readUInt16LE(CORE + 144)], [24, 0x000b, 0x082b], '32 bpp supported and wanted');
  });

  it('leaves other PDUs and a truncated Connect Initial alone', () => {
    for (const pdu of [INFO, ATTACH_USER, CONFIRM_ACTIVE]) assert.equal(offerFullColour(Buffer.from(pdu), 32), false);
    const short = Buffer.from(CONNECT_INITIAL.subarray(0, CORE + 100));
    assert.equal(offerFullColour(short, 32), false);
  });
});

describe('ClientStreamPatcher', () => {
  const all = { autologon: true, withoutRemoteFx: true, colourDepth: 24 } as const;
  const stream = Buffer.concat([CONNECT_INITIAL, ATTACH_USER, INFO, CONFIRM_ACTIVE, FAST_PATH_INPUT, ATTACH_USER, FAST_PATH_INPUT]);
  const patched = (patcher: ClientStreamPatcher, bytes: Buffer, cut: number): Buffer => Buffer.concat([patcher.push(bytes.subarray(0, cut)), patcher.push(bytes.subarray(cut))]);

  it('offers full colour, sets INFO_AUTOLOGON and drops RemoteFX, whatever the chunking', () => {
    const connectInitial = Buffer.from(CONNECT_INITIAL);
    offerFullColour(connectInitial, 24);
    const expected = Buffer.concat([connectInitial, ATTACH_USER, INFO, withoutRemoteFx(CONFIRM_ACTIVE)!, FAST_PATH_INPUT, ATTACH_USER, FAST_PATH_INPUT]);
    const flagsAt = CONNECT_INITIAL.length + ATTACH_USER.length + 7 + 6 + 1 + 4 + 4;
    expected.writeUInt32LE(0x133 | 0x8, flagsAt);
    for (let cut = 0; cut <= stream.length; cut++) {
      const out = patched(new ClientStreamPatcher(all), stream, cut);
      assert.ok(out.equals(expected), `cut at ${cut}`);
    }
  });

  it('patches only what it is asked to', () => {
    const autologonOnly = patched(new ClientStreamPatcher({ ...all, withoutRemoteFx: false, colourDepth: undefined }), stream, 9);
    assert.ok(autologonOnly.includes(CONFIRM_ACTIVE));
    assert.ok(autologonOnly.includes(CONNECT_INITIAL));
    const noAutologon = patched(new ClientStreamPatcher({ ...all, autologon: false }), stream, 9);
    const infoAt = CONNECT_INITIAL.length + ATTACH_USER.length;
    assert.ok(noAutologon.subarray(infoAt, infoAt + INFO.length).equals(INFO));
    assert.ok(!noAutologon.includes(REMOTEFX_GUIDS[0]!));
  });

  it('passes CredSSP messages before the first TPKT frame (NLA) and still patches after them', () => {
    const nla = Buffer.concat([CREDSSP, CREDSSP.subarray(0, 4 + 0x10a), ATTACH_USER, CONFIRM_ACTIVE]);
    for (const cut of [1, 3, 5, CREDSSP.length + 1, nla.length - 3]) {
      const out = patched(new ClientStreamPatcher({ ...all, autologon: false, colourDepth: undefined }), nla, cut);
      assert.ok(out.equals(Buffer.concat([CREDSSP, CREDSSP, ATTACH_USER, withoutRemoteFx(CONFIRM_ACTIVE)!])), `cut at ${cut}`);
    }
  });

  it('passes a stream that is not RDP through untouched', () => {
    const patcher = new ClientStreamPatcher(all);
    const bytes = Buffer.from([0x47, 0x45, 0x54, 0x20, 0x2f]);
    assert.ok(patcher.push(bytes).equals(bytes));
    assert.ok(patcher.passingThrough);
    assert.ok(patcher.push(CONFIRM_ACTIVE).equals(CONFIRM_ACTIVE));
  });
});
