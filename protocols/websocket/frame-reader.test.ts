import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Socket, createServer, type AddressInfo } from 'node:net';
import fc from 'fast-check';
import WebSocket, { WebSocketServer } from 'ws';
import { WebSocketFrameReader, opcodes, type WebSocketMessage } from './frame-reader.ts';
import { WebSocketProtocolError } from './errors.ts';

/** One frame as the RFC lays it out, for hand-made (and broken) input. */
function frame(opcode: number, payload: Buffer, o: { fin?: boolean; mask?: Buffer; rsv?: number; lengthForm?: 7 | 16 | 64 } = {}): Buffer {
  const form = o.lengthForm ?? (payload.length < 126 ? 7 : payload.length <= 0xffff ? 16 : 64);
  const head = [((o.fin ?? true) ? 0x80 : 0) | ((o.rsv ?? 0) << 4) | opcode];
  const maskBit = o.mask ? 0x80 : 0;
  let length: Buffer;
  if (form === 7) length = Buffer.from([maskBit | payload.length]);
  else if (form === 16) {
    length = Buffer.alloc(3);
    length[0] = maskBit | 126;
    length.writeUInt16BE(payload.length, 1);
  } else {
    length = Buffer.alloc(9);
    length[0] = maskBit | 127;
    length.writeBigUInt64BE(BigInt(payload.length), 1);
  }
  const body = Buffer.from(payload);
  if (o.mask) for (let i = 0; i < body.length; i++) body[i]! ^= o.mask[i & 3]!;
  return Buffer.concat([Buffer.from(head), length, ...(o.mask ? [o.mask] : []), body]);
}

const key = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);

/** Feeds `bytes` in the given cuts and collects the messages. */
function readAll(reader: WebSocketFrameReader, bytes: Buffer, cuts: number[] = []): WebSocketMessage[] {
  const out: WebSocketMessage[] = [];
  let at = 0;
  for (const cut of [...cuts.filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b), bytes.length]) {
    out.push(...reader.push(bytes.subarray(at, cut)));
    at = cut;
  }
  return out;
}

test('frames from the ws library in both directions (masked client frames, server frames, fragments) read back as messages', async () => {
  // Real peers: a ws client and server on a TCP hop whose bytes this test taps.
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await once(server, 'listening');
  const upstream = (server.address() as AddressInfo).port;
  const fromClient = new WebSocketFrameReader({ masked: true });
  const fromServer = new WebSocketFrameReader({ masked: false });
  const seenClient: WebSocketMessage[] = [];
  const seenServer: WebSocketMessage[] = [];
  // The tap skips the HTTP upgrade heads, then reads frames.
  const tap = (reader: WebSocketFrameReader, seen: WebSocketMessage[]) => {
    let head = Buffer.alloc(0);
    let inFrames = false;
    return (chunk: Buffer) => {
      if (!inFrames) {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        inFrames = true;
        chunk = head.subarray(end + 4);
      }
      seen.push(...reader.push(chunk));
    };
  };
  const hop = createServer((client: Socket) => {
    const up = new Socket().connect(upstream, '127.0.0.1');
    client.on('data', tap(fromClient, seenClient));
    up.on('data', tap(fromServer, seenServer));
    client.pipe(up).pipe(client);
  });
  hop.listen(0, '127.0.0.1');
  await once(hop, 'listening');
  server.on('connection', (socket) => {
    socket.on('message', (data: Buffer) => {
      socket.send(Buffer.concat([Buffer.from([1]), data.subarray(1)]));
      // A fragmented message: three frames, a ping in between.
      socket.send(Buffer.from([2, 0x61]), { fin: false });
      socket.ping(Buffer.from('p'));
      socket.send(Buffer.from('bc'), { fin: false });
      socket.send(Buffer.from('d'), { fin: true });
    });
  });
  const client = new WebSocket(`ws://127.0.0.1:${(hop.address() as AddressInfo).port}/`, { perMessageDeflate: false });
  await once(client, 'open');
  const big = Buffer.alloc(70_000, 0x5a);
  big[0] = 0;
  client.send(big);
  let got = 0;
  await new Promise<void>((resolve) => client.on('message', () => ++got === 2 && resolve()));
  client.close(1000, 'bye');
  await once(client, 'close');
  hop.close();
  server.close();
  assert.equal(seenClient[0]!.opcode, opcodes.binary);
  assert.ok(seenClient[0]!.payload.equals(big), 'a masked 64-bit-length client frame unmasks to what was sent');
  assert.deepEqual(seenClient.at(-1)!.opcode, opcodes.close);
  assert.equal(seenClient.at(-1)!.payload.readUInt16BE(0), 1000);
  assert.equal(seenServer[0]!.payload.length, 70_000);
  assert.equal(seenServer[0]!.payload[0], 1);
  assert.deepEqual(seenServer.slice(1, 3).map((m) => [m.opcode, m.payload.toString('latin1')]), [[opcodes.ping, 'p'], [opcodes.binary, '\x02abcd']]);
});

test('any cut of a valid stream gives the same messages', () => {
  const stream = Buffer.concat([
    frame(opcodes.binary, Buffer.from('\x01hello'), { mask: key, fin: false }),
    frame(opcodes.ping, Buffer.from('x'), { mask: key }),
    frame(opcodes.continuation, Buffer.alloc(300, 7), { mask: key }),
    frame(opcodes.text, Buffer.alloc(0), { mask: key }),
  ]);
  fc.assert(fc.property(fc.array(fc.nat({ max: stream.length }), { maxLength: 12 }), (cuts) => {
    const got = readAll(new WebSocketFrameReader({ masked: true }), stream, cuts);
    assert.deepEqual(got.map((m) => [m.opcode, m.payload.length]), [[opcodes.ping, 1], [opcodes.binary, 306], [opcodes.text, 0]]);
    assert.equal(got[1]!.payload.subarray(0, 6).toString(), '\x01hello');
  }));
});

test('malformed frames stop the reader with a WebSocketProtocolError naming the fault', () => {
  const cases: Array<[string, Buffer, boolean, RegExp]> = [
    ['reserved bits', frame(opcodes.binary, Buffer.from('a'), { rsv: 4, mask: key }), true, /reserved bits/],
    ['unknown opcode', frame(0x3, Buffer.from('a'), { mask: key }), true, /unknown opcode 0x3/],
    ['unmasked client frame', frame(opcodes.binary, Buffer.from('a')), true, /without a mask/],
    ['masked server frame', frame(opcodes.binary, Buffer.from('a'), { mask: key }), false, /with a mask/],
    ['fragmented control', frame(opcodes.ping, Buffer.from('a'), { fin: false }), false, /fragmented control/],
    ['long control', frame(opcodes.close, Buffer.alloc(126), {}), false, /control frame of 126 bytes/],
    ['lone continuation', frame(opcodes.continuation, Buffer.from('a')), false, /no message open/],
    ['data inside a message', Buffer.concat([frame(opcodes.binary, Buffer.from('a'), { fin: false }), frame(opcodes.binary, Buffer.from('b'))]), false, /unfinished message/],
    ['long form for a short length', frame(opcodes.binary, Buffer.from('a'), { lengthForm: 16 }), false, /shorter form/],
    ['64-bit form for a 16-bit length', frame(opcodes.binary, Buffer.alloc(200), { lengthForm: 64 }), false, /shorter form/],
    ['top bit of a 64-bit length', Buffer.from([0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1]), false, /top bit/],
    ['over the limit', Buffer.from([0x82, 127, 0, 0, 0, 1, 0, 0, 0, 0]), false, /over the/],
    ['HTTP text where frames belong', Buffer.from('GET / HTTP/1.1\r\n\r\n'), false, /reserved bits|unknown opcode/],
  ];
  for (const [name, bytes, masked, message] of cases) {
    const reader = new WebSocketFrameReader({ masked });
    assert.throws(() => reader.push(bytes), (error: unknown) => error instanceof WebSocketProtocolError && message.test(error.message), name);
    assert.ok(reader.failed, name);
    // Stopped for good: later bytes, even valid ones, are refused the same way.
    assert.throws(() => reader.push(frame(opcodes.binary, Buffer.from('ok'), masked ? { mask: key } : {})), WebSocketProtocolError, name);
  }
});

test('a fragmented message over the limit is refused before it is buffered', () => {
  const reader = new WebSocketFrameReader({ masked: false, maxMessageBytes: 1000 });
  assert.deepEqual(reader.push(frame(opcodes.binary, Buffer.alloc(600), { fin: false })), []);
  assert.throws(() => reader.push(frame(opcodes.continuation, Buffer.alloc(600).subarray(0, 401), { fin: false }).subarray(0, 4)), /over the 1000-byte limit/);
});

test('random bytes never throw anything but a WebSocketProtocolError', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), fc.array(fc.nat({ max: 300 }), { maxLength: 5 }), (bytes, masked, cuts) => {
    const reader = new WebSocketFrameReader({ masked, maxMessageBytes: 4096 });
    try {
      readAll(reader, Buffer.from(bytes), cuts);
    } catch (error) {
      assert.ok(error instanceof WebSocketProtocolError, String(error));
    }
  }), { numRuns: 2000 });
});
