import { test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import { collectHostFacts, hostAddresses, parseOsRelease, type HostProbe } from './host-facts.ts';

test('collectHostFacts reports this host through systeminformation within a few seconds', async () => {
  const started = performance.now();
  const facts = await collectHostFacts({ timeoutMs: 4000 });
  assert.ok(performance.now() - started < 4500);
  assert.equal(facts.hostname, os.hostname());
  assert.deepEqual(facts.fallbacks, []);
  assert.equal(facts.os.platform, os.platform());
  assert.notEqual(facts.os.distro, '');
  assert.notEqual(facts.os.distro, os.type(), 'the distribution, not just the kernel name');
  assert.equal(facts.kernel, os.release());
  assert.equal(facts.arch, os.arch());
  assert.notEqual(facts.cpu.model, '');
  assert.equal(facts.cpu.cores, os.availableParallelism());
  assert.ok(facts.cpu.physicalCores >= 1);
  assert.equal(facts.memoryBytes, os.totalmem());
  assert.ok(!facts.addresses.includes('127.0.0.1') && !facts.addresses.includes('::1'));
});

test('a probe that throws or hangs is replaced by node:os values by the deadline', async () => {
  const probe: HostProbe = {
    os: () => Promise.reject(new Error('no lsb_release here')),
    cpu: () => new Promise(() => {}),
  };
  const started = performance.now();
  const facts = await collectHostFacts({ timeoutMs: 100, probe });
  const elapsed = performance.now() - started;
  assert.ok(elapsed >= 90 && elapsed < 1000, `took ${elapsed} ms`);
  assert.deepEqual(facts.fallbacks, ['cpu', 'os']);
  assert.equal(facts.hostname, os.hostname());
  assert.notEqual(facts.os.distro, '');
  assert.equal(facts.cpu.model, os.cpus()[0]?.model.trim());
});

test('only the failing probe falls back', async () => {
  const probe: HostProbe = {
    os: async () => ({ distro: 'Testix', release: '7', codename: 'seven' }),
    cpu: () => Promise.reject(new Error('boom')),
  };
  const facts = await collectHostFacts({ probe });
  assert.deepEqual(facts.os, { platform: os.platform(), distro: 'Testix', release: '7', codename: 'seven' });
  assert.deepEqual(facts.fallbacks, ['cpu']);
});

test('hostAddresses drops internal and link-local addresses and lists IPv4 first', () => {
  const info = (address: string, family: 'IPv4' | 'IPv6', internal = false): os.NetworkInterfaceInfo =>
    ({ address, family, internal, netmask: '', mac: '', cidr: null, ...(family === 'IPv6' ? { scopeid: 0 } : {}) }) as os.NetworkInterfaceInfo;
  const addresses = hostAddresses({
    lo: [info('127.0.0.1', 'IPv4', true), info('::1', 'IPv6', true)],
    eth0: [info('fd00::2', 'IPv6'), info('fe80::1', 'IPv6'), info('192.0.2.2', 'IPv4')],
    eth1: [info('169.254.3.4', 'IPv4'), info('10.0.0.5', 'IPv4'), info('192.0.2.2', 'IPv4')],
  });
  assert.deepEqual(addresses, ['192.0.2.2', '10.0.0.5', 'fd00::2']);
});

test('parseOsRelease reads quoted and bare values', () => {
  const text = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n# comment\n';
  assert.deepEqual(parseOsRelease(text), { distro: 'Debian GNU/Linux', release: '12', codename: 'bookworm' });
});
