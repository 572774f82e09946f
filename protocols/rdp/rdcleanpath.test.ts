import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeRDCleanPathRequest, encodeRDCleanPathError, encodeRDCleanPathResponse } from './rdcleanpath.ts';

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
