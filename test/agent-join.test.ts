/**
 * An agent against a real proxy: joined with a token and the CA pin, serving through
 * its reverse tunnel, announcing itself, and coming back after the cluster restarts.
 * First in-process (the proxy's registry dials the agent), then as real processes
 * (`postern start`, `postern join`, `pctl`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { startTestProxy } from '../cluster/proxy/testdata/proxy-fixture.ts';
import { parseConfig } from '../cluster/common/config.ts';
import { silentLogger } from '../cluster/common/logger.ts';
import { TunnelRejectedError } from '../protocols/tunnel/index.ts';
import { startAgent } from '../agent/agent.ts';
import { echoService } from '../agent/services/echo-service.ts';
import { runCli } from './fixtures/auth.ts';
import { freePort, startDaemon, stopAll, type DaemonProcess } from './fixtures/processes.ts';

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function readAll(stream: Duplex): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

test('in process: an agent joins through the real proxy, its tunnel carries echo byte-exact, unknown services are refused', async () => {
  const t = await startTestProxy();
  const dir = mkdtempSync(path.join(tmpdir(), 'postern-agent-e2e-'));
  try {
    const { secret } = await t.auth.server.deps.tokens.add({ roles: ['node'], ttlMs: 600_000, labels: { env: 'e2e' }, singleUse: true });
    const pin = (await t.auth.connectAs(['admin']).client.status({})).authorities.find((a) => a.kind === 'host')?.tlsPin ?? '';
    const config = parseConfig(`data_dir: ${dir}\nagent:\n  proxy_addr: ${t.proxy.address}\n  token: ${secret}\n  ca_pin: ${pin}\n  node_name: e2e-1\n  ssh: { enabled: false }\n`, path.join(dir, 'postern.yaml'));
    const agent = await startAgent(config, { logger: silentLogger(), services: { echo: echoService } });
    try {
      const hostId = agent.identity.current.host_id ?? '';
      await until('the tunnel at the proxy', () => t.proxy.registry.has(hostId));
      const payload = randomBytes(2 * 1024 * 1024 + 3);
      const stream = await t.proxy.registry.dial(hostId, 'echo', 'alice');
      const echoed = readAll(stream);
      stream.end(payload);
      assert.ok((await echoed).equals(payload), 'echo through the real proxy differs');
      await assert.rejects(t.proxy.registry.dial(hostId, 'ssh', 'alice'), (error: unknown) => {
        assert.ok(error instanceof TunnelRejectedError);
        assert.deepEqual([error.status, error.reason], [404, 'this agent does not serve ssh; it serves echo']);
        return true;
      });
      await until('ready', () => agent.readiness().ready);
      const node = (await t.auth.server.deps.presence.list('node')).find((p) => p.host_id === hostId);
      assert.deepEqual([node?.node_name, node?.labels, node?.services], ['e2e-1', { env: 'e2e' }, ['echo']]);
    } finally {
      await agent.stop();
    }
  } finally {
    await t.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('processes: postern join, postern start with the agent, pctl nodes ls, and reconnection after the cluster restarts', async () => {
  const proxyPort = await freePort();
  const authPort = await freePort();
  const agentDir = mkdtempSync(path.join(tmpdir(), 'postern-agent-proc-'));
  let cluster: DaemonProcess | undefined;
  let agent: DaemonProcess | undefined;
  try {
    cluster = await startDaemon('cluster', (dir, diag) =>
      `data_dir: ${dir}\ndiag_addr: ${diag}\nauth:\n  cluster_name: e2e\n  listen_addr: 127.0.0.1:${authPort}\nproxy:\n  listen_addr: 127.0.0.1:${proxyPort}\n  public_addr: 127.0.0.1:${proxyPort}\n`);
    await cluster.waitReady();
    const pctl = async (args: string[]) => {
      const result = await runCli(['pctl', ...args, '-c', cluster!.configPath]);
      assert.equal(result.code, 0, result.stderr);
      return JSON.parse(result.stdout) as Record<string, unknown>;
    };
    const pin = String((await pctl(['status', '--format', 'json'])).ca_pin);
    const token = String((await pctl(['tokens', 'add', '--type=node', '--labels', 'env=e2e', '--format', 'json'])).token);

    const wrongPin = await runCli(['postern', 'join', '--proxy', `127.0.0.1:${proxyPort}`, '--token', token, '--ca-pin', `sha256:${'1'.repeat(64)}`, '--data-dir', agentDir]);
    assert.equal(wrongPin.code, 1);
    assert.match(wrongPin.stderr, /^postern: the cluster CA of 127\.0\.0\.1:\d+ does not match --ca-pin/);
    const joined = await runCli(['postern', 'join', '--proxy', `127.0.0.1:${proxyPort}`, '--token', token, '--ca-pin', pin, '--name', 'proc-node', '--data-dir', agentDir]);
    assert.equal(joined.code, 0, joined.stderr);
    assert.match(joined.stdout, /^joined cluster e2e as node proc-node \(host id [0-9a-f-]{36}\)\n/);

    agent = await startDaemon('agent', (_dir, diag) => `data_dir: ${agentDir}\ndiag_addr: ${diag}\nagent:\n  proxy_addr: 127.0.0.1:${proxyPort}\n  labels: { team: infra }\n`, { dir: agentDir });
    await agent.waitReady();
    const nodes = async () => (await runCli(['pctl', 'nodes', 'ls', '--format', 'json', '-c', cluster!.configPath]));
    const listed = JSON.parse((await nodes()).stdout) as Array<{ node_name: string; online: boolean; labels: Record<string, string> }>;
    assert.deepEqual(listed.map((n) => [n.node_name, n.online, n.labels]), [['proc-node', true, { env: 'e2e', team: 'infra' }]]);

    await cluster.kill();
    await until('the agent to notice', async () => !(await fetch(`http://127.0.0.1:${agent!.diagPort}/readyz`)).ok, 30_000);
    await cluster.restart();
    await cluster.waitReady();
    const back = Date.now();
    await agent.waitReady(10_000);
    const elapsed = Date.now() - back;
    assert.ok(elapsed < 5_000, `the agent was ready again ${elapsed} ms after the cluster`);
    const readyz = (await (await fetch(`http://127.0.0.1:${agent.diagPort}/readyz`)).json()) as { components: Record<string, { ready: boolean }> };
    assert.deepEqual(readyz.components.agent, { ready: true });

    // A restarted agent keeps its identity: the same node, and no token in its config.
    await agent.restart();
    await agent.waitReady();
    const after = JSON.parse((await nodes()).stdout) as Array<{ host_id: string; node_name: string }>;
    assert.deepEqual(after.map((n) => n.node_name), ['proc-node']);
    assert.match(agent.logs(), new RegExp(`"hostId":"${after[0]?.host_id}"[^\n]*"msg":"agent started"`));
  } finally {
    await stopAll([agent, cluster]);
    rmSync(agentDir, { recursive: true, force: true });
  }
});
