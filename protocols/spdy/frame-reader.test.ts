import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { constants, createDeflate } from 'node:zlib';
import fc from 'fast-check';
import { spdy3Dictionary } from './dictionary.ts';
import { SpdyProtocolError } from './errors.ts';
import { SpdyFrameReader, controlTypes, type SpdyFrame } from './frame-reader.ts';
import { controlFrame, dataFrame, goAway, ping, synReply, synStream, windowUpdate } from './frame-writer.ts';
import { HeaderBlockReader, HeaderBlockWriter, decodeNameValues, encodeNameValues, type SpdyHeaders } from './header-block.ts';

test('the SPDY/3 dictionary is the one of the spec', () => {
  assert.equal(spdy3Dictionary.length, 1423);
  assert.equal(createHash('sha256').update(spdy3Dictionary).digest('hex'), '51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02');
});

test('header blocks compressed by a real zlib stream (dictionary, sync flush per block) read back in order', async () => {
  const deflate = createDeflate({ dictionary: spdy3Dictionary });
  const out: Buffer[] = [];
  deflate.on('data', (c: Buffer) => out.push(c));
  const block = async (headers: Record<string, string>): Promise<Buffer> => {
    deflate.write(encodeNameValues(headers));
    await new Promise<void>((resolve) => deflate.flush(constants.Z_SYNC_FLUSH, () => resolve()));
    // Let the flushed bytes reach the data listener.
    await new Promise((resolve) => setImmediate(resolve));
    return Buffer.concat(out.splice(0));
  };
  const reader = new HeaderBlockReader();
  const blocks: SpdyHeaders[] = [{ streamtype: 'error' }, { streamtype: 'stdout' }, { streamtype: 'stderr', 'x-many': 'a\0b' }, {}];
  const compressed = [];
  for (const headers of blocks) compressed.push(await block(headers));
  deflate.destroy();
  assert.deepEqual(compressed.map((b) => reader.read(b)), blocks);
});

test('the fixture-side writer (stored blocks) is readable by the reader, block after block', () => {
  const writer = new HeaderBlockWriter();
  const reader = new HeaderBlockReader();
  for (const headers of [{}, { streamtype: 'stdout' }, { big: 'x'.repeat(30_000) }] as SpdyHeaders[]) assert.deepEqual(reader.read(writer.write(headers)), headers);
});

test('the header blocks of a direction are bounded in count and size (each read inflates from the start)', () => {
  const writer = new HeaderBlockWriter();
  const reader = new HeaderBlockReader({ maxBlocks: 3 });
  for (let i = 0; i < 3; i++) reader.read(writer.write({ n: String(i) }));
  assert.throws(() => reader.read(writer.write({ n: '3' })), /more than 3 header blocks/);
  assert.throws(() => new HeaderBlockReader().read(new HeaderBlockWriter().write({ big: 'x'.repeat(70_000) })), /header blocks over 65536 compressed bytes/);
});

test('frames read back whatever the cuts', () => {
  const client = new HeaderBlockWriter();
  const stream = Buffer.concat([
    synStream(client, 1, { streamtype: 'error' }),
    synStream(client, 3, { streamtype: 'stdout' }),
    dataFrame(3, Buffer.from('hello')),
    windowUpdate(3, 1000),
    ping(7),
    dataFrame(3, Buffer.alloc(0), true),
    goAway(3),
  ]);
  fc.assert(fc.property(fc.array(fc.nat({ max: stream.length }), { maxLength: 10 }), (cuts) => {
    const reader = new SpdyFrameReader();
    const frames: SpdyFrame[] = [];
    let at = 0;
    for (const cut of [...cuts.sort((a, b) => a - b), stream.length]) {
      frames.push(...reader.push(stream.subarray(at, Math.max(at, cut))));
      at = Math.max(at, cut);
    }
    assert.deepEqual(frames.map((f) => f.kind), ['syn_stream', 'syn_stream', 'data', 'window_update', 'ping', 'data', 'goaway']);
    assert.deepEqual(frames[1], { kind: 'syn_stream', streamId: 3, fin: false, headers: { streamtype: 'stdout' } });
    assert.deepEqual(frames[2], { kind: 'data', streamId: 3, fin: false, data: Buffer.from('hello') });
    assert.deepEqual(frames[5], { kind: 'data', streamId: 3, fin: true, data: Buffer.alloc(0) });
  }));
});

test('malformed frames and header blocks stop the reader with a SpdyProtocolError naming the fault', () => {
  const writer = () => new HeaderBlockWriter();
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const cases: Array<[string, Buffer, RegExp]> = [
    ['SPDY/2', Buffer.from([0x80, 0x02, 0, 1, 0, 0, 0, 0]), /SPDY version 2/],
    ['unknown control type', controlFrame(5, 0, Buffer.alloc(4)), /type 5, which SPDY\/3\.1 does not define/],
    ['short SYN_STREAM', controlFrame(controlTypes.synStream, 0, Buffer.alloc(6)), /6 bytes \(10 at least\)/],
    ['long PING', controlFrame(controlTypes.ping, 0, Buffer.alloc(8)), /8 bytes \(4 expected\)/],
    ['SETTINGS count beyond the frame', controlFrame(controlTypes.settings, 0, u32(3)), /4 bytes \(28 expected\)/],
    ['data on stream 0', dataFrame(0, Buffer.from('x')), /data frame on stream 0/],
    ['data flags', Buffer.from([0, 0, 0, 1, 0x02, 0, 0, 0]), /data frame flags 0x2/],
    ['SYN_STREAM on stream 0', synStream(writer(), 0, {}), /on stream 0/],
    ['header block that is not zlib', controlFrame(controlTypes.synStream, 0, Buffer.concat([u32(1), u32(0), Buffer.from([0, 0]), Buffer.from('not zlib at all')])), /does not inflate/],
    ['over the frame limit', Buffer.from([0, 0, 0, 1, 0, 0x20, 0, 0]), /over the 1048576-byte limit/],
  ];
  for (const [name, bytes, message] of cases) {
    const reader = new SpdyFrameReader(1024 * 1024);
    assert.throws(() => reader.push(bytes), (error: unknown) => error instanceof SpdyProtocolError && message.test(error.message), name);
    assert.ok(reader.failed, name);
    assert.throws(() => reader.push(ping(1)), SpdyProtocolError, `${name}: stopped for good`);
  }
});

test('name/value blocks are strict about lengths, names and leftovers', () => {
  const good = encodeNameValues({ streamtype: 'stdout' });
  assert.deepEqual(decodeNameValues(good), { streamtype: 'stdout' });
  assert.throws(() => decodeNameValues(good.subarray(0, good.length - 1)), /runs past the block/);
  assert.throws(() => decodeNameValues(Buffer.concat([good, Buffer.from([0])])), /1 bytes after the last header/);
  assert.throws(() => decodeNameValues(encodeNameValues({ Streamtype: 'x' }).fill(0x53, 8, 9)), /not lower case/);
  assert.throws(() => decodeNameValues(Buffer.from([0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0])), /empty or not lower case/);
  const twice = Buffer.concat([Buffer.from([0, 0, 0, 2]), encodeNameValues({ a: '1' }).subarray(4), encodeNameValues({ a: '2' }).subarray(4)]);
  assert.throws(() => decodeNameValues(twice), /twice in one block/);
  assert.throws(() => decodeNameValues(Buffer.from([0, 0])), /shorter than its count/);
});

test('a SYN_REPLY from one side and random bytes never throw anything but a SpdyProtocolError', () => {
  assert.deepEqual(new SpdyFrameReader().push(synReply(new HeaderBlockWriter(), 1, {})), [{ kind: 'syn_reply', streamId: 1, fin: false, headers: {} }]);
  fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), fc.array(fc.nat({ max: 400 }), { maxLength: 5 }), (bytes, cuts) => {
    const reader = new SpdyFrameReader(4096);
    let at = 0;
    try {
      for (const cut of [...cuts.sort((a, b) => a - b), bytes.length]) {
        reader.push(Buffer.from(bytes.subarray(at, Math.max(at, cut))));
        at = Math.max(at, cut);
      }
    } catch (error) {
      assert.ok(error instanceof SpdyProtocolError, String(error));
    }
  }), { numRuns: 2000 });
});
