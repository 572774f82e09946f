import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import fc from 'fast-check';
import { encodeCancelRequest, encodeStartupMessage, maxStartupPacketBytes, parseStartupPacket, PostgresProtocolError, readStartupPacket } from './startup.ts';

test('parses StartupMessage, CancelRequest and SSLRequest', () => {
  assert.deepEqual(parseStartupPacket(encodeStartupMessage({ user: 'alice', database: 'app', application_name: 'psql' })), {
    kind: 'startup', parameters: Object.assign(Object.create(null), { user: 'alice', database: 'app', application_name: 'psql' }),
  });
  assert.deepEqual(parseStartupPacket(encodeCancelRequest(1234, -5)), { kind: 'cancel', processId: 1234, secretKey: -5 });
  assert.deepEqual(parseStartupPacket(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])), { kind: 'ssl' });
});

test('refuses malformed start-up packets with a reason', () => {
  const cases: Array<[Buffer, RegExp]> = [
    [Buffer.from([0, 0, 0, 4]), /too short/],
    [Buffer.from([0, 0, 0, 9, 0, 3, 0, 0, 0]), /names no user/],
    [Buffer.from([0, 0, 0, 12, 0, 3, 0, 0, 0x61, 0, 0x62, 0]), /not terminated by a zero byte/],
    [Buffer.from([0, 0, 0, 11, 0, 3, 0, 0, 0x61, 0, 0x62]), /value is not terminated/],
    [Buffer.from([0, 0, 0, 8, 0, 2, 0, 0]), /unsupported frontend protocol 2\.0/],
    [Buffer.from([0, 0, 0, 8, 0x12, 0x34, 0x56, 0x78]), /not a PostgreSQL start-up packet/],
    [Buffer.from([0, 0, 0, 12, 0x04, 0xd2, 0x16, 0x2e, 0, 0, 0, 1]), /CancelRequest must be 16 bytes/],
    [Buffer.concat([encodeStartupMessage({ user: 'a' }).subarray(0, -1), Buffer.from('x\0y\0\0')]).fill(0, 0, 0), /length .* does not match/],
    [Buffer.from([0, 0, 0, 22, 0, 3, 0, 0, 0x75, 0x73, 0x65, 0x72, 0, 0xff, 0xfe, 0, 0x75, 0x73, 0x65, 0x72, 0, 0]), /UTF-8/],
  ];
  for (const [packet, message] of cases) assert.throws(() => parseStartupPacket(packet), (error: Error) => error instanceof PostgresProtocolError && message.test(error.message), `${packet.toString('hex')}`);
  const twice = encodeStartupMessage({ user: 'a' });
  const dup = Buffer.concat([twice.subarray(0, -1), Buffer.from('user\0b\0\0')]);
  dup.writeUInt32BE(dup.length, 0);
  assert.throws(() => parseStartupPacket(dup), /names parameter "user" twice/);
});

test('fuzz (10 s): any bytes parse or fail with PostgresProtocolError, never anything else', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), fc.constantFrom(196_608, 80_877_102, 80_877_103, 131_072, 0), (body, fixLength, code) => {
    const packet = Buffer.alloc(8 + body.length);
    packet.writeUInt32BE(fixLength ? packet.length : (body[0] ?? 0) * 97, 0);
    packet.writeUInt32BE(code, 4);
    Buffer.from(body).copy(packet, 8);
    try {
      const parsed = parseStartupPacket(packet);
      if (parsed.kind === 'startup') assert.ok(parsed.parameters.user);
    } catch (error) {
      assert.ok(error instanceof PostgresProtocolError, String(error));
    }
  }), { numRuns: 5_000_000, interruptAfterTimeLimit: 10_000, markInterruptAsFailure: false });
  // Structured: well-formed parameter lists round-trip.
  const key = fc.string({ minLength: 1, maxLength: 20 }).filter((s) => !s.includes('\0'));
  fc.assert(fc.property(fc.dictionary(key, fc.string({ maxLength: 40 }).filter((s) => !s.includes('\0')), { maxKeys: 8 }), (extra) => {
    const parameters = { ...extra, user: 'u' };
    assert.deepEqual({ ...(parseStartupPacket(encodeStartupMessage(parameters)) as { parameters: object }).parameters }, parameters);
  }), { numRuns: 2_000 });
});

test('readStartupPacket: chunked input, the rest put back, oversized lengths refused before reading them', async () => {
  const stream = new PassThrough();
  const packet = encodeStartupMessage({ user: 'alice' });
  const reading = readStartupPacket(stream, 1_000);
  for (const byte of packet) stream.write(Buffer.from([byte]));
  stream.write(Buffer.from('Q'));
  const { parsed } = await reading;
  assert.equal(parsed.kind, 'startup');
  assert.equal((stream.read() as Buffer).toString(), 'Q');

  const big = new PassThrough();
  const header = Buffer.alloc(8);
  header.writeUInt32BE(maxStartupPacketBytes + 1, 0);
  const refused = readStartupPacket(big, 1_000);
  big.write(header);
  await assert.rejects(refused, /invalid start-up packet length 10001/);
  await assert.rejects(readStartupPacket(new PassThrough(), 50), /no start-up packet within 50 ms/);
});
