import { test } from 'node:test';
import assert from 'node:assert/strict';
import http, { type IncomingHttpHeaders } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { duplexPair, type Duplex } from 'node:stream';
import { MessageReader } from '../../../protocols/http1/index.ts';
import { AppStreamForwarder } from './app-stream-forwarder.ts';

interface Answer { status: number; head: string; body: string }

/** The proxy's end of a tunnel stream: write requests, collect whole answers. */
function client(stream: Duplex, headFor: (n: number) => boolean = () => false) {
  const reader = new MessageReader({ kind: 'response', maxHeadBytes: 64 * 1024 });
  const got: Answer[] = [];
  let current: Answer | undefined;
  let count = 0;
  let raw = '';
  stream.on('data', (chunk: Buffer) => {
    raw += chunk.toString('latin1');
    reader.push(chunk);
    for (let event = reader.read(); event; event = reader.read()) {
      if (event.type === 'head') {
        current = { status: event.head.status, head: event.raw.toString('latin1'), body: '' };
        if (event.head.status >= 200 && headFor(count++)) reader.noBody();
        if (event.head.status === 101) reader.stop();
      } else if (event.type === 'body') current!.body += event.data.toString('latin1');
      else got.push(current!);
    }
  });
  return {
    got,
    raw: () => raw,
    async wait(n: number): Promise<Answer[]> {
      for (let i = 0; i < 200 && got.length < n; i++) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.equal(got.length, n, `answers: ${JSON.stringify(got)}`);
      return got.splice(0, n);
    },
  };
}

async function upstream(): Promise<{ server: http.Server; port: number; seen: Array<{ method: string; url: string; headers: IncomingHttpHeaders; body: string }> }> {
  const seen: Array<{ method: string; url: string; headers: IncomingHttpHeaders; body: string }> = [];
  const server = http.createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += (chunk as Buffer).toString();
    seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
    res.end(`${req.method} ${req.url} ${body.length}`);
  });
  server.keepAliveTimeout = 150;
  server.on('upgrade', (_req, socket: net.Socket, head: Buffer) => {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
    if (head.length) socket.write(head);
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, seen };
}

const forwarder = (port: number) => new AppStreamForwarder({ upstream: new URL(`http://127.0.0.1:${port}/base/`), rewriteHeaders: { 'X-Env': 'dev' }, insecureSkipVerify: false, onError: () => {} });

test('pipelined requests: heads rewritten (assertion, forwarded headers, rewrites, Connection-listed), bodies passed, HEAD and chunked answered in order; an idle upstream close is reconnected', async () => {
  const up = await upstream();
  const apps = forwarder(up.port);
  const [proxySide, agentSide] = duplexPair();
  apps.serve(agentSide, { jwt: 'the.signed.jwt', addr: '10.1.2.3:5555' });
  let n = 0;
  const c = client(proxySide, () => n++ === 1);
  try {
    proxySide.write([
      'GET /a?x=1 HTTP/1.1\r\nHost: web.apps.example\r\nPostern-Jwt-Assertion: forged\r\nX-Forwarded-For: 6.6.6.6\r\nX-Env: prod\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nX-Kept: k\r\n\r\n',
      'HEAD /b HTTP/1.1\r\nHost: web.apps.example\r\n\r\n',
      'POST /c HTTP/1.1\r\nHost: web.apps.example\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n',
    ].join(''));
    const [a, b, post] = await c.wait(3);
    assert.equal(a!.body, 'GET /base/a?x=1 0');
    assert.equal(b!.status, 200);
    assert.equal(b!.body, '', 'no body after an answer to HEAD');
    assert.equal(post!.body, 'POST /base/c 5');
    const first = up.seen[0]!.headers;
    assert.equal(first['postern-jwt-assertion'], 'the.signed.jwt');
    assert.equal(first['x-forwarded-for'], '10.1.2.3');
    assert.equal(first['x-forwarded-host'], 'web.apps.example');
    assert.equal(first['x-forwarded-proto'], 'https');
    assert.equal(first.host, `127.0.0.1:${up.port}`);
    assert.equal(first['x-env'], 'dev');
    assert.equal(first['x-secret'], undefined, 'headers the Connection header lists are hop-by-hop');
    assert.equal(first['x-kept'], 'k');
    assert.equal(up.seen[2]!.body, 'abcde');
    // The upstream drops the idle connection (keepAliveTimeout 150 ms); the next request opens another.
    await new Promise((resolve) => setTimeout(resolve, 400));
    proxySide.write('GET /later HTTP/1.1\r\nHost: web.apps.example\r\n\r\n');
    const [later] = await c.wait(1);
    assert.equal(later!.body, 'GET /base/later 0');
  } finally {
    proxySide.destroy();
    apps.close();
    up.server.close();
  }
});

test('an answer without length or chunking (HTTP/1.0 style) ends with the upstream connection, and so does the stream', async () => {
  const old = net.createServer((socket) => {
    socket.once('data', () => socket.end('HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end'));
  });
  await new Promise<void>((resolve) => old.listen(0, '127.0.0.1', resolve));
  const apps = forwarder((old.address() as AddressInfo).port);
  try {
    const [proxySide, agentSide] = duplexPair();
    apps.serve(agentSide, { jwt: 'j', addr: '10.0.0.1:1' });
    const c = client(proxySide);
    const ended = new Promise<void>((resolve) => proxySide.once('end', resolve));
    proxySide.resume();
    proxySide.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await ended;
    assert.match(c.raw(), /^HTTP\/1\.0 200 OK[\s\S]*\r\n\r\nuntil the end$/);
  } finally {
    apps.close();
    old.close();
  }
});

test('an unreachable upstream is answered 502; a malformed request 400; an upgrade becomes a raw pipe after 101', async () => {
  const closed = net.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const deadPort = (closed.address() as AddressInfo).port;
  closed.close();
  const dead = forwarder(deadPort);
  const [p1, a1] = duplexPair();
  dead.serve(a1, { jwt: 'j', addr: '10.0.0.1:1' });
  const c1 = client(p1);
  p1.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  const [bad] = await c1.wait(1);
  assert.equal(bad!.status, 502);
  assert.match(bad!.body, /cannot be reached/);

  const up = await upstream();
  const apps = forwarder(up.port);
  try {
    const [p2, a2] = duplexPair();
    apps.serve(a2, { jwt: 'j', addr: '10.0.0.1:1' });
    const c2 = client(p2);
    p2.write('GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n');
    const [smuggle] = await c2.wait(1);
    assert.equal(smuggle!.status, 400);
    assert.equal(up.seen.length, 0, 'a malformed request never reaches the upstream');

    const [p3, a3] = duplexPair();
    apps.serve(a3, { jwt: 'j', addr: '10.0.0.1:1' });
    const c3 = client(p3);
    p3.write('GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
    for (let i = 0; i < 200 && !c3.raw().includes('\r\n\r\n'); i++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.match(c3.raw(), /^HTTP\/1\.1 101 /);
    p3.write('raw bytes both ways');
    for (let i = 0; i < 200 && !c3.raw().endsWith('raw bytes both ways'); i++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.ok(c3.raw().endsWith('raw bytes both ways'), c3.raw());
    // A clean close carries over after the last bytes: they are not cut off.
    const ended = new Promise<void>((resolve) => p3.once('end', resolve));
    p3.end(' and last words');
    await ended;
    assert.ok(c3.raw().endsWith('raw bytes both ways and last words'), c3.raw());
  } finally {
    apps.close();
    up.server.close();
    up.server.closeAllConnections();
  }
});
