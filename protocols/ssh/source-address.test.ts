import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SshFormatError } from './errors.ts';
import { matchSourceAddress, parseIpAddress, parseSourceAddressList } from './source-address.ts';

test('matches IPv4 addresses against CIDR blocks and bare addresses', () => {
  assert.equal(matchSourceAddress('10.1.2.3', '10.0.0.0/8'), true);
  assert.equal(matchSourceAddress('11.1.2.3', '10.0.0.0/8'), false);
  assert.equal(matchSourceAddress('192.168.1.7', '10.0.0.0/8,192.168.1.7'), true);
  assert.equal(matchSourceAddress('192.168.1.8', '192.168.1.7'), false);
  assert.equal(matchSourceAddress('172.16.15.255', '172.16.0.0/20'), true);
  assert.equal(matchSourceAddress('172.16.16.0', '172.16.0.0/20'), false);
  assert.equal(matchSourceAddress('203.0.113.9', '0.0.0.0/0'), true);
  assert.equal(matchSourceAddress('127.0.0.1', '127.0.0.1/32'), true);
  assert.equal(matchSourceAddress('127.0.0.2', '127.0.0.1/32'), false);
});

test('matches IPv6 addresses, with :: and embedded IPv4 forms', () => {
  assert.equal(matchSourceAddress('::1', '::1'), true);
  assert.equal(matchSourceAddress('::2', '::1/128'), false);
  assert.equal(matchSourceAddress('2001:db8:0:0:0:0:0:5', '2001:db8::/32'), true);
  assert.equal(matchSourceAddress('2001:db9::5', '2001:db8::/32'), false);
  assert.equal(matchSourceAddress('fe80::1%eth0', 'fe80::/10'), true, 'zone index ignored');
  assert.equal(matchSourceAddress('64:ff9b::192.0.2.1', '64:ff9b::/96'), true);
  assert.equal(matchSourceAddress('2001:DB8::1', '2001:db8::/32'), true, 'hex case does not matter');
});

test('matches an IPv4-mapped IPv6 peer as IPv4, and never mixes families otherwise', () => {
  assert.equal(matchSourceAddress('::ffff:127.0.0.1', '127.0.0.0/8'), true);
  assert.equal(matchSourceAddress('::ffff:7f00:1', '127.0.0.1'), true);
  assert.equal(matchSourceAddress('::1', '127.0.0.1'), false);
  assert.equal(matchSourceAddress('127.0.0.1', '::1,::/0'), false);
  assert.equal(matchSourceAddress('::1', '0.0.0.0/0'), false);
});

test('refuses malformed lists and entries with host bits set, as OpenSSH does', () => {
  const bad = ['', '10.0.0.0/8,', '256.1.1.1', '10.0.0.1/33', '1.2.3', '01.2.3.4', 'a.b.c.d', '10.0.0.1/24', '10.0.0.0/8/8', '10.0.0.0/-1', '10.0.0.0/', '1::2::3', '1:2:3:4:5:6:7:8:9', '::1/129', 'fe80::/9x', '1.2.3.4::', ' 10.0.0.1', '*', '!10.0.0.1', '::ffff:1.2.3.4.5'];
  for (const list of bad) {
    assert.throws(() => parseSourceAddressList(list), SshFormatError, JSON.stringify(list));
  }
  assert.throws(() => matchSourceAddress('not-an-ip', '10.0.0.0/8'), /not an IP address/);
});

test('parses the address forms OpenSSH and sockets produce', () => {
  assert.deepEqual(parseIpAddress('1.2.3.4'), Buffer.of(1, 2, 3, 4));
  assert.deepEqual(parseIpAddress('::'), Buffer.alloc(16));
  assert.deepEqual(parseIpAddress('1:2:3:4:5:6:7:8')?.toString('hex'), '00010002000300040005000600070008');
  assert.deepEqual(parseIpAddress('1::8')?.toString('hex'), '00010000000000000000000000000008');
  assert.deepEqual(parseIpAddress('::ffff:1.2.3.4')?.toString('hex'), '00000000000000000000ffff01020304');
  assert.equal(parseIpAddress('1:2:3:4:5:6:7::8'), undefined, ':: must stand for at least one group');
  assert.deepEqual(parseSourceAddressList('10.0.0.0/8,::1'), [
    { network: Buffer.of(10, 0, 0, 0), prefixLength: 8 },
    { network: parseIpAddress('::1'), prefixLength: 128 },
  ]);
});
