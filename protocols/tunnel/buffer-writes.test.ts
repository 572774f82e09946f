import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { withBufferWritev } from './buffer-writes.ts';

/** Runs an http.Server on one HTTP/2 stream (as the agent's app forwarder does) and returns the raw bytes it answers a GET with. */
async function rawAnswer(respond: (res: http.ServerResponse) => void): Promise<string> {
  const inner = http.createServer((_req, res) => respond(res));
  const outer = http2.createServer();
  outer.on('stream', (stream) => {
    stream.respond({ ':status': 200 });
    inner.emit('connection', withBufferWritev(stream));
  });
  outer.listen(0, '127.0.0.1');
  await once(outer, 'listening');
  const client = http2.connect(`http://127.0.0.1:${(outer.address() as AddressInfo).port}`);
  try {
    const stream = client.request({ ':method': 'POST', ':path': '/' }, { endStream: false });
    let got = '';
    stream.on('data', (chunk: Buffer) => { got += chunk.toString('latin1'); });
    stream.write('GET / HTTP/1.1\r\nHost: app\r\n\r\n');
    const deadline = Date.now() + 5_000;
    while (!/\r\n\r\n[\s\S]*ok$/.test(got) && !got.includes('\r\n0\r\n\r\n') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    return got;
  } finally {
    client.destroy();
    outer.close();
  }
}

test('a response head corked with its first body Buffer arrives intact', async () => {
  const got = await rawAnswer((res) => {
    res.writeHead(200, 'OK', { 'content-length': '2' });
    // Later, as an upstream's answer arrives: the head goes out corked with this body.
    setTimeout(() => {
      res.write(Buffer.from('ok'));
      res.end();
    }, 10);
  });
  assert.match(got, /^HTTP\/1\.1 200 OK\r\ncontent-length: 2\r\n[\s\S]*\r\n\r\nok$/);
});

test('chunked answers (string chunk-size lines between Buffers) arrive intact', async () => {
  const got = await rawAnswer((res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    setTimeout(() => res.write(Buffer.from('data: one\n\n')), 10);
    setTimeout(() => res.end(Buffer.from('data: two\n\n')), 20);
  });
  assert.match(got, /^HTTP\/1\.1 200 OK\r\n[\s\S]*transfer-encoding: chunked\r\n\r\nb\r\ndata: one\n\n\r\nb\r\ndata: two\n\n\r\n0\r\n\r\n$/i);
});

test('a request head corked with its first body Buffer (an http.Agent on a stream, as the proxy dials apps) arrives intact', async () => {
  const outer = http2.createServer();
  let got = '';
  outer.on('stream', (stream) => {
    stream.respond({ ':status': 200 });
    stream.on('data', (chunk: Buffer) => { got += chunk.toString('latin1'); });
  });
  outer.listen(0, '127.0.0.1');
  await once(outer, 'listening');
  const client = http2.connect(`http://127.0.0.1:${(outer.address() as AddressInfo).port}`);
  try {
    const stream = client.request({ ':method': 'POST', ':path': '/' }, { endStream: false });
    Object.assign(stream, { setKeepAlive() {}, ref() {}, unref() {}, setNoDelay() {} });
    const agent = new http.Agent({ keepAlive: true });
    agent.createConnection = ((_options: unknown, callback: (error: Error | null, socket: unknown) => void) => void callback(null, withBufferWritev(stream))) as never;
    const req = http.request({ method: 'POST', path: '/upload', host: 'app', agent, headers: { 'content-length': '4' } });
    req.on('error', () => {});
    setTimeout(() => {
      req.write(Buffer.from('abcd'));
      req.end();
    }, 10);
    const deadline = Date.now() + 5_000;
    while (!got.endsWith('abcd') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.match(got, /^POST \/upload HTTP\/1\.1\r\ncontent-length: 4\r\nHost: app\r\n[\s\S]*\r\n\r\nabcd$/);
  } finally {
    client.destroy();
    outer.close();
  }
});
