import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageReader, type ReadEvent } from './message-reader.ts';
import { Http1ParseError } from './errors.ts';
import { headerValue } from './message-head.ts';

interface Seen { heads: string[]; bodies: string[]; ends: number }

function readAll(kind: 'request' | 'response', pieces: Buffer[], onHead?: (reader: MessageReader, event: Extract<ReadEvent, { type: 'head' }>) => void): Seen {
  const reader = new MessageReader({ kind, maxHeadBytes: 1024 });
  const seen: Seen = { heads: [], bodies: [], ends: 0 };
  let body = '';
  for (const piece of pieces) {
    reader.push(piece);
    for (let event = reader.read(); event; event = reader.read()) {
      if (event.type === 'head') {
        seen.heads.push(`${event.head.method || event.head.status} ${event.head.target} ${event.raw.length}`);
        onHead?.(reader, event);
      } else if (event.type === 'body') body += event.data.toString('latin1');
      else {
        seen.bodies.push(body);
        body = '';
        seen.ends++;
      }
    }
  }
  return seen;
}

const pipelined = Buffer.from([
  'GET /a HTTP/1.1\r\nHost: x\r\n\r\n',
  'POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello',
  'PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer-A: 1\r\n\r\n',
  '\r\nDELETE /d HTTP/1.1\r\nHost: x\r\ncontent-length: 0\r\n\r\n',
].join(''), 'latin1');

test('pipelined requests with no body, a length body, a chunked body with trailers: found at every split point', () => {
  const whole = readAll('request', [pipelined]);
  assert.deepEqual(whole.heads, ['GET /a 28', 'POST /b 48', 'PUT /c 56', 'DELETE /d 50']);
  assert.deepEqual(whole.bodies, ['', 'hello', '3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer-A: 1\r\n\r\n', '']);
  for (let cut = 1; cut < pipelined.length; cut++) {
    assert.deepEqual(readAll('request', [pipelined.subarray(0, cut), pipelined.subarray(cut)]), whole, `split at ${cut}`);
  }
  const bytes = [...pipelined].map((b) => Buffer.from([b]));
  assert.deepEqual(readAll('request', bytes), whole, 'one byte at a time');
});

test('responses: length, chunked, no body for 204/304/1xx and for an answer to HEAD, close-delimited last', () => {
  const text = Buffer.from([
    'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
    'HTTP/1.1 100 Continue\r\n\r\n',
    'HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n',
    'HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n',
    'HTTP/1.0 200 OK\r\n\r\nuntil the end',
  ].join(''), 'latin1');
  let count = 0;
  const seen = readAll('response', [text], (reader) => {
    if (++count === 4) reader.noBody(); // the answer to a HEAD request
  });
  assert.deepEqual(seen.heads.map((h) => h.split(' ')[0]), ['200', '100', '204', '200', '200', '200']);
  assert.deepEqual(seen.bodies, ['ok', '', '', '', '2\r\nhi\r\n0\r\n\r\n']);
  assert.equal(seen.ends, 5, 'the close-delimited body never ends by itself');
});

test('smuggling shapes and oversize heads are refused', () => {
  const bad = [
    'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n',
    'GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n',
    'GET / HTTP/1.1\r\nContent-Length: +5\r\n\r\n',
    'GET / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n',
    'GET / HTTP/1.1\r\nHost : x\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: x\nEvil: y\r\n\r\n',
    'GET  / HTTP/1.1\r\n\r\n',
    'GET / HTTP/2.0\r\n\r\n',
    'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n',
    'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n',
    `GET / HTTP/1.1\r\nX: ${'a'.repeat(2000)}\r\n\r\n`,
  ];
  for (const text of bad) assert.throws(() => readAll('request', [Buffer.from(text, 'latin1')]), Http1ParseError, JSON.stringify(text.slice(0, 60)));
});

test('heads expose keep-alive, upgrade and header values', () => {
  const reader = new MessageReader({ kind: 'request', maxHeadBytes: 1024 });
  reader.push(Buffer.from('GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\r\n'));
  const event = reader.read();
  assert.ok(event?.type === 'head');
  assert.equal(event.head.upgrade, true);
  assert.equal(event.head.keepAlive, true);
  assert.equal(headerValue(event.head, 'host'), 'a');
  const old = new MessageReader({ kind: 'request', maxHeadBytes: 1024 });
  old.push(Buffer.from('GET / HTTP/1.0\r\n\r\n'));
  const first = old.read();
  assert.ok(first?.type === 'head');
  assert.equal(first.head.keepAlive, false);
  assert.equal(old.idle, false, 'the end of the message is still to be read');
  assert.equal(old.read()?.type, 'end');
  assert.equal(old.idle, true);
});

test('fuzz: mutated messages either frame or throw Http1ParseError, and never read past what was pushed (decoding or not)', () => {
  let seed = 7;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const alphabet = Buffer.from('\r\n :;0123456789abcdefABCDEF\t\x00\x7fGET/HTTP1.Content-LengthTransfer-Encodingchunked', 'latin1');
  for (let round = 0; round < 3000; round++) {
    const bytes = Buffer.from(pipelined);
    for (let k = 1 + random(4); k > 0; k--) bytes[random(bytes.length)] = alphabet[random(alphabet.length)]!;
    const reader = new MessageReader({ kind: round % 2 === 0 ? 'request' : 'response', maxHeadBytes: 512, decode: round % 3 === 0 });
    let seen = 0;
    try {
      for (let at = 0; at < bytes.length;) {
        const length = 1 + random(40);
        reader.push(bytes.subarray(at, at + length));
        at += length;
        for (let event = reader.read(), guard = 0; event; event = reader.read(), guard++) {
          assert.ok(guard < 10_000, 'the reader must not loop');
          if (event.type === 'body') seen += event.data.length;
          if (event.type === 'head') seen += event.raw.length;
        }
      }
    } catch (error) {
      assert.ok(error instanceof Http1ParseError, String(error));
    }
    assert.ok(seen <= bytes.length, 'never more bytes out than in');
  }
});

/** Reads `pieces` with `decode`: each message as [status or method, payload], and the body events' count. */
function decodeAll(kind: 'request' | 'response', pieces: Buffer[]): { messages: string[]; events: number } {
  const reader = new MessageReader({ kind, maxHeadBytes: 1024, decode: true });
  const messages: string[] = [];
  let head = '';
  let body = '';
  let events = 0;
  for (const piece of pieces) {
    reader.push(piece);
    for (let event = reader.read(); event; event = reader.read()) {
      if (event.type === 'head') head = String(event.head.status || event.head.method);
      else if (event.type === 'body') {
        assert.ok(event.data.length > 0, 'no empty body events');
        body += event.data.toString('latin1');
        events++;
      } else {
        messages.push(`${head} ${body}`);
        body = '';
      }
    }
  }
  return { messages, events };
}

const chunkedAnswers = Buffer.from([
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n',
  '5;name=value;other="quoted; still"\r\nhello\r\n1\t ;ext\r\n \r\n6\r\nworld!\r\n0\r\nTrailer-A: 1\r\nTrailer-B: two\r\n\r\n',
  'HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nabc',
  'HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n000A\r\n0123456789\r\n0;last\r\n\r\n',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
].join(''), 'latin1');

test('decode: chunked bodies come out as their payload (extensions, trailers dropped), others as sent, at every split point', () => {
  const whole = decodeAll('response', [chunkedAnswers]);
  assert.deepEqual(whole.messages, ['200 hello world!', '201 abc', '202 0123456789', '200 ']);
  for (let cut = 1; cut < chunkedAnswers.length; cut++) {
    assert.deepEqual(decodeAll('response', [chunkedAnswers.subarray(0, cut), chunkedAnswers.subarray(cut)]).messages, whole.messages, `split at ${cut}`);
    for (let second = cut + 1; second < chunkedAnswers.length; second += 7) {
      const pieces = [chunkedAnswers.subarray(0, cut), chunkedAnswers.subarray(cut, second), chunkedAnswers.subarray(second)];
      assert.deepEqual(decodeAll('response', pieces).messages, whole.messages, `split at ${cut} and ${second}`);
    }
  }
  const bytes = [...chunkedAnswers].map((b) => Buffer.from([b]));
  assert.deepEqual(decodeAll('response', bytes).messages, whole.messages, 'one byte at a time');
});

test('decode: chunk data is handed over as slices of what was pushed, one event per run of data', () => {
  const one = decodeAll('response', [Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n')]);
  assert.deepEqual(one, { messages: ['200 abcdef'], events: 2 });
  // A chunk split across pushes comes out in as many pieces; nothing is buffered until the chunk is whole.
  const split = decodeAll('response', [Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabc'), Buffer.from('def\r\n0\r\n\r\n')]);
  assert.deepEqual(split, { messages: ['200 abcdef'], events: 2 });
  // Requests decode the same way.
  assert.deepEqual(decodeAll('request', [Buffer.from('POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n')]).messages, ['POST hi']);
});

test('decode: malformed chunked bodies are refused as they are without decode', () => {
  const head = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n';
  const bad = [
    'z\r\nabc\r\n0\r\n\r\n', // not hex
    '-1\r\n\r\n', // a sign
    '0x3\r\nabc\r\n0\r\n\r\n', // a prefix
    '3\r\nabcX\r\n0\r\n\r\n', // data longer than its size
    '3\r\nab\r\n0\r\n\r\n', // data shorter than its size: CRLF lands where data was
    '3\nabc\r\n0\r\n\r\n', // bare LF after the size
    '1234567890abc\r\n', // more than 12 hex digits
    `${'1'.repeat(5000)}`, // a size line without end, past the limit
    '0\r\nBad\0Trailer: x\r\n\r\n', // a NUL in a trailer
    `0\r\n${'T: x\r\n'.repeat(3000)}\r\n`, // trailers past the limit
  ];
  for (const text of bad) {
    assert.throws(() => decodeAll('response', [Buffer.from(head + text, 'latin1')]), Http1ParseError, JSON.stringify(text.slice(0, 40)));
  }
});
