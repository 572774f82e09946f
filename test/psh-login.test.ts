/**
 * A person's first day, with real processes: an admin adds them with pctl, they set a
 * password with psh signup (the CA pinned on first contact), log in with psh, see who
 * they are, and log out. Refusals: a wrong pin before anything is sent, a wrong
 * password, and a second use of the sign-up token.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { stopAll } from './fixtures/processes.ts';
import { inviteUser, pshIn, startClusterProcess, type ClusterProcess } from './fixtures/cluster-process.ts';

describe('psh signup, login, status and logout against a running cluster', () => {
  let cluster: ClusterProcess | undefined;
  let home = '';
  let proxy = '';
  let pin = '';
  let token = '';
  const password = 'a long and happy password';
  const psh = (args: string[], input?: string) => pshIn(home)(args, input);
  const pctl = (args: string[]) => cluster!.pctl(args);

  before(async () => {
    home = mkdtempSync(path.join(tmpdir(), 'postern-home-'));
    cluster = await startClusterProcess('people');
    ({ proxy, pin } = cluster);
    token = await inviteUser(cluster, 'carol', 'access', 'carol,ubuntu');
  });
  after(async () => {
    await stopAll([cluster?.daemon]);
    rmSync(home, { recursive: true, force: true });
  });

  test('a wrong CA pin is refused before the token is sent', async () => {
    const result = await psh(['signup', '--proxy', proxy, '--token', token, '--ca-pin', `sha256:${'2'.repeat(64)}`], `${password}\n${password}\n`);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /does not match --ca-pin/);
  });

  test('signup sets the password once; the token cannot be used again', async () => {
    const first = await psh(['signup', '--proxy', proxy, '--token', token, '--ca-pin', pin], `${password}\n${password}\n`);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /Password set for carol/);
    const again = await psh(['signup', '--proxy', proxy, '--token', token, '--ca-pin', pin], `${password}\n${password}\n`);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /token/i);
  });

  test('login stores 0600 keys and certificates; status shows roles, logins and expiry; logout removes them', async () => {
    const wrong = await psh(['login', '--proxy', proxy, '--user', 'carol', '--ca-pin', pin], 'not the password\n');
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /login as carol failed/);

    // The CA pinned at signup is remembered: no --ca-pin needed any more.
    const login = await psh(['login', '--proxy', proxy, '--user', 'carol', '--ttl', '1h'], `${password}\n`);
    assert.equal(login.code, 0, login.stderr);
    assert.match(login.stdout, /Logged in as carol/);
    const profiles = path.join(home, 'profiles');
    const [profileDir] = readdirSync(profiles);
    for (const file of readdirSync(path.join(profiles, profileDir ?? ''))) {
      assert.equal(statSync(path.join(profiles, profileDir ?? '', file)).mode & 0o777, 0o600, `${file} must be 0600`);
    }
    const listing = execFileSync('ssh-keygen', ['-L', '-f', path.join(profiles, profileDir ?? '', 'id_ed25519-cert.pub')], { encoding: 'utf8' });
    assert.match(listing, /Principals: \n\s+carol\n\s+ubuntu/);

    const status = await psh(['status', '--format', 'json']);
    assert.equal(status.code, 0, status.stderr);
    const info = JSON.parse(status.stdout) as { user: string; roles: string[]; logins: string[]; expires: string; valid: boolean };
    assert.equal(info.user, 'carol');
    assert.deepEqual(info.roles, ['access']);
    assert.deepEqual(info.logins, ['carol', 'ubuntu']);
    const lifetime = Date.parse(info.expires) - Date.now();
    assert.ok(lifetime > 55 * 60_000 && lifetime <= 60 * 60_000, `asked for 1h, got ${lifetime} ms`);

    const audit = await pctl(['audit', 'search', '--type', 'user.login', '--user', 'carol', '--format', 'json']);
    assert.equal((JSON.parse(audit.stdout) as unknown[]).length, 1);

    const logout = await psh(['logout']);
    assert.equal(logout.code, 0);
    assert.deepEqual(readdirSync(profiles), []);
    const forgotten = await psh(['login', '--proxy', proxy, '--user', 'carol'], `${password}\n`);
    assert.equal(forgotten.code, 1);
    assert.match(forgotten.stderr, /has not met .* before; pass --ca-pin/);
    const after = await psh(['status']);
    assert.equal(after.code, 1);
    assert.match(after.stderr, /not logged in/);
  });
});
