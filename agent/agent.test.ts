import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { useFakeCluster } from '../test/fixtures/fake-proxy.ts';
import { IdentityFileError } from '../cluster/api/identity-file.ts';
import { parseConfig, type PosternConfig } from '../cluster/common/config.ts';
import { silentLogger } from '../cluster/common/logger.ts';
import { BadInputError } from '../protocols/errors.ts';
import type { HostFacts } from './inventory/host-facts.ts';
import { echoService } from './services/echo-service.ts';
import { startAgent, type RunningAgent, type StartAgentOptions } from './agent.ts';
import { agentIdentityPath } from './identity/agent-identity.ts';

const facts: HostFacts = {
  hostname: 'test-host', os: { platform: 'linux', distro: 'Debian', release: '12', codename: 'bookworm' }, kernel: '6.1', arch: 'x64',
  cpu: { model: 'test', physicalCores: 1, cores: 2 }, memoryBytes: 1024, addresses: ['10.0.0.5'], fallbacks: [],
};

const cluster = useFakeCluster('postern-agent-');

const dataDir = () => cluster.dataDir();

function config(dir: string, agentYaml: string): PosternConfig {
  return parseConfig(`data_dir: ${dir}\ndiag_addr: ""\nagent:\n${agentYaml}`, path.join(dir, 'postern.yaml'));
}

function start(cfg: PosternConfig, extra: Partial<StartAgentOptions> = {}): Promise<RunningAgent> {
  return startAgent(cfg, { logger: silentLogger(), facts, services: { echo: echoService }, ...extra });
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function echo(payload: string): Promise<string> {
  const stream = await (await cluster.proxy.waitForTunnel()).dial('echo', 'alice');
  stream.end(payload);
  let out = '';
  for await (const chunk of stream) out += String(chunk);
  return out;
}

test('start joins with the configured token, serves through the tunnel and announces itself; a restart reuses the identity', async () => {
  const dir = dataDir();
  const { secret } = await cluster.auth.server.deps.tokens.add({ roles: ['node'], ttlMs: 600_000, labels: { env: 'prod', os: 'token-says' }, singleUse: true });
  const checks = new Map<string, () => { ready: boolean; reason?: string }>();
  const agentYaml = [
    `  proxy_addr: ${cluster.proxy.address}`, `  ca_pin: ${cluster.proxy.caPin}`, '  node_name: web-1',
    '  labels: { team: payments, env: staging }',
    '  command_labels:', '    os: { command: [uname, -s], period: 1h }', '    arch: { command: [uname, -m], period: 1h }', '',
  ].join('\n');
  const agent = await start(config(dir, `  token: ${secret}\n${agentYaml}`), { diag: { addReadinessCheck: (name, check) => void checks.set(name, check) } });
  const hostId = agent.identity.current.host_id;
  try {
    assert.equal(await echo('through the tunnel'), 'through the tunnel');
    await until('the heartbeat', async () => (await cluster.auth.server.deps.presence.list('node')).some((p) => p.host_id === hostId && p.labels.arch !== undefined));
    const presence = (await cluster.auth.server.deps.presence.list('node')).find((p) => p.host_id === hostId);
    assert.equal(presence?.node_name, 'web-1');
    assert.deepEqual(presence?.services, ['echo', 'ssh'], 'the SSH service runs by default');
    // Token labels win over the config's; a command label the token sets is not run.
    const { arch, ...labels } = presence?.labels ?? {};
    assert.deepEqual(labels, { env: 'prod', os: 'token-says', team: 'payments' });
    assert.match(arch ?? '', /^\w+$/, 'the command label ran');
    await until('ready', () => agent.readiness().ready);
    assert.deepEqual(checks.get('agent')?.(), { ready: true });
  } finally {
    await agent.stop();
  }
  assert.match(agent.readiness().reason ?? '', /^tunnels: stopped$/);

  const joinsBefore = cluster.proxy.joinRequests;
  const again = await start(config(dir, agentYaml));
  try {
    assert.equal(again.identity.current.host_id, hostId, 'the same host, no token needed');
    assert.equal(await echo('again'), 'again');
    assert.equal(cluster.proxy.joinRequests, joinsBefore, 'no second join');
  } finally {
    await again.stop();
  }
});

test('without an identity or a token the agent says how to join', async () => {
  const dir = dataDir();
  await assert.rejects(start(config(dir, `  proxy_addr: ${cluster.proxy.address}\n`)), (error: unknown) => {
    assert.ok(error instanceof BadInputError);
    assert.equal(error.message, `cannot start the agent: ${agentIdentityPath(dir)} does not exist and agent.token, agent.ca_pin and agent.proxy_addr are not all set; join first: postern join --proxy HOST:PORT --token TOKEN --ca-pin sha256:... --data-dir ${dir}`);
    return true;
  });
});

test('a corrupted identity file stops the start with the file and the fix, even with a token configured', async () => {
  const dir = dataDir();
  writeFileSync(agentIdentityPath(dir), 'garbage');
  const joinsBefore = cluster.proxy.joinRequests;
  await assert.rejects(start(config(dir, `  proxy_addr: ${cluster.proxy.address}\n  token: abc\n  ca_pin: ${cluster.proxy.caPin}\n`)), (error: unknown) => {
    assert.ok(error instanceof IdentityFileError);
    assert.match(error.message, new RegExp(`^identity file ${agentIdentityPath(dir)} is corrupted \\(not JSON\\); move it aside and re-join with a token: postern join --proxy`));
    return true;
  });
  assert.equal(cluster.proxy.joinRequests, joinsBefore);
});
