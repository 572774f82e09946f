/**
 * Installing the single binary on a host: `postern install systemd` units checked by
 * `systemd-analyze verify`, and installers/install.sh into a DESTDIR against a real
 * cluster (started from source): the tree, modes and unit it writes, the join it
 * does first (a wrong CA pin leaves nothing behind), an upgrade that keeps the host
 * identity, and uninstall with and without --purge. A corrupted identity file makes
 * the installed binary say which file and what to do.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repoRoot } from './fixtures/auth.ts';
import { ensureBinary } from './fixtures/binary.ts';
import { startClusterProcess, type ClusterProcess } from './fixtures/cluster-process.ts';
import { stopAll } from './fixtures/processes.ts';
import { loadConfig } from '../cluster/common/config.ts';

const installSh = path.join(repoRoot, 'installers', 'install.sh');
const hasSystemdAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;
const noSystemdAnalyze = hasSystemdAnalyze ? false : 'systemd-analyze is missing (Debian package systemd)';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv = { PATH: process.env.PATH }): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { env, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

/** Every path under `root`, relative, sorted. */
function tree(root: string): string[] {
  if (!existsSync(root)) return [];
  return (readdirSync(root, { recursive: true }) as string[]).sort();
}

const mode = (file: string) => (statSync(file).mode & 0o777).toString(8);

/** `systemd-analyze verify` output for a unit file: empty when the unit is clean. */
function verify(unitFile: string): string {
  const result = spawnSync('systemd-analyze', ['verify', unitFile], { encoding: 'utf8' });
  return `${result.status === 0 ? '' : `exit ${result.status}\n`}${result.stdout}${result.stderr}`.trim();
}

describe('postern install systemd', () => {
  let binary = '';
  let scratch = '';
  before(async () => {
    binary = await ensureBinary();
    scratch = mkdtempSync(path.join(tmpdir(), 'postern-units-'));
  });
  after(() => rmSync(scratch, { recursive: true, force: true }));

  test('the agent unit runs as root without session-breaking sandboxing; the cluster unit is sandboxed as user postern', async () => {
    const agent = await run(binary, ['install', 'systemd']);
    assert.equal(agent.code, 0, agent.stderr);
    for (const line of ['ExecStart=/usr/local/bin/postern start -c /etc/postern/agent.yaml', 'Restart=on-failure', 'StateDirectory=postern', 'CacheDirectory=postern', 'LimitNOFILE=65536', 'KillMode=mixed', 'ExecReload=/bin/kill -HUP $MAINPID', 'WantedBy=multi-user.target']) {
      assert.ok(agent.stdout.split('\n').includes(line), `agent unit lacks ${line}:\n${agent.stdout}`);
    }
    for (const absent of [/^User=/m, /^NoNewPrivileges=/m, /^ProtectSystem=/m, /^ProtectHome=/m, /^PrivateTmp=/m]) assert.doesNotMatch(agent.stdout, absent);
    const cluster = await run(binary, ['install', 'systemd', '--role', 'cluster']);
    assert.equal(cluster.code, 0, cluster.stderr);
    for (const line of ['ExecStart=/usr/local/bin/postern start -c /etc/postern/cluster.yaml', 'User=postern', 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateTmp=yes', 'StateDirectory=postern-cluster', 'CacheDirectory=postern-cluster', 'LimitNOFILE=65536']) {
      assert.ok(cluster.stdout.split('\n').includes(line), `cluster unit lacks ${line}:\n${cluster.stdout}`);
    }
  });

  test('--write into a folder names the unit; systemd-analyze verify finds nothing to say', { skip: noSystemdAnalyze }, async () => {
    for (const [role, unit] of [['agent', 'postern-agent.service'], ['cluster', 'postern.service']] as const) {
      const written = await run(binary, ['install', 'systemd', '--role', role, '--bin', binary, '--write', scratch]);
      assert.equal(written.code, 0, written.stderr);
      assert.match(written.stderr, new RegExp(`wrote ${path.join(scratch, unit)}; next: systemctl daemon-reload`));
      assert.equal(mode(path.join(scratch, unit)), '644');
      assert.equal(verify(path.join(scratch, unit)), '', `${unit} has verify findings`);
    }
    // The check can fail: a unit whose binary does not exist is reported.
    const broken = path.join(scratch, 'broken.service');
    writeFileSync(broken, readFileSync(path.join(scratch, 'postern.service'), 'utf8').replace(binary, '/nonexistent/postern'));
    assert.match(verify(broken), /\/nonexistent\/postern is not executable/);
  });

  test('bad input is refused with the reason', async () => {
    const role = await run(binary, ['install', 'systemd', '--role', 'db']);
    assert.equal(role.code, 2);
    assert.match(role.stderr, /--role db: expected agent .* or cluster/);
    const relative = await run(binary, ['install', 'systemd', '--bin', 'bin/postern']);
    assert.equal(relative.code, 2);
    assert.match(relative.stderr, /--bin bin\/postern: systemd needs an absolute path/);
  });
});

describe('installers/install.sh', () => {
  let binary = '';
  let cluster: ClusterProcess | undefined;
  let scratch = '';
  const token = async () => {
    const added = await cluster!.pctl(['tokens', 'add', '--type=node', '--format', 'json']);
    assert.equal(added.code, 0, added.stderr);
    return (JSON.parse(added.stdout) as { token: string }).token;
  };
  const install = (destdir: string, args: string[]) => run('sh', [installSh, '--binary', binary, '--destdir', destdir, ...args]);
  const hostId = (destdir: string) => (JSON.parse(readFileSync(path.join(destdir, 'var/lib/postern/agent-identity.json'), 'utf8')) as { host_id: string }).host_id;

  before(async () => {
    [binary, cluster] = await Promise.all([ensureBinary(), startClusterProcess('inst')]);
    scratch = mkdtempSync(path.join(tmpdir(), 'postern-install-'));
  });
  after(async () => {
    await stopAll([cluster?.daemon]);
    rmSync(scratch, { recursive: true, force: true });
  });

  test('installs into a DESTDIR: binary, links, config, joined identity, unit; skips systemctl and says so', async () => {
    const root = path.join(scratch, 'fresh');
    const result = await install(root, ['--token', await token(), '--proxy', cluster!.proxy, '--ca-pin', cluster!.pin, '--labels', 'env=prod', '--name', 'web-7']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /joined cluster inst as node web-7/);
    assert.match(result.stdout, /not running systemctl: installing into .*; on the host run: systemctl daemon-reload && systemctl enable --now postern-agent/);
    assert.deepEqual(tree(root), [
      'etc', 'etc/postern', 'etc/postern/agent.yaml', 'etc/systemd', 'etc/systemd/system', 'etc/systemd/system/postern-agent.service',
      'usr', 'usr/local', 'usr/local/bin', 'usr/local/bin/pctl', 'usr/local/bin/postern', 'usr/local/bin/psh',
      'var', 'var/cache', 'var/cache/postern', 'var/lib', 'var/lib/postern', 'var/lib/postern/agent-identity.json', 'var/lib/postern/agent-join.json',
    ]);
    assert.equal(readlinkSync(path.join(root, 'usr/local/bin/psh')), 'postern');
    assert.ok(lstatSync(path.join(root, 'usr/local/bin/pctl')).isSymbolicLink());
    assert.ok(readFileSync(path.join(root, 'usr/local/bin/postern')).equals(readFileSync(binary)));
    assert.equal(mode(path.join(root, 'etc/postern')), '750');
    assert.equal(mode(path.join(root, 'etc/postern/agent.yaml')), '640');
    assert.equal(mode(path.join(root, 'var/lib/postern')), '700');
    assert.equal(mode(path.join(root, 'var/cache/postern')), '700');
    assert.equal(mode(path.join(root, 'var/lib/postern/agent-identity.json')), '600');
    const config = await loadConfig(path.join(root, 'etc/postern/agent.yaml'));
    assert.equal(config.data_dir, '/var/lib/postern');
    assert.equal(config.agent?.proxy_addr, cluster!.proxy);
    assert.equal(config.agent?.node_name, 'web-7');
    assert.deepEqual(config.agent?.labels, { env: 'prod' });
    assert.equal(config.agent?.token, '', 'the token is spent by the join and must not stay in the config');
    const unit = readFileSync(path.join(root, 'etc/systemd/system/postern-agent.service'), 'utf8');
    assert.match(unit, /^ExecStart=\/usr\/local\/bin\/postern start -c \/etc\/postern\/agent\.yaml$/m);
    if (hasSystemdAnalyze) {
      // The unit names the binary where it will be on the host; verify it against the one in DESTDIR.
      const copy = path.join(scratch, 'postern-agent.service');
      writeFileSync(copy, unit.replace('/usr/local/bin/postern', path.join(root, 'usr/local/bin/postern')));
      assert.equal(verify(copy), '');
    }
  });

  test('--role cluster: cluster config and the sandboxed unit; joining options are refused for it', async () => {
    const root = path.join(scratch, 'cluster');
    const result = await install(root, ['--role', 'cluster', '--cluster-name', 'example.com']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /not creating user postern: installing into/);
    assert.deepEqual(tree(root).filter((p) => !statSync(path.join(root, p)).isDirectory()), [
      'etc/postern/cluster.yaml', 'etc/systemd/system/postern.service', 'usr/local/bin/pctl', 'usr/local/bin/postern', 'usr/local/bin/psh',
    ]);
    const config = await loadConfig(path.join(root, 'etc/postern/cluster.yaml'));
    assert.equal(config.auth?.cluster_name, 'example.com');
    assert.equal(config.data_dir, '/var/lib/postern-cluster');
    assert.match(readFileSync(path.join(root, 'etc/systemd/system/postern.service'), 'utf8'), /^User=postern$/m);
    const refused = await install(path.join(scratch, 'cluster-join'), ['--role', 'cluster', '--token', 't', '--proxy', 'p:1', '--ca-pin', 'x']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /--token, --proxy and --ca-pin join agents; a cluster host needs none/);
  });

  test('a wrong CA pin fails cleanly and leaves nothing behind', async () => {
    const root = path.join(scratch, 'wrong-pin');
    const wrong = `sha256:${'0'.repeat(64)}`;
    const result = await install(root, ['--token', await token(), '--proxy', cluster!.proxy, '--ca-pin', wrong]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /pin/i);
    assert.match(result.stderr, /joining the cluster failed; nothing was installed/);
    assert.deepEqual(tree(root), []);
  });

  test('missing join arguments and unknown options are refused before anything is written', async () => {
    const root = path.join(scratch, 'refused');
    const partial = await install(root, ['--token', 'x']);
    assert.equal(partial.code, 1);
    assert.match(partial.stderr, /joining needs all of --token, --proxy and --ca-pin/);
    const unknown = await install(root, ['--colour']);
    assert.match(unknown.stderr, /unknown option --colour/);
    assert.deepEqual(tree(root), []);
  });

  test('re-running upgrades in place and keeps the identity; uninstall keeps state unless --purge', async () => {
    const root = path.join(scratch, 'upgrade');
    const first = await install(root, ['--token', await token(), '--proxy', cluster!.proxy, '--ca-pin', cluster!.pin]);
    assert.equal(first.code, 0, first.stderr);
    const id = hostId(root);
    const config = readFileSync(path.join(root, 'etc/postern/agent.yaml'));
    const inode = statSync(path.join(root, 'usr/local/bin/postern')).ino;

    const again = await install(root, ['--token', await token(), '--proxy', cluster!.proxy, '--ca-pin', cluster!.pin]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /already joined .*; keeping that identity and ignoring --token/);
    assert.match(again.stdout, /keeping \/etc\/postern\/agent\.yaml/);
    assert.equal(hostId(root), id);
    assert.ok(readFileSync(path.join(root, 'etc/postern/agent.yaml')).equals(config));
    assert.notEqual(statSync(path.join(root, 'usr/local/bin/postern')).ino, inode, 'the binary is replaced by rename, not rewritten in place');

    const removed = await install(root, ['--uninstall']);
    assert.equal(removed.code, 0, removed.stderr);
    assert.match(removed.stdout, /kept \/etc\/postern\/agent\.yaml and \/var\/lib\/postern/);
    assert.deepEqual(tree(root).filter((p) => !statSync(path.join(root, p)).isDirectory()), [
      'etc/postern/agent.yaml', 'var/lib/postern/agent-identity.json', 'var/lib/postern/agent-join.json',
    ]);
    const back = await install(root, []);
    assert.equal(back.code, 0, back.stderr);
    assert.equal(hostId(root), id, 'installing again after uninstall keeps the identity');

    const purged = await install(root, ['--uninstall', '--purge']);
    assert.equal(purged.code, 0, purged.stderr);
    assert.deepEqual(tree(root).filter((p) => !statSync(path.join(root, p)).isDirectory()), []);
  });

  test('a corrupted identity file: the installed binary names the file and the fix', async () => {
    const root = path.join(scratch, 'corrupt');
    const state = path.join(root, 'state');
    const first = await run(binary, ['join', '--proxy', cluster!.proxy, `--token=${await token()}`, '--ca-pin', cluster!.pin, '--data-dir', state]);
    assert.equal(first.code, 0, first.stderr);
    const identity = path.join(state, 'agent-identity.json');
    writeFileSync(identity, readFileSync(identity, 'utf8').slice(0, 200));
    const config = path.join(root, 'agent.yaml');
    writeFileSync(config, `data_dir: ${state}\ndiag_addr: ""\nagent:\n  proxy_addr: ${cluster!.proxy}\n`);
    const started = await run(binary, ['start', '-c', config], {});
    assert.equal(started.code, 1, started.stderr);
    assert.match(started.stderr, new RegExp(`identity file ${identity} is corrupted \\(not JSON\\); move it aside and re-join with a token: postern join --proxy HOST:PORT --token TOKEN --ca-pin sha256:\\.\\.\\. --data-dir ${state}`));
  });
});
