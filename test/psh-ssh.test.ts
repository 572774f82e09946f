/**
 * psh's way to nodes with real processes: `psh ls` through the auth pass-through,
 * `psh config` for OpenSSH, and `psh proxy ssh` refusing an unknown node with the
 * proxy's reason and exit code 1.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stopAll } from './fixtures/processes.ts';
import { pshIn, signUpAndLogIn, startClusterProcess, type ClusterProcess } from './fixtures/cluster-process.ts';
import { cliPath } from './fixtures/auth.ts';

describe('psh ls, config and proxy ssh against a running cluster', () => {
  let cluster: ClusterProcess | undefined;
  let home = '';
  let proxy = '';
  const psh = (args: string[], input?: string) => pshIn(home)(args, input);
  const pctl = (args: string[]) => cluster!.pctl(args);

  before(async () => {
    home = mkdtempSync(path.join(tmpdir(), 'postern-home-'));
    cluster = await startClusterProcess('people');
    proxy = cluster.proxy;
    await signUpAndLogIn(cluster, home, { name: 'dave', roles: 'access', logins: 'dave', password: 'a long and happy password' });
  });
  after(async () => {
    await stopAll([cluster?.daemon]);
    rmSync(home, { recursive: true, force: true });
  });

  test('psh ls lists nodes through the proxy as JSON', async () => {
    const listed = await psh(['ls', '--format', 'json']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.ok(Array.isArray(JSON.parse(listed.stdout)));
  });

  test('psh config prints a ProxyCommand block with the profile\'s files', async () => {
    const printed = await psh(['config', '--hosts', '*.lab']);
    assert.equal(printed.code, 0, printed.stderr);
    const dir = path.join(home, 'profiles', proxy.replace(/[^A-Za-z0-9.-]/g, '_'));
    assert.equal(printed.stdout.split('\n').filter((l) => !l.startsWith('#')).join('\n'), [
      'Host *.lab',
      `    ProxyCommand ${process.execPath} ${cliPath} psh proxy ssh --proxy ${proxy} %r@%h:%p`,
      `    IdentityFile ${dir}/id_ed25519`,
      `    CertificateFile ${dir}/id_ed25519-cert.pub`,
      `    UserKnownHostsFile ${dir}/known_hosts`,
      '    StrictHostKeyChecking yes',
      '    IdentitiesOnly yes',
      '',
    ].join('\n'));
  });

  test('psh proxy ssh prints the proxy\'s refusal and exits 1', async () => {
    const refused = await psh(['proxy', 'ssh', 'dave@nowhere:22']);
    assert.equal(refused.code, 1);
    assert.equal(refused.stderr, 'psh: no node is named "nowhere" or has that host id in cluster people; list nodes with psh ls\n');
    assert.equal(refused.stdout, '');
  });
});
