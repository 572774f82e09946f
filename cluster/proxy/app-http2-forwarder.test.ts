/**
 * AppHttp2Forwarder with a real HTTP/2 server and client, a TunnelStreamPool whose dials
 * give stream pairs, and a fake agent behind each stream that answers by path.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2, { type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { duplexPair, type Duplex } from 'node:stream';
import { MessageReader, headerValue, serializeRequestHead, type HeaderField, type MessageHead } from '../../protocols/http1/index.ts';
import { TunnelRejectedError } from '../../protocols/tunnel/index.ts';
import { AppHttp2Forwarder, type Http2ForwardRequest } from './app-http2-forwarder.ts';
import { ServiceDialError } from './errors.ts';
import { TunnelStreamPool } from './tunnel-stream-pool.ts';

interface Seen { stream: number; head: MessageHead; body: Buffer }

/** The agent's end of stream `n`: reads requests in order and answers each by its path. */
function fakeAgent(stream: Duplex, n: number, seen: Seen[], hooks: Hooks): void {
  const reader = new MessageReader({ kind: 'request', maxHeadBytes: 8192, decode: true });
  let head: MessageHead | undefined;
  let body: Buffer[] = [];
  stream.on('error', () => {});
  stream.on('end', () => stream.end());
  stream.on('close', () => hooks.closed.push(n));
  stream.on('data', (chunk: Buffer) => {
    reader.push(chunk);
    for (let event = reader.read(); event; event = reader.read()) {
      if (event.type === 'head') {
        head = event.head;
        if (head.target === '/hold-body') stream.pause(); // a slow app: reads nothing until told
        // An app that refuses an upload before reading it.
        if (head.target === '/early') stream.write('HTTP/1.1 413 Content Too Large\r\ncontent-length: 8\r\n\r\ntoo big\n');
      } else if (event.type === 'body') body.push(event.data);
      else {
        const entry = { stream: n, head: head!, body: Buffer.concat(body) };
        seen.push(entry);
        body = [];
        answer(stream, entry, hooks);
      }
    }
  });
}

interface Hooks {
  closed: number[];
  /** Called with the agent's stream for /big: the test decides when it is written. */
  big?: (stream: Duplex) => void;
}

function answer(stream: Duplex, { stream: n, head, body }: Seen, hooks: Hooks): void {
  const text = (status: string, fields: string[], content: string) => stream.write(`HTTP/1.1 ${status}\r\n${[...fields, `content-length: ${Buffer.byteLength(content)}`].map((f) => `${f}\r\n`).join('')}\r\n${content}`);
  switch (head.target) {
    case '/chunked':
      stream.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\nX-Hop: dropped\r\nProxy-Thing: dropped\r\n\r\n5;ext=1\r\nhello\r\n1\r\n \r\n');
      setTimeout(() => stream.write('5\r\nworld\r\n0\r\nTrailer-A: 1\r\n\r\n'), 20);
      return;
    case '/cookies':
      return void text('200 OK', ['Set-Cookie: a=1', 'Content-Type: text/plain', 'Set-Cookie: b=2', 'Content-Type: text/html', 'Vary: accept', 'Vary: cookie'], 'cookies');
    case '/interim':
      return void stream.write(`HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfinal`);
    case '/close-delimited':
      stream.write('HTTP/1.1 200 OK\r\n\r\nuntil the end');
      return void setTimeout(() => stream.end(), 20);
    case '/connection-close':
      return void text('200 OK', ['Connection: close'], 'bye');
    case '/hang-up':
      return void stream.end();
    case '/mid-answer':
      stream.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial');
      return void setTimeout(() => stream.destroy(), 20);
    case '/mid-chunked':
      stream.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n7\r\npartial\r\n');
      return void setTimeout(() => stream.destroy(), 20);
    case '/no-content':
      return void stream.write('HTTP/1.1 204 No Content\r\n\r\n');
    case '/slow':
      return void setTimeout(() => text('200 OK', [], `stream ${n} slow`), 50);
    case '/big':
      return hooks.big?.(stream);
    default: {
      // The answer to HEAD has the content-length a GET would get, and no body.
      if (head.method === 'HEAD') return void stream.write('HTTP/1.1 200 OK\r\ncontent-length: 42\r\n\r\n');
      const fields = head.headers.filter(([name]) => name !== 'host').map(([name, value]) => `${name}=${value}`).join(',');
      text('200 OK', ['Content-Type: text/plain'], `stream ${n} ${head.method} ${head.target} [${fields}] ${body.length}:${body.toString('latin1').slice(0, 40)}`);
    }
  }
}

async function setup(options: { maxAgeMs?: number; idleMs?: number; dialError?: Error } = {}) {
  const seen: Seen[] = [];
  const hooks: Hooks = { closed: [] };
  let dials = 0;
  const agentSides: Duplex[] = [];
  const pool = new TunnelStreamPool({
    dial: async () => {
      if (options.dialError) throw options.dialError;
      const [proxySide, agentSide] = duplexPair();
      // A tunnel stream reset closes both ends (duplexPair alone only ends the other side).
      proxySide.once('close', () => agentSide.destroy());
      agentSide.once('close', () => proxySide.destroy());
      dials++;
      agentSides.push(agentSide);
      fakeAgent(agentSide, dials, seen, hooks);
      return proxySide;
    },
    maxAgeMs: options.maxAgeMs,
    idleMs: options.idleMs,
  });
  const refused: string[] = [];
  const forwarder = new AppHttp2Forwarder({
    pool,
    refuse: (stream, status, why, reason) => {
      refused.push(`${status} ${reason}`);
      stream.respond({ ':status': status, 'content-type': 'text/plain; charset=utf-8' });
      stream.end(`${why}\n`);
    },
  });
  const server = http2.createServer();
  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number) => forwarder.forward(stream, requestOf(headers, flags)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  client.on('error', () => {});
  return {
    seen, hooks, pool, refused, client, agentSides,
    get dials() { return dials; },
    close: () => { client.destroy(); server.close(); pool.close(); },
  };
}

/** What app-web.ts would decide for a request (without the checks): the head and its framing. */
function requestOf(headers: IncomingHttpHeaders, flags: number): Http2ForwardRequest {
  const method = headers[':method']!;
  const out: HeaderField[] = [['host', String(headers[':authority'])]];
  for (const [name, value] of Object.entries(headers)) if (!name.startsWith(':') && typeof value === 'string' && name !== 'expect') out.push([name, value]);
  const length = headers['content-length'];
  const endStream = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
  let body: Http2ForwardRequest['body'] = 'chunked';
  if (endStream || length === '0' || (length === undefined && (method === 'GET' || method === 'HEAD'))) body = 'none';
  else if (length !== undefined) body = 'length';
  else out.push(['transfer-encoding', 'chunked']);
  return { key: String(headers['x-who'] ?? 'alice'), dial: { service: 'app:web', identity: 'x' }, head: Buffer.from(serializeRequestHead(method, headers[':path']!, out), 'latin1'), body, length: Number(length ?? 0), headRequest: method === 'HEAD', continue: headers.expect === '100-continue' };
}

interface Answer { status: number; headers: IncomingHttpHeaders; body: string; error?: string; rstCode?: number }

function request(client: http2.ClientHttp2Session, headers: Record<string, string | string[]>, body?: Buffer | string | Buffer[]): Promise<Answer> {
  return new Promise((resolve) => {
    const stream = client.request(headers, { endStream: body === undefined });
    let got: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    let error: string | undefined;
    stream.on('response', (h) => (got = h));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', (e: Error) => (error = e.message));
    stream.on('close', () => resolve({ status: Number(got[':status']), headers: got, body: Buffer.concat(chunks).toString('latin1'), error, rstCode: stream.rstCode }));
    if (Array.isArray(body)) {
      // Written in pieces, no content-length: the forwarder chunk-encodes.
      let i = 0;
      const next = (): void => {
        if (i === body.length) return void stream.end();
        stream.write(body[i++], () => setTimeout(next, 5));
      };
      next();
    } else if (body !== undefined) stream.end(body);
  });
}

const waitFor = async (what: () => boolean, label: string): Promise<void> => {
  for (let i = 0; i < 300 && !what(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(what(), label);
};

test('requests of one caller take turns on one tunnel stream; answers are mapped to HTTP/2 (chunked decoded, hop-by-hop dropped, repeats as arrays)', async () => {
  const t = await setup();
  try {
    const first = await request(t.client, { ':path': '/one', 'x-custom': 'yes' });
    assert.equal(first.status, 200);
    assert.match(first.body, /^stream 1 GET \/one \[x-custom=yes,x-who=|^stream 1 GET \/one \[x-custom=yes\] 0:$/);
    const chunked = await request(t.client, { ':path': '/chunked' });
    assert.equal(chunked.body, 'hello world');
    assert.equal(chunked.headers['transfer-encoding'], undefined);
    assert.equal(chunked.headers['keep-alive'], undefined);
    assert.equal(chunked.headers['x-hop'], undefined, 'a field the Connection header lists is hop-by-hop');
    assert.equal(chunked.headers['proxy-thing'], undefined);
    const cookies = await request(t.client, { ':path': '/cookies' });
    assert.deepEqual(cookies.headers['set-cookie'], ['a=1', 'b=2']);
    assert.equal(cookies.headers['content-type'], 'text/plain', 'a single-value field keeps its first value');
    assert.equal(cookies.headers.vary, 'accept, cookie');
    const head = await request(t.client, { ':path': '/x', ':method': 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    assert.ok(Number(head.headers['content-length']) > 0, 'HEAD keeps the content-length of the GET');
    const interim = await request(t.client, { ':path': '/interim' });
    assert.deepEqual([interim.status, interim.body], [200, 'final']);
    const empty = await request(t.client, { ':path': '/no-content' });
    assert.deepEqual([empty.status, empty.body], [204, '']);
    assert.equal(t.dials, 1, 'one tunnel stream for every request in turn');
    assert.deepEqual(t.pool.size, { live: 1, idle: 1 });
    // Concurrent requests each get a stream; another caller gets its own.
    const together = await Promise.all([request(t.client, { ':path': '/slow' }), request(t.client, { ':path': '/slow' }), request(t.client, { ':path': '/slow', 'x-who': 'bob' })]);
    assert.deepEqual(together.map((a) => a.status), [200, 200, 200]);
    assert.equal(t.dials, 3);
  } finally {
    t.close();
  }
});

test('request bodies: as is with a content-length, chunk-encoded without, none when HEADERS ends the stream', async () => {
  const t = await setup();
  try {
    const sized = await request(t.client, { ':path': '/sized', ':method': 'POST', 'content-length': '11' }, 'hello there');
    assert.equal(sized.status, 200);
    const sizedSeen = t.seen.at(-1)!;
    assert.equal(headerValue(sizedSeen.head, 'content-length'), '11');
    assert.equal(sizedSeen.head.framing.kind, 'length');
    assert.equal(sizedSeen.body.toString(), 'hello there');
    const pieces = [Buffer.from('abc'), Buffer.alloc(0), Buffer.from('defgh'), Buffer.from('ij')];
    const streamed = await request(t.client, { ':path': '/streamed', ':method': 'PUT' }, pieces);
    assert.equal(streamed.status, 200);
    const streamedSeen = t.seen.at(-1)!;
    assert.equal(streamedSeen.head.framing.kind, 'chunked');
    assert.equal(streamedSeen.body.toString(), 'abcdefghij');
    const bare = await request(t.client, { ':path': '/bare', ':method': 'DELETE' });
    assert.equal(bare.status, 200);
    const bareSeen = t.seen.at(-1)!;
    assert.equal(bareSeen.head.framing.kind, 'none');
    assert.equal(headerValue(bareSeen.head, 'transfer-encoding'), undefined);
    // Expect: 100-continue is answered at once; the body follows.
    const expecting = await request(t.client, { ':path': '/expect', ':method': 'POST', 'content-length': '2', expect: '100-continue' }, 'ok');
    assert.equal(expecting.status, 200);
    assert.equal(t.seen.at(-1)!.body.toString(), 'ok');
    assert.equal(t.dials, 1, 'every exchange finished cleanly: one stream');
    // Answered before the body is through: the client is told to stop, the stream is not reused.
    const early = await request(t.client, { ':path': '/early', ':method': 'POST', 'content-length': String(4 * 1024 * 1024) }, Buffer.alloc(4 * 1024 * 1024));
    assert.deepEqual([early.status, early.body, early.rstCode], [413, 'too big\n', http2.constants.NGHTTP2_NO_ERROR]);
    await waitFor(() => t.hooks.closed.includes(1), 'the stream with a half-sent request is destroyed');
    const next = await request(t.client, { ':path': '/next' });
    assert.match(next.body, /^stream 2 /);
  } finally {
    t.close();
  }
});

test('streams are not reused after connection: close or a close-delimited answer', async () => {
  const t = await setup();
  try {
    const bye = await request(t.client, { ':path': '/connection-close' });
    assert.deepEqual([bye.status, bye.body], [200, 'bye']);
    const delimited = await request(t.client, { ':path': '/close-delimited' });
    assert.deepEqual([delimited.status, delimited.body], [200, 'until the end']);
    const after = await request(t.client, { ':path': '/after' });
    assert.match(after.body, /^stream 3 /);
    assert.equal(t.dials, 3);
    await waitFor(() => t.hooks.closed.includes(1) && t.hooks.closed.includes(2), 'the used-up streams are closed');
  } finally {
    t.close();
  }
});

test('failures: a refused dial is answered as the full path does, a tunnel that ends before answering gives 502, one that breaks mid-answer resets the stream', async () => {
  const refusedDial = await setup({ dialError: new ServiceDialError('dial-failed', 'node "n" (h) refused the app:web connection: no role allows it', { cause: new TunnelRejectedError(403, 'no role allows it') }) });
  try {
    const denied = await request(refusedDial.client, { ':path': '/' });
    assert.equal(denied.status, 403);
    assert.equal(denied.body, 'node "n" (h) refused the app:web connection: no role allows it\n');
    assert.deepEqual(refusedDial.refused, ['403 app-denied']);
  } finally {
    refusedDial.close();
  }
  const t = await setup();
  try {
    const hangUp = await request(t.client, { ':path': '/hang-up' });
    assert.equal(hangUp.status, 502);
    assert.match(hangUp.body, /^the app connection failed: /);
    const mid = await request(t.client, { ':path': '/mid-answer' });
    assert.equal(mid.status, 200);
    assert.equal(mid.body, 'partial');
    assert.equal(mid.rstCode, http2.constants.NGHTTP2_INTERNAL_ERROR);
    // Without a content-length too: the client must not take the broken answer as complete.
    const midChunked = await request(t.client, { ':path': '/mid-chunked' });
    assert.deepEqual([midChunked.status, midChunked.body, midChunked.rstCode], [200, 'partial', http2.constants.NGHTTP2_INTERNAL_ERROR]);
    const fine = await request(t.client, { ':path': '/fine' });
    assert.equal(fine.status, 200);
    assert.equal(t.dials, 4, 'broken streams are never reused');
  } finally {
    t.close();
  }
});

test('a client that resets its stream mid-answer: the tunnel stream is destroyed, not reused', async () => {
  const t = await setup();
  let agentStream: Duplex | undefined;
  t.hooks.big = (stream) => {
    agentStream = stream;
    stream.write('HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n');
    stream.write(Buffer.alloc(1000, 1));
  };
  try {
    await new Promise<void>((resolve) => {
      const stream = t.client.request({ ':path': '/big' });
      stream.on('error', () => {});
      stream.once('data', () => {
        stream.close(http2.constants.NGHTTP2_CANCEL);
        resolve();
      });
    });
    await waitFor(() => t.hooks.closed.includes(1), 'the tunnel stream is destroyed');
    assert.equal(agentStream!.destroyed, true);
    const next = await request(t.client, { ':path': '/next' });
    assert.match(next.body, /^stream 2 /);
  } finally {
    t.close();
  }
});

test('backpressure: a slow client holds the tunnel stream back; a slow app holds the client back; bytes arrive whole', async () => {
  const t = await setup();
  const total = 8 * 1024 * 1024;
  let written = 0;
  let blocked = false;
  t.hooks.big = (stream) => {
    stream.write(`HTTP/1.1 200 OK\r\ncontent-length: ${total}\r\n\r\n`);
    const piece = Buffer.alloc(64 * 1024, 7);
    const pump = (): void => {
      while (written < total) {
        written += piece.length;
        if (!stream.write(piece)) {
          blocked = true;
          return void stream.once('drain', pump);
        }
      }
    };
    pump();
  };
  try {
    const stream = t.client.request({ ':path': '/big' });
    stream.pause();
    await waitFor(() => blocked, 'the agent side is told to wait');
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.ok(written < 2 * 1024 * 1024, `a client that reads nothing holds the app back (${written} bytes written)`);
    let got = 0;
    stream.on('data', (c: Buffer) => (got += c.length));
    stream.resume();
    await new Promise((resolve) => stream.on('close', resolve));
    assert.equal(got, total);

    // The other way: an app that reads nothing holds the client's upload back.
    const upload = t.client.request({ ':path': '/hold-body', ':method': 'POST', 'content-length': String(total) }, { endStream: false });
    upload.on('error', () => {});
    let sent = 0;
    const piece = Buffer.alloc(64 * 1024, 9);
    await new Promise<void>((resolve) => {
      const pump = (): void => {
        while (sent < total) {
          sent += piece.length;
          if (!upload.write(piece)) return void upload.once('drain', pump);
        }
        upload.end();
      };
      pump();
      setTimeout(resolve, 300);
    });
    assert.ok(sent < 3 * 1024 * 1024, `an app that reads nothing holds the client back (${sent} bytes sent)`);
    const agentSide = t.agentSides.at(-1)!;
    const answered = new Promise<Answer>((resolve) => {
      let status = 0;
      let body = '';
      upload.on('response', (h) => (status = Number(h[':status'])));
      upload.on('data', (c: Buffer) => (body += c.toString()));
      upload.on('close', () => resolve({ status, headers: {}, body }));
    });
    agentSide.resume();
    const done = await answered;
    assert.equal(done.status, 200);
    assert.equal(t.seen.at(-1)!.body.length, total);
    assert.ok(t.seen.at(-1)!.body.every((b) => b === 9));
  } finally {
    t.close();
  }
});

test('the pool: a stream older than maxAgeMs is not reused, idle ones close after idleMs, bytes on an idle stream retire it', async () => {
  const t = await setup({ maxAgeMs: 60, idleMs: 200 });
  try {
    await request(t.client, { ':path': '/1' });
    await request(t.client, { ':path': '/2' });
    assert.equal(t.dials, 1);
    await new Promise((resolve) => setTimeout(resolve, 80));
    const third = await request(t.client, { ':path': '/3' });
    assert.match(third.body, /^stream 2 /, 'an old stream is replaced, so the agent decides again');
    await waitFor(() => t.hooks.closed.includes(1), 'the old stream is ended');
    await waitFor(() => t.pool.size.live === 0, 'idle streams close');
  } finally {
    t.close();
  }
  const u = await setup();
  try {
    await request(u.client, { ':path': '/1' });
    assert.deepEqual(u.pool.size, { live: 1, idle: 1 });
    u.agentSides[0]!.write('HTTP/1.1 200 OK\r\n\r\n');
    await waitFor(() => u.pool.size.live === 0, 'a stream that speaks out of turn is dropped');
    const next = await request(u.client, { ':path': '/2' });
    assert.match(next.body, /^stream 2 /);
  } finally {
    u.close();
  }
});
