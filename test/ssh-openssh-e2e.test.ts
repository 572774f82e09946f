/**
 * The whole path with real programs: a cluster process (auth + proxy), an agent
 * process joined with a token and the CA pin, a user who signs up and logs in with
 * psh, and unmodified OpenSSH (`ssh -F <psh config>`) reaching the agent's host
 * through the proxy with host-certificate checking on. Exit codes pass through, and a
 * login the user's roles do not grant is refused and audited.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, startDaemon, stopAll, type DaemonProcess } from './fixtures/processes.ts';
import { runCli } from './fixtures/auth.ts';

describe('OpenSSH through Postern', () => {
  let cluster: DaemonProcess | undefined;
  let agent: DaemonProcess | undefined;
  let home = '';
  let sshConfig = '';
  const password = 'a long and happy password';
  const psh = (args: string[], input?: string) => runCli(['psh', ...args], { env: { POSTERN_HOME: home }, input });
  const pctl = (args: string[]) => runCli(['pctl', ...args, '-c', cluster?.configPath ?? '']);
  // The ProxyCommand (psh) reads the profile from POSTERN_HOME, inherited through ssh.
  const ssh = (args: string[]) => spawnSync('ssh', ['-F', sshConfig, '-o', 'BatchMode=yes', ...args], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, POSTERN_HOME: home } });

  before(async () => {
    home = mkdtempSync(path.join(tmpdir(), 'postern-ssh-home-'));
    const [authPort, proxyPort] = [await freePort(), await freePort()];
    const proxy = `127.0.0.1:${proxyPort}`;
    cluster = await startDaemon('cluster', (dir, diag) =>
      `data_dir: ${dir}\ndiag_addr: ${diag}\nauth:\n  cluster_name: e2e\n  listen_addr: 127.0.0.1:${authPort}\nproxy:\n  listen_addr: ${proxy}\n  public_addr: ${proxy}\n`);
    await cluster.waitReady();
    const pin = (JSON.parse((await pctl(['status', '--format', 'json'])).stdout) as { ca_pin: string }).ca_pin;
    const token = (JSON.parse((await pctl(['tokens', 'add', '--type=node', '--format', 'json'])).stdout) as { token: string }).token;
    agent = await startDaemon('agent', (dir, diag) =>
      `data_dir: ${dir}\ndiag_addr: ${diag}\nagent:\n  node_name: web-1\n  proxy_addr: ${proxy}\n  token: ${token}\n  ca_pin: ${pin}\n  labels: { env: prod }\n`);
    await agent.waitReady();
    const added = await pctl(['users', 'add', 'erin', '--roles', 'access', '--logins', 'root', '--proxy', proxy]);
    const signup = /--token (\S+)/.exec(added.stdout)?.[1] ?? '';
    assert.equal((await psh(['signup', '--proxy', proxy, '--token', signup, '--ca-pin', pin], `${password}\n${password}\n`)).code, 0);
    const login = await psh(['login', '--proxy', proxy, '--user', 'erin'], `${password}\n`);
    assert.equal(login.code, 0, login.stderr);
    const config = await psh(['config']);
    assert.equal(config.code, 0, config.stderr);
    sshConfig = path.join(home, 'ssh_config');
    writeFileSync(sshConfig, config.stdout);
  });
  after(async () => {
    await stopAll([agent, cluster]);
    rmSync(home, { recursive: true, force: true });
  });

  test('ssh runs a command on the node with StrictHostKeyChecking=yes and passes the exit code through', () => {
    const run = ssh(['root@web-1', 'echo hi from $(hostname); exit 7']);
    assert.equal(run.status, 7, `${run.stderr}\n${agent?.logs().slice(-2000)}`);
    assert.match(run.stdout, /^hi from /);
  });

  test('psh ssh does the same with its own generated config', async () => {
    const run = await psh(['ssh', 'root@web-1', 'echo', 'psh-ok']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.trim(), 'psh-ok');
  });

  test('scp copies a 50 MB file there and back byte-exact (sftp subsystem through the tunnel)', () => {
    const source = path.join(home, 'payload.bin');
    writeFileSync(source, randomBytes(50 * 1024 * 1024));
    const remote = `/tmp/postern-e2e-${process.pid}.bin`;
    const back = path.join(home, 'back.bin');
    const scp = (args: string[]) => spawnSync('scp', ['-F', sshConfig, '-o', 'BatchMode=yes', '-q', ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, POSTERN_HOME: home } });
    try {
      const up = scp([source, `root@web-1:${remote}`]);
      assert.equal(up.status, 0, up.stderr);
      const down = scp([`root@web-1:${remote}`, back]);
      assert.equal(down.status, 0, down.stderr);
      assert.ok(readFileSync(source).equals(readFileSync(back)), 'the file came back different');
    } finally {
      rmSync(remote, { force: true });
    }
  });

  test('a login the roles do not grant is refused and the refusal is audited', async () => {
    const run = ssh(['nobody@web-1', 'true']);
    assert.equal(run.status, 255);
    // The agent forwards audit events from a background queue: give it a moment.
    let events: Array<{ reason?: string; fields?: { login?: string } }> = [];
    for (let i = 0; i < 50 && !events.some((e) => e.fields?.login === 'nobody'); i++) {
      const audit = await pctl(['audit', 'search', '--type', 'access.denied', '--user', 'erin', '--format', 'json']);
      events = JSON.parse(audit.stdout) as typeof events;
      if (!events.some((e) => e.fields?.login === 'nobody')) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const denial = events.find((e) => e.fields?.login === 'nobody');
    assert.ok(denial, JSON.stringify(events));
    assert.match(denial.reason ?? '', /nobody/);
  });

  test('an unknown node gets the proxy reason', async () => {
    const run = ssh(['root@no-such-node', 'true']);
    assert.equal(run.status, 255);
    assert.match(run.stderr, /no node is named "no-such-node"/);
  });
});
