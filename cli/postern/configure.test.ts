/** `postern configure`: the files it writes validate against the config schema and carry what was asked. */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runCli } from '../../test/fixtures/auth.ts';
import { loadConfig } from '../../cluster/common/config.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'postern-configure-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const pin = `sha256:${'ab'.repeat(32)}`;

test('--roles ssh with join settings writes a ready agent config (0600) that validates', async () => {
  const file = path.join(dir, 'agent.yaml');
  const result = await runCli(['postern', 'configure', '--roles', 'ssh', '--proxy', 'proxy.example.com:3080', '--token', 'tok-1', '--ca-pin', pin, '--labels', 'env=prod,rack=r2', '--name', 'db-3', '--data-dir', '/srv/postern', '-o', file]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, new RegExp(`wrote ${file}; start with: postern start -c ${file}`));
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const config = await loadConfig(file);
  assert.equal(config.data_dir, '/srv/postern');
  assert.equal(config.diag_addr, '127.0.0.1:3001');
  assert.equal(config.auth, undefined);
  assert.equal(config.proxy, undefined);
  const { enabled, node_name, proxy_addr, token, ca_pin, labels, ssh, db, apps } = config.agent ?? {};
  assert.deepEqual(
    { enabled, node_name, proxy_addr, token, ca_pin, labels, ssh, databases: db?.databases, apps },
    { enabled: true, node_name: 'db-3', proxy_addr: 'proxy.example.com:3080', token: 'tok-1', ca_pin: pin, labels: { env: 'prod', rack: 'r2' }, ssh: { enabled: true, labels: {} }, databases: [], apps: [] },
  );
});

test('the default (auth,proxy) writes a cluster config that validates', async () => {
  const result = await runCli(['postern', 'configure', '--cluster-name', 'example']);
  assert.equal(result.code, 0, result.stderr);
  const file = path.join(dir, 'cluster.yaml');
  writeFileSync(file, result.stdout);
  const config = await loadConfig(file);
  assert.equal(config.auth?.cluster_name, 'example');
  assert.equal(config.proxy?.listen_addr, '0.0.0.0:3080');
  assert.equal(config.agent, undefined);
  assert.equal(config.diag_addr, '127.0.0.1:3000');
});

test('--roles ssh,db adds the database service section, which validates and serves nothing until databases are listed', async () => {
  const file = path.join(dir, 'db-agent.yaml');
  const result = await runCli(['postern', 'configure', '--roles', 'ssh,db', '--proxy', 'proxy.example.com:3080', '--token', 'tok-2', '--ca-pin', pin, '-o', file]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(readFileSync(file, 'utf8'), /# - name: orders\n\s+#\s+protocol: postgres/);
  const config = await loadConfig(file);
  assert.deepEqual(config.agent?.db, { databases: [], resources: [], poll_interval: '30s' });
  assert.equal(config.agent?.ssh.enabled, true);
});

test('bad input is refused with the reason and writes nothing', async () => {
  const file = path.join(dir, 'refused.yaml');
  const cases: Array<[string[], RegExp]> = [
    [['--roles', 'ssh,web'], /--roles: unknown role "web"; expected auth, proxy, agent, ssh, db/],
    [['--roles', 'ssh', '--ca-pin', 'sha256:abc'], /--ca-pin sha256:abc: expected sha256:<64 hex digits>/],
    [['--roles', 'ssh', '--proxy', 'proxy.example.com'], /--proxy proxy.example.com: expected host:port/],
  ];
  for (const [args, reason] of cases) {
    const result = await runCli(['postern', 'configure', ...args, '-o', file]);
    assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, reason);
    assert.throws(() => statSync(file), /ENOENT/);
  }
  writeFileSync(file, 'keep me\n');
  const exists = await runCli(['postern', 'configure', '--roles', 'ssh', '-o', file]);
  assert.equal(exists.code, 2);
  assert.match(exists.stderr, /refused\.yaml exists; not overwriting it/);
  assert.equal(readFileSync(file, 'utf8'), 'keep me\n');
});
