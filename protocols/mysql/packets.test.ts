import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import path from 'node:path';
import fc from 'fast-check';
import {
  CAP, MysqlProtocolError, PacketSplitter, cachingSha2Token, encodeGreeting, encodeHandshakeResponse, encodePacket,
  nativePasswordToken, parseGreeting, parseHandshakeResponse, type Greeting,
} from './packets.ts';
import { MysqlCommandAudit, type MysqlCommandEvent } from './command-audit.ts';

const require = createRequire(import.meta.url);
const auth41 = require(path.join(path.dirname(require.resolve('mysql2')), 'lib', 'auth_41.js')) as { calculateToken(password: string, s1: Buffer, s2: Buffer): Buffer };

const greeting: Greeting = {
  serverVersion: '5.5.5-10.11.19-MariaDB', connectionId: 42, scramble: Buffer.from('abcdefghijklmnopqrst'), capabilities: 0xf7fe | ((CAP.pluginAuth | CAP.pluginAuthLenencData | CAP.connectAttrs) >>> 0),
  charset: 45, status: 2, reserved: Buffer.from([0, 0, 0, 0, 0, 0, 0x1d, 0, 0, 0]), authPlugin: 'mysql_native_password',
};

test('greeting and handshake response round-trip', () => {
  assert.deepEqual(parseGreeting(encodeGreeting(greeting)), greeting);
  const response = {
    capabilities: (CAP.protocol41 | CAP.secureConnection | CAP.pluginAuth | CAP.pluginAuthLenencData | CAP.connectWithDb | CAP.connectAttrs) >>> 0,
    maxPacketSize: 16_777_216, charset: 45, filler: Buffer.alloc(23, 0), user: 'alice', authResponse: Buffer.from('token'), database: 'app', authPlugin: 'mysql_native_password',
    attributes: Buffer.from([3, 1, 0x61, 0]),
  };
  assert.deepEqual(parseHandshakeResponse(encodeHandshakeResponse(response)), response);
});

test('password tokens agree with mysql2\'s implementation', () => {
  const scramble = Buffer.from('12345678abcdefghijkl');
  assert.deepEqual(nativePasswordToken('secret', scramble), auth41.calculateToken('secret', scramble.subarray(0, 8), scramble.subarray(8)));
  assert.equal(nativePasswordToken('', scramble).length, 0);
  assert.equal(cachingSha2Token('secret', scramble).length, 32);
});

test('the splitter refuses oversized handshake packets', () => {
  const splitter = new PacketSplitter(1024);
  assert.deepEqual(splitter.push(encodePacket(3, Buffer.from('hi'))), [{ sequence: 3, payload: Buffer.from('hi') }]);
  assert.throws(() => splitter.push(Buffer.from([1, 4, 0, 1])), /packet of 1025 bytes during the handshake; at most 1024/);
});

test('fuzz (6 s): handshake parsers fail only with MysqlProtocolError', () => {
  const check = (parse: (b: Buffer) => unknown) => (bytes: Uint8Array) => {
    try {
      parse(Buffer.from(bytes));
    } catch (error) {
      assert.ok(error instanceof MysqlProtocolError, String(error));
    }
  };
  const limits = { numRuns: 5_000_000, interruptAfterTimeLimit: 3_000, markInterruptAsFailure: false };
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), check(parseHandshakeResponse)), limits);
  // Mutations of a valid greeting reach deeper than random bytes.
  const valid = encodeGreeting(greeting);
  fc.assert(fc.property(fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.nat(valid.length), (edits, cut) => {
    const bytes = Buffer.from(valid.subarray(0, cut));
    for (const [at, value] of edits) if (at < bytes.length) bytes[at] = value;
    check(parseGreeting)(bytes);
  }), limits);
});

test('command audit: COM_QUERY, COM_STMT_PREPARE and COM_STMT_EXECUTE across any chunking; later sequence numbers are not commands', () => {
  const execute = Buffer.alloc(10);
  execute[0] = 0x17;
  execute.writeUInt32LE(7, 1);
  const stream = Buffer.concat([
    encodePacket(0, Buffer.concat([Buffer.from([0x03]), Buffer.from('select 1')])),
    encodePacket(0, Buffer.concat([Buffer.from([0x16]), Buffer.from('select ?')])),
    encodePacket(0, execute),
    encodePacket(2, Buffer.concat([Buffer.from([0x03]), Buffer.from('file contents')])),
    encodePacket(0, Buffer.from([0x01])),
  ]);
  const expected: MysqlCommandEvent[] = [
    { kind: 'query', sql: 'select 1', truncated: false },
    { kind: 'prepare', sql: 'select ?', truncated: false },
    { kind: 'execute', statementId: 7 },
  ];
  fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 1, maxLength: 10 }), (cuts) => {
    const events: MysqlCommandEvent[] = [];
    const audit = new MysqlCommandAudit((e) => events.push(e));
    for (let offset = 0, i = 0; offset < stream.length; i++) {
      const size = cuts[i % cuts.length]!;
      audit.push(stream.subarray(offset, offset + size));
      offset += size;
    }
    assert.deepEqual(events, expected);
  }), { numRuns: 300 });
});
