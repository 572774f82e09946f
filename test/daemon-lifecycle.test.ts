/**
 * `postern start` signals with real processes: a cluster and an agent process, a user
 * logged in with psh, and OpenSSH sessions through the proxy.
 *
 * - SIGTERM drains: a session that is running finishes and keeps its output and exit
 *   code, a new one is refused, then the agent exits 0. Past the drain timeout the
 *   open session is closed and the agent still exits 0.
 * - SIGHUP reloads: new labels reach the cluster and a new log level applies; an
 *   invalid config is refused with a log line and the old one stays in effect; a
 *   change that needs a restart is named and not applied.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startDaemon, stopAll, type DaemonProcess } from './fixtures/processes.ts';
import { cliPath } from './fixtures/auth.ts';
import { pshIn, signUpAndLogIn, startClusterProcess, type ClusterProcess } from './fixtures/cluster-process.ts';

describe('postern start: drain on SIGTERM, reload on SIGHUP', () => {
  let cluster: ClusterProcess | undefined;
  const agents: DaemonProcess[] = [];
  let home = '';
  let sshConfig = '';
  let token = '';
  const sshArgs = (args: string[]) => ['-F', sshConfig, '-o', 'BatchMode=yes', ...args];
  const sshEnv = () => ({ ...process.env, POSTERN_HOME: home });

  /** An agent from source with `POSTERN_DRAIN_TIMEOUT`; `extra` goes into its agent section. */
  async function startAgent(name: string, drain: string, extra = '', level = 'info'): Promise<DaemonProcess> {
    const agent = await startDaemon(name, (dir, diag) =>
      `data_dir: ${dir}\ndiag_addr: ${diag}\nlog:\n  level: ${level}\nagent:\n  node_name: ${name}\n  proxy_addr: ${cluster!.proxy}\n  token: ${token}\n  ca_pin: ${cluster!.pin}\n${extra}`, {
      command: (configPath) => ({ file: process.execPath, args: [cliPath, 'start', '-c', configPath], env: { ...process.env, POSTERN_DRAIN_TIMEOUT: drain } }),
    });
    agents.push(agent);
    await agent.waitReady();
    return agent;
  }

  /** Starts `ssh root@node command` and resolves once it printed `ready` (the session is open). */
  async function openSession(node: string, command: string) {
    // Ready means the tunnel is up; the node record and the SSH service's user CAs follow within a moment.
    for (let attempt = 0; ; attempt++) {
      const child = spawn('ssh', sshArgs([`root@${node}`, command]), { env: sshEnv() });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
      while (!stdout.includes('ready') && child.exitCode === null) await new Promise((resolve) => setTimeout(resolve, 50));
      if (stdout.includes('ready')) return { exited, output: () => ({ stdout, stderr }) };
      if (attempt >= 20 || !/Permission denied|no node is named/.test(stderr)) throw new Error(`ssh exited ${child.exitCode} before the session was up: ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  async function waitForLog(agent: DaemonProcess, pattern: RegExp, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(agent.logs())) {
      if (Date.now() > deadline) throw new Error(`no log line matching ${pattern}:\n${agent.logs().slice(-3000)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async function nodeLabels(name: string): Promise<Record<string, string> | undefined> {
    const listed = await cluster!.pctl(['nodes', 'ls', '--format', 'json']);
    assert.equal(listed.code, 0, listed.stderr);
    return (JSON.parse(listed.stdout) as Array<{ node_name: string; labels: Record<string, string> }>).find((n) => n.node_name === name)?.labels;
  }

  before(async () => {
    home = mkdtempSync(path.join(tmpdir(), 'postern-lifecycle-'));
    cluster = await startClusterProcess('life');
    const added = await cluster.pctl(['tokens', 'add', '--type=node', '--format', 'json']);
    token = (JSON.parse(added.stdout) as { token: string }).token;
    await signUpAndLogIn(cluster, home, { name: 'erin', roles: 'access', logins: 'root', password: 'a long and happy password' });
    const config = await pshIn(home)(['config']);
    assert.equal(config.code, 0, config.stderr);
    sshConfig = path.join(home, 'ssh_config');
    writeFileSync(sshConfig, config.stdout);
  });
  after(async () => {
    await stopAll([...agents, cluster?.daemon]);
    rmSync(home, { recursive: true, force: true });
  });

  test('SIGTERM: the open session finishes, a new one is refused, then the agent exits 0', async () => {
    const agent = await startAgent('drain-1', '20s');
    const session = await openSession('drain-1', 'echo ready; sleep 2; echo finished; exit 4');
    agent.child.kill('SIGTERM');
    await waitForLog(agent, /new sessions are refused; draining open ones/);
    const refused = spawnSync('ssh', sshArgs(['root@drain-1', 'true']), { encoding: 'utf8', env: sshEnv(), timeout: 15_000 });
    assert.equal(refused.status, 255);
    assert.match(refused.stderr, /shutting down/);
    const [code] = await session.exited;
    assert.equal(code, 4, session.output().stderr);
    assert.equal(session.output().stdout, 'ready\nfinished\n');
    const [agentCode] = (await once(agent.child, 'exit')) as [number | null];
    assert.equal(agentCode, 0, agent.logs().slice(-2000));
    assert.match(agent.logs(), /"msg":"drained: no open sessions"/);
  });

  test('SIGTERM past the drain timeout closes what is left and still exits 0', async () => {
    const agent = await startAgent('drain-2', '1s');
    const session = await openSession('drain-2', 'echo ready; sleep 60');
    const started = Date.now();
    agent.child.kill('SIGTERM');
    const [agentCode] = (await once(agent.child, 'exit')) as [number | null];
    assert.equal(agentCode, 0);
    assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
    assert.match(agent.logs(), /"open":1,"msg":"drain deadline passed; closing 1 open session\(s\)"/);
    const [code] = await session.exited;
    assert.notEqual(code, 0, 'the cut session does not report success');
  });

  test('SIGHUP applies labels and log level, refuses an invalid config, names changes that need a restart', async () => {
    const agent = await startAgent('reload-1', '1s', '  labels: { env: dev }\n', 'warn');
    const config = readFileSync(agent.configPath, 'utf8');
    for (let i = 0; i < 50 && (await nodeLabels('reload-1'))?.env !== 'dev'; i++) await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal((await nodeLabels('reload-1'))?.env, 'dev');

    writeFileSync(agent.configPath, config.replace('level: warn', 'level: info').replace('{ env: dev }', '{ env: staging, tier: web }'));
    agent.child.kill('SIGHUP');
    // Logged at info, so it only shows when the new level applied.
    await waitForLog(agent, /"msg":"config reloaded"/);
    let labels: Record<string, string> | undefined;
    for (let i = 0; i < 100 && (labels = await nodeLabels('reload-1'))?.env !== 'staging'; i++) await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(labels?.env, 'staging');
    assert.equal(labels?.tier, 'web');

    writeFileSync(agent.configPath, config.replace('level: warn', 'level: info').replace('{ env: dev }', '{ env: broken').concat('  bogus_field: 1\n'));
    agent.child.kill('SIGHUP');
    await waitForLog(agent, /"msg":"config reload refused: the new config does not load; keeping the running config"/);
    assert.match(agent.logs(), new RegExp(`"config":"${agent.configPath}"`));
    assert.equal(agent.child.exitCode, null, 'still running');
    assert.equal((await nodeLabels('reload-1'))?.env, 'staging');

    writeFileSync(agent.configPath, config.replace('level: warn', 'level: info').replace('{ env: dev }', '{ env: staging, tier: web }').replace(/node_name: reload-1/, 'node_name: renamed'));
    agent.child.kill('SIGHUP');
    await waitForLog(agent, /config changes that need a restart were not applied: agent\.node_name/);
    const still = spawnSync('ssh', sshArgs(['root@reload-1', 'echo still-serving']), { encoding: 'utf8', env: sshEnv(), timeout: 15_000 });
    assert.equal(still.stdout, 'still-serving\n', still.stderr);
  });
});
