import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { runCli } from '../../test/fixtures/auth.ts';
import { useFakeCluster } from '../../test/fixtures/fake-proxy.ts';

const cluster = useFakeCluster('postern-cli-join-');

const dataDir = () => cluster.dataDir();

async function token(singleUse = false): Promise<string> {
  return (await cluster.auth.server.deps.tokens.add({ roles: ['node'], ttlMs: 600_000, labels: { env: 'prod' }, singleUse })).secret;
}

function join(args: string[]) {
  return runCli(['postern', 'join', ...args]);
}

test('postern join writes the identity and says what happened', async () => {
  const dir = dataDir();
  const result = await join(['--proxy', cluster.proxy.address, '--token', await token(), '--ca-pin', cluster.proxy.caPin, '--name', 'web-1', '--labels', 'rack=r1', '--data-dir', dir]);
  assert.equal(result.stderr, '');
  assert.equal(result.code, 0);
  const lines = result.stdout.trim().split('\n');
  assert.match(lines[0] ?? '', /^joined cluster test as node web-1 \(host id [0-9a-f-]{36}\)$/);
  assert.match(lines[1] ?? '', new RegExp(`^identity written to ${path.join(dir, 'agent-identity.json')}; certificate valid until \\d{4}-\\d\\d-\\d\\dT.*Z \\(the agent renews it while it runs\\)$`));
  assert.equal(lines[2], 'labels from the token: env=prod');
  assert.equal(lines[3], 'labels given here: rack=r1');
  assert.equal(statSync(path.join(dir, 'agent-identity.json')).mode & 0o777, 0o600);
});

test('refusals are one line and exit 1: wrong pin, used token, unreachable proxy', async () => {
  const wrongPin = await join(['--proxy', cluster.proxy.address, '--token', await token(), '--ca-pin', `sha256:${'0'.repeat(64)}`, '--data-dir', dataDir()]);
  assert.equal(wrongPin.code, 1);
  assert.match(wrongPin.stderr, /^postern: the cluster CA of 127\.0\.0\.1:\d+ does not match --ca-pin sha256:0{64}; check the pin with the cluster admin \(pctl status\) — if it is right, something is intercepting this connection\n$/);

  const secret = await token(true);
  assert.equal((await join(['--proxy', cluster.proxy.address, '--token', secret, '--ca-pin', cluster.proxy.caPin, '--data-dir', dataDir()])).code, 0);
  const used = await join(['--proxy', cluster.proxy.address, '--token', secret, '--ca-pin', cluster.proxy.caPin, '--data-dir', dataDir()]);
  assert.equal(used.code, 1);
  assert.match(used.stderr, /^postern: the cluster refused the join: join token \w+ is single-use and was already used .*; ask an admin for a new one: pctl tokens add --type=node\n$/);

  const closed = net.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const unreachable = await join(['--proxy', `127.0.0.1:${port}`, '--token', 'x', '--ca-pin', cluster.proxy.caPin, '--data-dir', dataDir()]);
  assert.equal(unreachable.code, 1);
  assert.match(unreachable.stderr, new RegExp(`^postern: cannot reach the proxy at 127\\.0\\.0\\.1:${port}: connect ECONNREFUSED [\\d.:]+; check the address and that the proxy is running\\n$`));
});

test('a missing option is a usage error', async () => {
  const result = await join(['--proxy', cluster.proxy.address, '--ca-pin', cluster.proxy.caPin]);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /^postern join: --token is required\n/);
});
