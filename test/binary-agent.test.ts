/**
 * The agent as a host runs it: the single binary (dist/postern, not the sources),
 * started with an empty environment, joins a cluster started from source with a
 * token and the CA pin, and serves SSH through its tunnel to unmodified OpenSSH
 * (`ssh -F <psh config>`, host certificates checked).
 *
 * A second binary agent runs the way the systemd unit confines it: as an
 * unprivileged account, with a read-only root and only its state and cache
 * directories writable. A private mount namespace (`unshare --mount`) gives it a
 * read-only bind of `/`, a copy of /etc/passwd that knows its account (so nothing
 * on the host changes) and `CACHE_DIRECTORY` as systemd sets it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, appendFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startDaemon, stopAll, type DaemonCommand, type DaemonProcess } from './fixtures/processes.ts';
import { pshIn, signUpAndLogIn, startClusterProcess, type ClusterProcess } from './fixtures/cluster-process.ts';
import { ensureBinary } from './fixtures/binary.ts';

const sandboxUid = 64_123;
const sandboxLogin = 'pagent';

/** Why the confined agent cannot run here, or undefined when it can. */
function sandboxUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root to make a mount namespace and switch to an unprivileged uid';
  const probe = spawnSync('unshare', ['--mount', '--propagation', 'private', 'true'], { encoding: 'utf8' });
  if (probe.error) return 'unshare is missing (Debian package util-linux)';
  if (probe.status !== 0) return `unshare --mount is not permitted here (${probe.stderr.trim()}); a container without CAP_SYS_ADMIN`;
  return undefined;
}

/** `postern start` of the binary, as root, with no environment at all. */
function binaryCommand(binary: string): DaemonCommand {
  return (configPath) => ({ file: binary, args: ['start', '-c', configPath], env: {} });
}

/**
 * The binary as uid 64123 in a mount namespace: `/` read-only, `root/state` and
 * `root/cache` (bound onto themselves before `/` is remounted) writable.
 */
function confinedCommand(binary: string, root: string): DaemonCommand {
  const passwd = path.join(root, 'passwd');
  const state = path.join(root, 'state');
  const cache = path.join(root, 'cache');
  return (configPath) => {
    const script = [
      `mount --bind ${passwd} /etc/passwd`,
      `mount --bind ${state} ${state}`,
      `mount --bind ${cache} ${cache}`,
      'mount -o remount,bind,ro /',
      `exec setpriv --reuid=${sandboxUid} --regid=${sandboxUid} --clear-groups -- env -i CACHE_DIRECTORY=${cache} ${binary} start -c ${configPath}`,
    ].join(' && ');
    return { file: 'unshare', args: ['--mount', '--propagation', 'private', 'sh', '-c', script], env: {} };
  };
}

describe('the single binary as an agent', () => {
  let cluster: ClusterProcess | undefined;
  let agent: DaemonProcess | undefined;
  let confined: DaemonProcess | undefined;
  let binary = '';
  let home = '';
  let sshConfig = '';
  let sandbox = '';
  const sandboxSkip = sandboxUnavailable();
  const ssh = (args: string[]) =>
    spawnSync('ssh', ['-F', sshConfig, '-o', 'BatchMode=yes', ...args], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, POSTERN_HOME: home } });
  const nodeToken = async () => {
    const added = await cluster!.pctl(['tokens', 'add', '--type=node', '--format', 'json']);
    assert.equal(added.code, 0, added.stderr);
    return (JSON.parse(added.stdout) as { token: string }).token;
  };
  const agentConfig = (name: string, token: string, dataDir?: string) => (dir: string, diag: string) =>
    `data_dir: ${dataDir ?? dir}\ndiag_addr: ${diag}\nagent:\n  node_name: ${name}\n  proxy_addr: ${cluster!.proxy}\n  token: ${token}\n  ca_pin: ${cluster!.pin}\n`;

  before(async () => {
    [binary, cluster] = await Promise.all([ensureBinary(), startClusterProcess('bin')]);
    home = mkdtempSync(path.join(tmpdir(), 'postern-bin-home-'));
    agent = await startDaemon('bin-agent', agentConfig('bin-root', await nodeToken()), { command: binaryCommand(binary) });
    await agent.waitReady();
    await signUpAndLogIn(cluster, home, { name: 'erin', roles: 'access', logins: `root,${sandboxLogin}`, password: 'a long and happy password' });
    const config = await pshIn(home)(['config']);
    assert.equal(config.code, 0, config.stderr);
    sshConfig = path.join(home, 'ssh_config');
    writeFileSync(sshConfig, config.stdout);
  });
  after(async () => {
    await stopAll([agent, confined, cluster?.daemon]);
    rmSync(home, { recursive: true, force: true });
    if (sandbox) rmSync(sandbox, { recursive: true, force: true });
  });

  test('env -i dist/postern start joins and serves ssh to OpenSSH through the proxy', () => {
    const run = ssh(['root@bin-root', 'echo "ran as $(id -un)"; exit 3']);
    assert.equal(run.status, 3, `${run.stderr}\n${agent?.logs().slice(-2000)}`);
    assert.equal(run.stdout, 'ran as root\n');
    assert.match(agent!.logs(), /"msg":"joined the cluster"/);
  });

  test('pty sessions work in the binary (node-pty from the SEA asset)', () => {
    const run = ssh(['-tt', 'root@bin-root', 'tty']);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /^\/dev\/pts\/\d+/);
  });

  test('confined: unprivileged account, read-only root, writable state and cache only', { skip: sandboxSkip }, async () => {
    sandbox = mkdtempSync(path.join(tmpdir(), 'postern-confined-'));
    chmodSync(sandbox, 0o755);
    const state = path.join(sandbox, 'state');
    const cache = path.join(sandbox, 'cache');
    for (const dir of [state, cache]) {
      mkdirSync(dir, { mode: 0o700 });
      chownSync(dir, sandboxUid, sandboxUid);
    }
    copyFileSync('/etc/passwd', path.join(sandbox, 'passwd'));
    appendFileSync(path.join(sandbox, 'passwd'), `${sandboxLogin}:x:${sandboxUid}:${sandboxUid}:postern agent:${state}:/bin/sh\n`);
    confined = await startDaemon('bin-confined', agentConfig('bin-confined', await nodeToken(), state), { dir: sandbox, command: confinedCommand(binary, sandbox) });
    await confined.waitReady();

    const command = [`${sandboxLogin}@bin-confined`, 'id -u; touch /etc/postern-probe 2>&1; touch ~/written && echo home-writable'];
    let run = ssh(command);
    // Ready means the tunnel is up; the SSH service reads the user CAs right after (it retries after 1 s when that races the tunnel).
    // Seen once: the proxy did not list the node yet ("no node is named") though the agent was ready.
    for (let i = 0; i < 80 && run.status === 255 && /Permission denied|no node is named/.test(run.stderr); i++) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      run = ssh(command);
    }
    assert.equal(run.status, 0, `${run.stderr}\n${confined.logs().slice(-2000)}`);
    const [uid, readOnly, writable] = run.stdout.trim().split('\n');
    assert.equal(uid, String(sandboxUid));
    assert.match(readOnly ?? '', /Read-only file system/);
    assert.equal(writable, 'home-writable');
    // The addon was unpacked into CACHE_DIRECTORY, the identity into the state folder.
    assert.ok(readdirSync(cache).some((file) => /^pty-[0-9a-f]{16}\.node$/.test(file)), readdirSync(cache).join(', '));
    assert.ok(readdirSync(state).includes('agent-identity.json'), readdirSync(state).join(', '));
    // A login the agent's account cannot become is refused, not attempted.
    const other = ssh(['root@bin-confined', 'true']);
    assert.equal(other.status, 255);
  });
});
