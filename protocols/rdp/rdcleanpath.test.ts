import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeRDCleanPathRequest, encodeRDCleanPathError, encodeRDCleanPathResponse } from './rdcleanpath.ts';
import { AutologonPatcher } from './autologon-patch.ts';

// A request as ironrdp-wasm 1.1.0 sends it (DER; version 3390, destination, proxy auth, X.224 CR).
function request(fields: { destination?: string; version?: number }): Buffer {
  const tlv = (tag: number, value: Buffer) => Buffer.concat([Buffer.from([tag, value.length]), value]);
  const version = fields.version ?? 3390;
  return tlv(0x30, Buffer.concat([
    tlv(0xa0, tlv(0x02, Buffer.from([version >> 8, version & 0xff]))),
    ...(fields.destination ? [tlv(0xa2, tlv(0x0c, Buffer.from(fields.destination)))] : []),
    tlv(0xa3, tlv(0x0c, Buffer.from('token'))),
    tlv(0xa6, tlv(0x04, Buffer.from('0300000b06e00000000000', 'hex'))),
  ]));
}

describe('RDCleanPath', () => {
  it('decodes a request', () => {
    const decoded = decodeRDCleanPathRequest(request({ destination: 'host:3389' }));
    assert.equal(decoded.destination, 'host:3389');
    assert.equal(decoded.proxyAuth, 'token');
    assert.equal(decoded.x224ConnectionRequest.toString('hex'), '0300000b06e00000000000');
  });

  it('refuses a wrong version, a missing destination and truncated bytes', () => {
    assert.throws(() => decodeRDCleanPathRequest(request({ destination: 'h:1', version: 3389 })), /version 3389; expected 3390/);
    assert.throws(() => decodeRDCleanPathRequest(request({})), /names no destination/);
    const whole = request({ destination: 'h:1' });
    for (let cut = 0; cut < whole.length; cut++) assert.throws(() => decodeRDCleanPathRequest(whole.subarray(0, cut)), /RDCleanPath/);
  });

  it('encodes responses and errors as DER sequences with explicit tags', () => {
    const response = encodeRDCleanPathResponse({ x224ConnectionConfirm: Buffer.from('0300', 'hex'), serverCertChain: [Buffer.alloc(300, 1)], serverAddr: '127.0.0.1:3389' });
    assert.equal(response[0], 0x30);
    assert.ok(response.includes(Buffer.from('127.0.0.1:3389')));
    const error = encodeRDCleanPathError({ errorCode: 1, wsaLastError: 10061 });
    // version [0] 3390, error [1] { code [0] 1, wsaLastError [2] 10061 }
    assert.equal(error.toString('hex'), '3015' + 'a00402020d3e' + 'a10d300b' + 'a003020101' + 'a2040202274d');
  });
});

describe('AutologonPatcher', () => {
  // TPKT + X.224 data + MCS SendDataRequest + basic security header (SEC_INFO_PKT) + TS_INFO_PACKET start.
  const info = Buffer.from('0300001f' + '02f080' + '64000703eb70' + '10' + '40000000' + '00000000' + '33010000' + '0000000000', 'hex');

  it('sets INFO_AUTOLOGON in the Client Info PDU, whatever the chunking', () => {
    const fixed = Buffer.from('0300000802f08028', 'hex'); // MCS Attach User Request
    const stream = Buffer.concat([fixed, info, Buffer.from([0x44, 0x01, 0x02])]);
    for (let cut = 0; cut <= stream.length; cut++) {
      const patcher = new AutologonPatcher();
      const out = Buffer.concat([patcher.push(stream.subarray(0, cut)), patcher.push(stream.subarray(cut))]);
      assert.equal(out.length, stream.length);
      const flags = out.readUInt32LE(fixed.length + 7 + 6 + 1 + 4 + 4);
      assert.equal(flags, 0x133 | 0x8, `cut at ${cut}`);
      assert.ok(patcher.done);
    }
  });

  it('passes a stream that is not TPKT through untouched', () => {
    const patcher = new AutologonPatcher();
    const bytes = Buffer.from([0x44, 0x05, 1, 2, 3]);
    assert.ok(patcher.push(bytes).equals(bytes));
    assert.ok(patcher.done);
  });
});
