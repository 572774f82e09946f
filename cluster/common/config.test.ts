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

test('agent.db.databases: defaults, relative files and refusals', () => {
  const config = parseConfig([
    'agent:',
    '  db:',
    '    databases:',
    '      - { name: orders, protocol: postgres, uri: "127.0.0.1:5432", labels: { env: dev }, tls: { ca_file: ca.pem } }',
    '      - { name: shop, protocol: mysql, uri: "db:3306", auth: { type: password, user: app, password_file: pw } }',
    '',
  ].join('\n'), '/srv/p/postern.yaml');
  const [orders, shop] = config.agent!.db.databases;
  assert.deepEqual(orders!.auth, { type: 'cert' });
  assert.equal(orders!.tls.mode, 'verify-full');
  assert.equal(orders!.tls.ca_file, '/srv/p/ca.pem');
  assert.equal(shop!.auth.type === 'password' && shop!.auth.password_file, '/srv/p/pw');
  assert.throws(() => parseConfig('agent:\n  db:\n    databases:\n      - { name: a, protocol: oracle, uri: "h:1" }\n', 'p.yaml'), /agent\.db\.databases\.0\.protocol/);
  assert.throws(() => parseConfig('agent:\n  db:\n    databases:\n      - { name: a, protocol: mysql, uri: "h:1", auth: { type: password } }\n', 'p.yaml'), /exactly one of password_file and password_env/);
  assert.throws(() => parseConfig('agent:\n  db:\n    databases:\n      - { name: a, protocol: mysql, uri: "h:1" }\n      - { name: a, protocol: mysql, uri: "h:2" }\n', 'p.yaml'), /database "a" is listed twice/);
});
