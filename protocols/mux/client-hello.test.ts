import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ClientHelloError, parseClientHello, type ClientHelloResult } from './client-hello.ts';

/** Captures the first flight a real Node TLS client sends. */
async function _captureHello(options: tls.ConnectionOptions): Promise<Buffer> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const client = tls.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, ...options });
  client.on('error', () => {});
  const [socket] = await accepted;
  let received = Buffer.alloc(0);
  while (parseClientHello(received).status === 'more') {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    received = Buffer.concat([received, chunk]);
  }
  client.destroy();
  socket.destroy();
  server.close();
  return received;
}

function _u16(n: number): number[] {
  return [(n >> 8) & 0xff, n & 0xff];
}

function _ext(type: number, data: number[]): number[] {
  return [..._u16(type), ..._u16(data.length), ...data];
}

function _sni(...names: string[]): number[] {
  const entries = names.flatMap((n) => [0, ..._u16(n.length), ...Buffer.from(n, 'latin1')]);
  return [..._u16(entries.length), ...entries];
}

function _alpn(...ids: string[]): number[] {
  const entries = ids.flatMap((id) => [id.length, ...Buffer.from(id, 'latin1')]);
  return [..._u16(entries.length), ...entries];
}

interface BodyParts {
  version?: number;
  sessionId?: number;
  ciphers?: number[];
  compression?: number[];
  /** Raw extension bytes (without the outer length); undefined for a hello without extensions. */
  extensions?: number[];
  trailing?: number[];
}

/** A ClientHello handshake message (type + 3-byte length + body). */
function _message(parts: BodyParts = {}): Buffer {
  const ciphers = parts.ciphers ?? [0x13, 0x01, 0x13, 0x02];
  const compression = parts.compression ?? [0];
  const body = [
    ..._u16(parts.version ?? 0x0303), ...new Array(32).fill(7),
    parts.sessionId ?? 0, ...new Array(Math.min(parts.sessionId ?? 0, 64)).fill(1),
    ..._u16(ciphers.length), ...ciphers,
    compression.length, ...compression,
    ...(parts.extensions === undefined ? [] : [..._u16(parts.extensions.length), ...parts.extensions]),
    ...(parts.trailing ?? []),
  ];
  return Buffer.from([1, (body.length >> 16) & 0xff, (body.length >> 8) & 0xff, body.length & 0xff, ...body]);
}

/** Wraps a handshake message in records of at most `size` bytes each. */
function _records(message: Buffer, size = 16_384, version = 0x0301): Buffer {
  const out: Buffer[] = [];
  for (let at = 0; at < message.length; at += size) {
    const fragment = message.subarray(at, at + size);
    out.push(Buffer.from([0x16, ..._u16(version), ..._u16(fragment.length)]), fragment);
  }
  return Buffer.concat(out);
}

function _done(result: ClientHelloResult) {
  assert.equal(result.status, 'done');
  return result.hello;
}

function _rejects(bytes: Uint8Array, pattern: RegExp, options?: { maxHandshakeBytes?: number }): void {
  assert.throws(() => parseClientHello(bytes, options), (err: unknown) => err instanceof ClientHelloError && err.code === 'PST_TLS_CLIENT_HELLO' && pattern.test(err.message));
}

describe('parseClientHello with real clients', () => {
  it('reads SNI and the ALPN list from a Node TLS 1.3 ClientHello', async () => {
    const bytes = await _captureHello({ servername: 'Auth.Postern', ALPNProtocols: ['postern-tunnel', 'h2', 'http/1.1'] });
    const hello = _done(parseClientHello(bytes));
    assert.deepEqual(hello, { serverName: 'auth.postern', alpn: ['postern-tunnel', 'h2', 'http/1.1'], length: bytes.length });
  });

  it('reports no SNI and no ALPN when the client sends neither', async () => {
    const bytes = await _captureHello({ servername: '' });
    assert.deepEqual(_done(parseClientHello(bytes)), { serverName: undefined, alpn: [], length: bytes.length });
  });

  it('answers more for every proper prefix, and never throws on one', async () => {
    const bytes = await _captureHello({ servername: 'proxy.example.com', ALPNProtocols: ['h2'] });
    for (let n = 0; n < bytes.length; n++) assert.deepEqual(parseClientHello(bytes.subarray(0, n)), { status: 'more' }, `prefix ${n}`);
    assert.equal(_done(parseClientHello(bytes)).serverName, 'proxy.example.com');
  });

  it('gives the same answer when the handshake is split over several records', async () => {
    const bytes = await _captureHello({ servername: 'auth.postern', ALPNProtocols: ['h2'] });
    const message = bytes.subarray(5);
    for (const size of [1000, 100, 7, 4, 3]) {
      const split = _records(message, size);
      if (Math.ceil(message.length / size) > 64) {
        _rejects(split, /more than 64 records/);
        continue;
      }
      const hello = _done(parseClientHello(split));
      assert.deepEqual([hello.serverName, hello.alpn, hello.length], ['auth.postern', ['h2'], split.length], `records of ${size}`);
    }
  });

  it('ignores bytes after the ClientHello records (the next flight)', async () => {
    const bytes = await _captureHello({ servername: 'x.test' });
    const hello = _done(parseClientHello(Buffer.concat([bytes, Buffer.from([0x14, 0x03, 0x03, 0, 1, 1])])));
    assert.equal(hello.length, bytes.length);
  });
});

describe('parseClientHello with built inputs', () => {
  it('accepts a hello without extensions, and one with an empty extension block', () => {
    assert.deepEqual(_done(parseClientHello(_records(_message()))).alpn, []);
    assert.equal(_done(parseClientHello(_records(_message({ extensions: [] })))).serverName, undefined);
  });

  it('skips unknown extensions', () => {
    const extensions = [..._ext(0xfe0d, [1, 2, 3]), ..._ext(0, _sni('a-b_c.example')), ..._ext(16, _alpn('h2'))];
    const hello = _done(parseClientHello(_records(_message({ extensions }))));
    assert.deepEqual([hello.serverName, hello.alpn], ['a-b_c.example', ['h2']]);
  });

  const malformed: Array<[string, Buffer, RegExp]> = [
    ['an application-data record', Buffer.from([0x17, 0x03, 0x03, 0, 5, 1, 2, 3, 4, 5]), /record type 23/],
    ['a bad record major version', Buffer.from([0x16, 0x02]), /major 2/],
    ['an unknown record minor version', Buffer.from([0x16, 0x03, 0x07, 0, 4, 1, 0, 0, 0]), /3\.7/],
    ['an empty record', Buffer.from([0x16, 0x03, 0x01, 0, 0]), /empty handshake record/],
    ['an oversized record', Buffer.from([0x16, 0x03, 0x01, 0x40, 0x01]), /exceeds the TLS limit/],
    ['a ServerHello', _records(Buffer.from([2, 0, 0, 0])), /type 2 is not ClientHello/],
    ['a record of another type in the middle', Buffer.concat([_records(_message({ extensions: [] }), 10).subarray(0, 15), Buffer.from([0x15, 3, 3, 0, 2, 2, 40])]), /record type 21/],
    ['bytes after the message in its record', _records(Buffer.concat([_message(), Buffer.from([0])])), /after the ClientHello message/],
    ['a legacy_version that is not 3.x', _records(_message({ version: 0x0202 })), /legacy_version/],
    ['a session id longer than 32', _records(_message({ sessionId: 33 })), /session_id length 33/],
    ['odd cipher suites', _records(_message({ ciphers: [0x13, 0x01, 0x13] })), /odd length/],
    ['no cipher suites', _records(_message({ ciphers: [] })), /cipher_suites length 0/],
    ['no compression methods', _records(_message({ compression: [] })), /compression_methods length 0/],
    ['stray bytes after the extensions', _records(_message({ extensions: [], trailing: [0] })), /stray bytes after the ClientHello/],
    ['an extension longer than its block', _records(_message({ extensions: [0, 5, 0, 9, 1] })), /needs 9 bytes/],
    ['a duplicate extension', _records(_message({ extensions: [..._ext(16, _alpn('h2')), ..._ext(16, _alpn('h2'))] })), /appears twice/],
    ['two host names', _records(_message({ extensions: _ext(0, _sni('a.test', 'b.test')) })), /more than one host_name/],
    ['a name type other than host_name', _records(_message({ extensions: _ext(0, [0, 4, 1, 0, 1, 0x61]) })), /type 1 is not host_name/],
    ['a host name with a NUL', _records(_message({ extensions: _ext(0, _sni('auth.postern\0.evil')) })), /not a DNS name/],
    ['a host name with a trailing dot', _records(_message({ extensions: _ext(0, _sni('auth.postern.')) })), /not a DNS name/],
    ['an empty SNI list', _records(_message({ extensions: _ext(0, [0, 0]) })), /server_name_list length 0/],
    ['bytes after the SNI list', _records(_message({ extensions: _ext(0, [..._sni('a.test'), 0]) })), /after server_name_list/],
    ['an empty ALPN id', _records(_message({ extensions: _ext(16, [0, 4, 2, 0x68, 0x32, 0]) })), /protocol name length 0/],
    ['an ALPN list shorter than 2', _records(_message({ extensions: _ext(16, [0, 1, 0]) })), /protocol_name_list length 1/],
  ];
  for (const [what, bytes, pattern] of malformed) {
    it(`rejects ${what}`, () => _rejects(bytes, pattern));
  }

  it('rejects a ClientHello longer than the limit from its header alone', () => {
    const header = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x01, 0x00, 0x01]); // claims 65,537 bytes
    _rejects(header, /65537 bytes exceeds the limit of 32768/);
    _rejects(_records(_message({ extensions: _ext(0xaaaa, new Array(600).fill(0)) })), /exceeds the limit of 512/, { maxHandshakeBytes: 512 });
  });
});

describe('parseClientHello under fuzzing', () => {
  const _onlyTypedErrors = (bytes: Uint8Array): void => {
    try {
      const result = parseClientHello(bytes);
      if (result.status === 'done') assert.ok(result.hello.length <= bytes.length);
    } catch (err) {
      if (!(err instanceof ClientHelloError)) throw err;
    }
  };

  it('random bytes behind a valid record header only ever give more, done or ClientHelloError', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (tail) => _onlyTypedErrors(Buffer.concat([Buffer.from([0x16, 3, 1, 0, tail.length & 0xff || 1, 1]), tail]))), { numRuns: 2_000 });
  });

  it('mutated and truncated real ClientHellos never throw anything else', async () => {
    const real = await _captureHello({ servername: 'auth.postern', ALPNProtocols: ['postern-tunnel', 'h2'] });
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(real.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }), fc.nat(real.length), (edits, cut) => {
        const bytes = Buffer.from(real);
        for (const [at, value] of edits) bytes[at] = value;
        _onlyTypedErrors(bytes.subarray(0, cut));
        _onlyTypedErrors(bytes);
      }),
      { numRuns: 3_000 },
    );
  });
});
