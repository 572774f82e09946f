import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { classify, sniff } from './sniff.ts';

const clientHelloHead = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]);
const sslRequest = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
const gssencRequest = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30]);

const openings: Array<[string, Buffer, number]> = [
  ['tls', clientHelloHead, 6],
  ['ssh', Buffer.from('SSH-2.0-OpenSSH_9.2\r\n'), 8],
  ['ssh', Buffer.from('SSH-1.99-Legacy\r\n'), 9],
  ['postgres-ssl', sslRequest, 8],
  ['postgres-gssenc', gssencRequest, 8],
  ['postgres-cancel', Buffer.from([0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e, 0, 0, 0, 1, 0, 0, 0, 2]), 8],
];

describe('classify', () => {
  for (const [kind, bytes, decidedAt] of openings) {
    it(`says 'more' for every proper prefix of ${kind} shorter than ${decidedAt} bytes, then ${kind}`, () => {
      for (let n = 0; n < decidedAt; n++) assert.equal(classify(bytes.subarray(0, n)), 'more', `prefix length ${n}`);
      for (let n = decidedAt; n <= bytes.length; n++) assert.equal(classify(bytes.subarray(0, n)), kind, `prefix length ${n}`);
    });
  }

  it('rejects clearly invalid openings from the first byte that rules them out', () => {
    assert.equal(classify(Buffer.from('GET / HTTP/1.1\r\n')), 'unknown');
    assert.equal(classify(Buffer.from('SSH-3.0-x')), 'unknown');
    assert.equal(classify(Buffer.from('SSX')), 'unknown');
    assert.equal(classify(Buffer.from([0x16, 0x02])), 'unknown'); // not TLS major version 3
    assert.equal(classify(Buffer.from([0x16, 0x03, 0x09])), 'unknown');
    assert.equal(classify(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x10, 0x02])), 'unknown'); // ServerHello, not ClientHello
    assert.equal(classify(Buffer.from([0x16, 0x03, 0x01, 0x48, 0x01, 0x01])), 'unknown'); // record > 2^14
    assert.equal(classify(Buffer.from([0, 0, 0, 9])), 'unknown');
    assert.equal(classify(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2e])), 'unknown'); // CancelRequest-like code
    assert.equal(classify(Buffer.from([0x17, 0x03, 0x03])), 'unknown'); // application data record
  });

  it('is decided within 9 bytes and never changes its mind as bytes are added (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 40 }), fc.constantFrom(...openings.map((o) => o[1])), fc.boolean(), (random, opening, prefixed) => {
        const bytes = prefixed ? Buffer.concat([opening.subarray(0, random.length % (opening.length + 1)), random]) : Buffer.from(random);
        let decided: string | undefined;
        for (let n = 0; n <= bytes.length; n++) {
          const kind = classify(bytes.subarray(0, n));
          if (decided !== undefined) assert.equal(kind, decided);
          else if (kind !== 'more') decided = kind;
          else assert.ok(n < 9, `still undecided after ${n} bytes`);
        }
      }),
      { numRuns: 2_000 },
    );
  });
});

async function _pair(): Promise<{ client: net.Socket; server: net.Socket; close(): void }> {
  const listener = net.createServer();
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const client = net.connect((listener.address() as net.AddressInfo).port, '127.0.0.1');
  const [server] = (await once(listener, 'connection')) as [net.Socket];
  listener.close();
  return { client, server, close: () => { client.destroy(); server.destroy(); } };
}

describe('sniff', () => {
  it('classifies bytes trickled one at a time and gives them back unread', async () => {
    const { client, server, close } = await _pair();
    const banner = Buffer.from('SSH-2.0-OpenSSH_9.2\r\nrest');
    const result = sniff(server, { timeoutMs: 2_000 });
    for (const byte of banner.subarray(0, 8)) {
      client.write(Buffer.from([byte]));
      await new Promise((r) => setTimeout(r, 5));
    }
    client.write(banner.subarray(8));
    assert.equal((await result).kind, 'ssh');
    const received: Buffer[] = [];
    let total = 0;
    for await (const chunk of server) {
      received.push(chunk as Buffer);
      total += (chunk as Buffer).length;
      if (total >= banner.length) break;
    }
    assert.deepEqual(Buffer.concat(received), banner);
    close();
  });

  it('consumes a PostgreSQL SSLRequest and unshifts what follows', async () => {
    const { client, server, close } = await _pair();
    client.write(Buffer.concat([sslRequest, Buffer.from('xyz')]));
    const result = await sniff(server, { timeoutMs: 2_000 });
    assert.deepEqual(result, { kind: 'postgres-ssl', buffered: 3 });
    assert.equal(String(server.read(3)), 'xyz');
    close();
  });

  it('gives up at the timeout on silence, and reports a peer that closes early', async () => {
    const silent = await _pair();
    const started = Date.now();
    assert.equal((await sniff(silent.server, { timeoutMs: 150 })).kind, 'timeout');
    assert.ok(Date.now() - started >= 140);
    silent.close();

    const early = await _pair();
    early.client.end(Buffer.from([0x16]));
    assert.equal((await sniff(early.server, { timeoutMs: 2_000 })).kind, 'closed');
    early.close();
  });
});
