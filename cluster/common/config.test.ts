import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from './config.ts';

test('a minimal auth config gets defaults', () => {
  const config = parseConfig('auth:\n  cluster_name: alpha\n', '/etc/postern.yaml');
  assert.equal(config.auth?.listen_addr, '127.0.0.1:3025');
  assert.equal(config.auth?.backend.type, 'sqlite');
  assert.equal(config.data_dir, '/var/lib/postern');
});

test('relative data_dir resolves against the config file folder', () => {
  const config = parseConfig('data_dir: state\nauth:\n  cluster_name: alpha\n', '/srv/p/postern.yaml');
  assert.equal(config.data_dir, '/srv/p/state');
});

test('an unknown field names the file and the path', () => {
  assert.throws(() => parseConfig('auth:\n  cluster_name: a\n  listen_adr: x\n', 'p.yaml'), /p\.yaml: auth: Unrecognized key: "listen_adr"/);
});

test('a wrong type names the field and the expectation', () => {
  assert.throws(() => parseConfig('auth:\n  cluster_name: a\n  listen_addr: 3025\n', 'p.yaml'), /p\.yaml: auth\.listen_addr: .*string/);
  assert.throws(() => parseConfig('agent:\n  ca_pin: md5:abc\n', 'p.yaml'), /agent\.ca_pin: expected sha256:/);
});

test('YAML syntax errors give line and column', () => {
  assert.throws(() => parseConfig('auth:\n  cluster_name: [a\n', 'p.yaml'), /p\.yaml: line \d+, column \d+/);
});

test('a config that runs nothing is refused', () => {
  assert.throws(() => parseConfig('log:\n  level: info\n', 'p.yaml'), /nothing to run/);
});
