import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CliprdrStartOrder, MAX_WATCHED_BYTES } from './cliprdr-start-order.ts';

/** A slow-path frame on channel 1004 carrying `payload` (PER length and channel PDU onwards), as xrdp 0.9 sent them. */
function onChannel(payload: string): Buffer {
  const body = Buffer.concat([Buffer.from('02f080' + '68' + '03ea' + '03ec' + '70', 'hex'), Buffer.from(payload, 'hex')]);
  const head = Buffer.alloc(4);
  head.writeUInt16BE(0x0300, 0);
  head.writeUInt16BE(4 + body.length, 2);
  return Buffer.concat([head, body]);
}

const CAPS = onChannel('241c0000000300000007000000100000000100000001000c00020000000e00000000000000');
const MONITOR_READY = onChannel('140c00000003000000010000000000000000000000');
const FORMAT_LIST = onChannel('2c240000000300000002000000180000000d000000000010000000000001000000000007000000000000000000');
const FORMAT_LIST_RESPONSE = onChannel('140c00000003000000030001000000000000000000');
const GRAPHICS = Buffer.concat([Buffer.from([0x00, 0x80 | 0x01, 0x04]), Buffer.alloc(0x104 - 3, 9)]); // a fast-path update
const SHARE = Buffer.from('0300001402f08068000303eb7006' + '0600170003eb', 'hex'); // a short PDU on the I/O channel

function run(stream: Buffer, cut: number): Buffer {
  const order = new CliprdrStartOrder();
  return Buffer.concat([...order.push(stream.subarray(0, cut)), ...order.push(stream.subarray(cut))]);
}

describe('CliprdrStartOrder', () => {
  it('moves a Format List that comes before the Format List Response after it, whatever the chunking', () => {
    const stream = Buffer.concat([GRAPHICS, CAPS, MONITOR_READY, SHARE, FORMAT_LIST, GRAPHICS, FORMAT_LIST_RESPONSE, GRAPHICS, FORMAT_LIST]);
    const expected = Buffer.concat([GRAPHICS, CAPS, MONITOR_READY, SHARE, GRAPHICS, FORMAT_LIST_RESPONSE, FORMAT_LIST, GRAPHICS, FORMAT_LIST]);
    for (let cut = 0; cut <= stream.length; cut++) assert.ok(run(stream, cut).equals(expected), `cut at ${cut}`);
  });

  it('changes nothing when the response comes first, and then stops looking', () => {
    const stream = Buffer.concat([CAPS, MONITOR_READY, FORMAT_LIST_RESPONSE, FORMAT_LIST, GRAPHICS]);
    for (let cut = 0; cut <= stream.length; cut += 5) assert.ok(run(stream, cut).equals(stream), `cut at ${cut}`);
    const order = new CliprdrStartOrder();
    order.push(Buffer.concat([MONITOR_READY, FORMAT_LIST_RESPONSE]));
    assert.ok(order.done);
    assert.deepEqual(order.push(Buffer.from([0xff, 1, 2])), [Buffer.from([0xff, 1, 2])], 'passes anything once done');
  });

  it('passes CredSSP and the early authorization result of an NLA host before the first TPKT frame', () => {
    const credssp = Buffer.concat([Buffer.from('3082010a', 'hex'), Buffer.alloc(0x10a, 0x30)]);
    const early = Buffer.from('00000000', 'hex');
    const stream = Buffer.concat([credssp, credssp.subarray(0, 0x10e), early, MONITOR_READY, FORMAT_LIST, FORMAT_LIST_RESPONSE]);
    const expected = Buffer.concat([credssp, credssp, early, MONITOR_READY, FORMAT_LIST_RESPONSE, FORMAT_LIST]);
    for (let cut = 0; cut <= stream.length; cut += 3) assert.ok(run(stream, cut).equals(expected), `cut at ${cut}`);
  });

  it('gives up on a host without the channel, and on bytes it cannot frame, losing nothing', () => {
    const order = new CliprdrStartOrder();
    const big = Buffer.concat(Array.from({ length: Math.ceil(MAX_WATCHED_BYTES / GRAPHICS.length) + 1 }, () => GRAPHICS));
    assert.ok(Buffer.concat(order.push(big)).equals(big));
    assert.ok(order.done);
    const odd = Buffer.concat([MONITOR_READY, FORMAT_LIST, Buffer.from([0x07, 0x07, 0x07])]);
    // 07 after a TPKT frame is neither TPKT nor fast-path: the held list goes out, then the rest.
    assert.ok(run(odd, 3).equals(Buffer.concat([MONITOR_READY, FORMAT_LIST, Buffer.from([0x07, 0x07, 0x07])])));
  });
});
