/**
 * The whole path with real programs: a cluster process (auth + proxy), an agent
 * process joined with a token and the CA pin, a user who signs up and logs in with
 * psh, and unmodified OpenSSH (`ssh -F <psh config>`) reaching the agent's host
 * through the proxy with host-certificate checking on. Exit codes pass through, and a
 * login the user's roles do not grant is refused and audited. The proxy's SSH jump
 * server serves plain `ssh -J` with host-certificate checking on both hops, and refuses
 * keys without a certificate, certificates of another CA and sessions on the proxy.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startDaemon, stopAll, type DaemonProcess } from './fixtures/processes.ts';
import { pshIn, signUpAndLogIn, startClusterProcess, type ClusterProcess } from './fixtures/cluster-process.ts';

describe('OpenSSH through Postern', () => {
  let cluster: ClusterProcess | undefined;
  let agent: DaemonProcess | undefined;
  let home = '';
  let sshConfig = '';
  const psh = (args: string[], input?: string) => pshIn(home)(args, input);
  const pctl = (args: string[]) => cluster!.pctl(args);
  // The ProxyCommand (psh) reads the profile from POSTERN_HOME, inherited through ssh.
  const ssh = (args: string[]) => spawnSync('ssh', ['-F', sshConfig, '-o', 'BatchMode=yes', ...args], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, POSTERN_HOME: home } });

  before(async () => {
    home = mkdtempSync(path.join(tmpdir(), 'postern-ssh-home-'));
    cluster = await startClusterProcess('e2e');
    const { proxy, pin } = cluster;
    const token = (JSON.parse((await pctl(['tokens', 'add', '--type=node', '--format', 'json'])).stdout) as { token: string }).token;
    agent = await startDaemon('agent', (dir, diag) =>
      `data_dir: ${dir}\ndiag_addr: ${diag}\nagent:\n  node_name: web-1\n  proxy_addr: ${proxy}\n  token: ${token}\n  ca_pin: ${pin}\n  labels: { env: prod }\n`);
    await agent.waitReady();
    await signUpAndLogIn(cluster, home, { name: 'erin', roles: 'access', logins: 'root', password: 'a long and happy password' });
    const config = await psh(['config']);
    assert.equal(config.code, 0, config.stderr);
    sshConfig = path.join(home, 'ssh_config');
    writeFileSync(sshConfig, config.stdout);
  });
  after(async () => {
    await stopAll([agent, cluster?.daemon]);
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
  /** A config with the profile's key, certificate and known_hosts and no way through the proxy: -J gives that. */
  const keysOnlyConfig = (extra: string[] = []) => {
    const lines = readFileSync(sshConfig, 'utf8').split('\n').filter((l) => !/ProxyCommand/.test(l));
    const file = path.join(home, `keys_config_${randomBytes(4).toString('hex')}`);
    writeFileSync(file, [...lines, ...extra].join('\n'));
    return file;
  };
  const plain = (args: string[]) => spawnSync('ssh', ['-o', 'BatchMode=yes', ...args], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, POSTERN_HOME: home } });

  test('plain ssh -J through the proxy reaches the node, checking both host certificates', () => {
    const config = keysOnlyConfig();
    const run = plain(['-F', config, '-J', `erin@${cluster!.proxy}`, 'root@web-1', 'echo jumped to $(hostname)']);
    assert.equal(run.status, 0, `${run.stderr}\n${cluster?.daemon.logs().slice(-2000)}`);
    assert.match(run.stdout, /^jumped to /);
  });

  test('psh config --jump gives a config plain ssh uses with ProxyJump', async () => {
    const printed = await psh(['config', '--jump']);
    assert.equal(printed.code, 0, printed.stderr);
    assert.match(printed.stdout, new RegExp(`ProxyJump erin@${cluster!.proxy.replace(/\./g, '\\.')}`));
    const file = path.join(home, 'jump_config');
    writeFileSync(file, printed.stdout);
    const run = plain(['-F', file, 'root@web-1', 'exit 5']);
    assert.equal(run.status, 5, run.stderr);
  });

  test('the jump server refuses an unknown node with the proxy reason', () => {
    const run = plain(['-F', keysOnlyConfig(), '-J', `erin@${cluster!.proxy}`, 'root@nowhere-node', 'true']);
    assert.equal(run.status, 255);
    assert.match(run.stderr, /no node is named "nowhere-node"/);
  });

  test('a session on the proxy itself is refused with a message', () => {
    const [host, port] = cluster!.proxy.split(':');
    const run = plain(['-F', keysOnlyConfig(), '-p', port!, `erin@${host}`, 'whoami']);
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, /this is the Postern proxy: it does not run shells or commands; reach a node through it with ssh -J/);
  });

  test('the jump server refuses a key without a certificate and a certificate from another CA, auditing the latter', async () => {
    const dir = path.join(home, 'other-ca');
    spawnSync('mkdir', ['-p', dir]);
    const keygen = (args: string[]) => assert.equal(spawnSync('ssh-keygen', ['-q', ...args], { encoding: 'utf8' }).status, 0);
    keygen(['-t', 'ed25519', '-N', '', '-f', path.join(dir, 'ca')]);
    keygen(['-t', 'ed25519', '-N', '', '-f', path.join(dir, 'id')]);
    const knownHosts = readFileSync(sshConfig, 'utf8').match(/UserKnownHostsFile (\S+)/)![1]!;
    const base = ['-o', 'IdentitiesOnly=yes', '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'StrictHostKeyChecking=yes', '-F', '/dev/null'];
    const [host, port] = cluster!.proxy.split(':');
    const bare = plain([...base, '-i', path.join(dir, 'id'), '-p', port!, `erin@${host}`, 'true']);
    assert.equal(bare.status, 255);
    assert.match(bare.stderr, /Permission denied \(publickey\)/);
    keygen(['-s', path.join(dir, 'ca'), '-I', 'forged', '-n', 'root,erin', '-V', '-5m:+1h', path.join(dir, 'id.pub')]);
    const forged = plain([...base, '-i', path.join(dir, 'id'), '-o', `CertificateFile=${path.join(dir, 'id-cert.pub')}`, '-p', port!, `erin@${host}`, 'true']);
    assert.equal(forged.status, 255);
    assert.match(forged.stderr, /Permission denied \(publickey\)/);
    let denial: { reason?: string } | undefined;
    for (let i = 0; i < 50 && !denial; i++) {
      const audit = await pctl(['audit', 'search', '--type', 'access.denied', '--format', 'json']);
      denial = (JSON.parse(audit.stdout) as Array<{ reason?: string; fields?: { via?: string } }>).find((e) => e.fields?.via === 'jump' && /forged/.test(e.reason ?? ''));
      if (!denial) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.ok(denial, 'the forged certificate is audited');
    assert.match(denial.reason ?? '', /ssh-jump-auth/);
  });
  test('psh scp copies with the profile config, passing scp options through', async () => {
    const source = path.join(home, 'small.txt');
    writeFileSync(source, 'psh scp payload\n');
    const remote = `/tmp/postern-pshscp-${process.pid}.txt`;
    const back = path.join(home, 'small-back.txt');
    try {
      const up = await psh(['scp', '-q', '-p', source, `root@web-1:${remote}`]);
      assert.equal(up.code, 0, up.stderr);
      const down = await psh(['scp', '-q', `root@web-1:${remote}`, back]);
      assert.equal(down.code, 0, down.stderr);
      assert.equal(readFileSync(back, 'utf8'), 'psh scp payload\n');
    } finally {
      rmSync(remote, { force: true });
    }
    const local = await psh(['scp', source, back]);
    assert.notEqual(local.code, 0);
    assert.match(local.stderr, /no argument names a node: write remote paths as \[login@\]NODE:PATH/);
  });
});
