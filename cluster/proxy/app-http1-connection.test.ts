/**
 * AppHttp1Connection with a real socket pair, a scripted check and a fake agent behind
 * each dialed stream (it answers every request with the stream's number and the path).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import { duplexPair, type Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { MessageReader, headerValue, type MessageHead } from '../../protocols/http1/index.ts';
import { AppHttp1Connection, type FastPathDecision } from './app-http1-connection.ts';
import type { ServiceDialRequest } from './service-dialer.ts';

/** The agent's end of stream number `n`: answers each request in order, ends when the proxy does. */
function fakeAgent(stream: Duplex, n: number): void {
  const reader = new MessageReader({ kind: 'request', maxHeadBytes: 8192 });
  let target = '';
  stream.on('data', (chunk: Buffer) => {
    reader.push(chunk);
    for (let event = reader.read(); event; event = reader.read()) {
      if (event.type === 'head') target = event.head.target;
      if (event.type === 'end') {
        const body = `stream ${n} ${target}`;
        stream.write(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
      }
    }
  });
  stream.on('end', () => stream.end());
}

async function setup(check: (head: MessageHead) => FastPathDecision, options: { maxStreamMs?: number } = {}) {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const client = net.connect((server.address() as AddressInfo).port, '127.0.0.1');
  const socket = await accepted;
  const dials: string[] = [];
  const handedOff: Buffer[] = [];
  new AppHttp1Connection(socket as unknown as TLSSocket, {
    check: (_socket, head) => check(head),
    dial: async (request: ServiceDialRequest) => {
      dials.push(request.identity);
      const [proxySide, agentSide] = duplexPair();
      fakeAgent(agentSide, dials.length);
      return proxySide;
    },
    // The full server's stand-in answers every request it gets with 'full PATH'.
    handOff: (s) => {
      const reader = new MessageReader({ kind: 'request', maxHeadBytes: 8192 });
      s.on('data', (chunk: Buffer) => {
        handedOff.push(chunk);
        reader.push(chunk);
        for (let event = reader.read(); event; event = reader.read()) {
          if (event.type === 'head') s.write(`HTTP/1.1 401 Unauthorized\r\ncontent-length: ${5 + event.head.target.length}\r\n\r\nfull ${event.head.target}`);
        }
      });
    },
    ...options,
  });
  const answers: string[] = [];
  const reader = new MessageReader({ kind: 'response', maxHeadBytes: 8192 });
  let body = '';
  client.on('data', (chunk: Buffer) => {
    reader.push(chunk);
    for (let event = reader.read(); event; event = reader.read()) {
      if (event.type === 'body') body += event.data.toString();
      if (event.type === 'end') {
        answers.push(body);
        body = '';
      }
    }
  });
  return {
    client, dials, handedOff,
    async answers(n: number): Promise<string[]> {
      for (let i = 0; i < 300 && answers.length < n; i++) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.equal(answers.length, n, JSON.stringify(answers));
      return answers.splice(0, n);
    },
    close: () => { client.destroy(); server.close(); },
  };
}

const forwardAs = (head: MessageHead): FastPathDecision => {
  const who = headerValue(head, 'x-who');
  if (!who) return { forward: false };
  return { forward: true, key: who, dial: { service: 'app:web', identity: who }, head: Buffer.from(`GET ${head.target} HTTP/1.1\r\nhost: web\r\n\r\n`) };
};
const get = (path: string, who?: string) => `GET ${path} HTTP/1.1\r\nHost: web\r\n${who ? `X-Who: ${who}\r\n` : ''}\r\n`;

test('pipelined requests keep their order; another caller drains the stream and goes on a new one', async () => {
  const t = await setup(forwardAs);
  try {
    t.client.write(get('/1', 'alice') + get('/2', 'alice') + get('/3', 'bob') + get('/4', 'alice'));
    assert.deepEqual(await t.answers(4), ['stream 1 /1', 'stream 1 /2', 'stream 2 /3', 'stream 3 /4']);
    assert.deepEqual(t.dials, ['alice', 'bob', 'alice']);
    assert.equal(t.handedOff.length, 0);
  } finally {
    t.close();
  }
});

test('a request the check does not forward is answered by the full server, after the answers asked for before it', async () => {
  const t = await setup(forwardAs);
  try {
    t.client.write(get('/1', 'alice') + get('/2', 'alice') + get('/refused') + get('/after', 'alice'));
    assert.deepEqual(await t.answers(4), ['stream 1 /1', 'stream 1 /2', 'full /refused', 'full /after']);
    assert.match(Buffer.concat(t.handedOff).toString(), /^GET \/refused HTTP\/1\.1\r\n/);
  } finally {
    t.close();
  }
});

test('a stream older than maxStreamMs is drained and dialed again, so the agent decides again', async () => {
  const t = await setup(forwardAs, { maxStreamMs: 20 });
  try {
    t.client.write(get('/1', 'alice'));
    assert.deepEqual(await t.answers(1), ['stream 1 /1']);
    await new Promise((resolve) => setTimeout(resolve, 40));
    t.client.write(get('/2', 'alice'));
    assert.deepEqual(await t.answers(1), ['stream 2 /2']);
    assert.equal(t.dials.length, 2);
  } finally {
    t.close();
  }
});
