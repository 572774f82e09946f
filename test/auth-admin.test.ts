/**
 * The Auth Service as an administrator and its clients meet it: real `pctl` processes
 * against a running auth server, logins relayed the way a proxy relays them, joins
 * with tokens, the audit trail, and every refusal issue 2 lists.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, writeFileSync, rmSync, chmodSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startTestAuth, runCli, type TestAuth } from './fixtures/auth.ts';
import { startSshd, SkipError } from './fixtures/sshd.ts';
import { formatAuthorizedKey } from '../protocols/ssh/public-key.ts';
import { formatOpenSshPrivateKey } from '../protocols/ssh/private-key.ts';
import { connectAuth } from '../cluster/api/auth-client.ts';
import { PosternError } from '../protocols/errors.ts';
import { generate } from 'otplib';

const password = 'correct horse battery staple';

function clientKeys(): { ssh: KeyObject; sshLine: string; tlsKey: KeyObject; tlsPub: string } {
  const ssh = generateKeyPairSync('ed25519').privateKey;
  const tls = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { ssh, sshLine: formatAuthorizedKey(ssh), tlsKey: tls.privateKey, tlsPub: tls.publicKey.export({ type: 'spki', format: 'pem' }) as string };
}

async function rejects(promise: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof PosternError, `expected a PosternError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    assert.match(error.message, message);
    return true;
  });
}

describe('auth service administered with pctl', () => {
  let auth: TestAuth;
  let signupToken = '';

  before(async () => {
    auth = await startTestAuth({ clusterName: 'alpha' });
  });
  after(async () => auth.stop());

  test('pctl status shows the cluster and its CA pins', async () => {
    const result = await auth.pctl(['status', '--format', 'json']);
    assert.equal(result.code, 0, result.stderr);
    const status = JSON.parse(result.stdout) as { cluster: string; ca_pin: string; authorities: Array<{ kind: string }> };
    assert.equal(status.cluster, 'alpha');
    assert.match(status.ca_pin, /^sha256:[0-9a-f]{64}$/);
    assert.deepEqual(status.authorities.map((a) => a.kind), ['host', 'user', 'db-client', 'jwt']);
  });

  test('pctl users add prints a one-time sign-up token; the user completes sign-up and logs in', async () => {
    const added = await auth.pctl(['users', 'add', 'alice', '--roles', 'access,editor', '--logins', 'root,alice']);
    assert.equal(added.code, 0, added.stderr);
    signupToken = /^\s+(\S{30,})$/m.exec(added.stdout)?.[1] ?? '';
    assert.ok(signupToken, added.stdout);
    const listed = JSON.parse((await auth.pctl(['users', 'ls', '--format', 'json'])).stdout) as Array<{ metadata: { name: string }; status: { password_set: boolean } }>;
    assert.deepEqual(listed.map((u) => [u.metadata.name, u.status.password_set]), [['alice', false]]);

    const proxy = auth.connectAs(['proxy']).client;
    await proxy.completeSignup({ token: signupToken, password });
    await rejects(proxy.completeSignup({ token: signupToken, password }), 'PST_RESET_TOKEN_INVALID', /token/i);

    const keys = clientKeys();
    const certs = await proxy.login({ user: 'alice', password, sshPublicKey: keys.sshLine, tlsPublicKey: keys.tlsPub });
    assert.deepEqual(certs.roles, ['access', 'editor']);
    assert.deepEqual([...certs.logins].sort(), ['alice', 'root']);

    // The user's X.509 certificate is an API identity: alice (editor) may list roles herself.
    const asAlice = connectAuth(auth.server.address, {
      key_pem: keys.tlsKey.export({ type: 'pkcs8', format: 'pem' }) as string,
      cert_pem: certs.tlsCertificatePem,
      ca_pems: certs.tlsCaPems,
    });
    try {
      const status = await asAlice.client.status({});
      assert.match(status.caller, /^user alice \(roles access,editor\)$/);
      const roles = JSON.parse((await asAlice.client.getResources({ kind: 'roles', name: '' })).resourcesJson) as Array<{ metadata: { name: string } }>;
      assert.deepEqual(roles.map((r) => r.metadata.name), ['access', 'auditor', 'editor']);
    } finally {
      asAlice.close();
    }

    // ssh-keygen reads the SSH certificate: principals are the logins, our extensions ride along.
    const dir = mkdtempSync(path.join(tmpdir(), 'postern-cert-'));
    try {
      writeFileSync(path.join(dir, 'id-cert.pub'), certs.sshCertificate + '\n');
      const listing = execFileSync('ssh-keygen', ['-L', '-f', path.join(dir, 'id-cert.pub')], { encoding: 'utf8' });
      assert.match(listing, /Type: ssh-ed25519-cert-v01@openssh.com user certificate/);
      assert.match(listing, /Principals: \n\s+root\n\s+alice\n/);
      assert.match(listing, /roles@postern\.dev/);
      assert.match(listing, /permit-pty/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("OpenSSH's sshd trusting the exported user CA accepts a certificate from login", async (t) => {
    const exported = await auth.pctl(['auth', 'export', '--type', 'user']);
    assert.equal(exported.code, 0, exported.stderr);
    assert.match(exported.stdout, /^ssh-ed25519 AAAA/);
    let sshd;
    try {
      sshd = await startSshd({ trustedUserCAKeys: exported.stdout.trim().split('\n') });
    } catch (error) {
      if (error instanceof SkipError) return t.skip(error.message);
      throw error;
    }
    const dir = mkdtempSync(path.join(tmpdir(), 'postern-ssh-'));
    try {
      const keys = clientKeys();
      const certs = await auth.connectAs(['proxy']).client.login({ user: 'alice', password, sshPublicKey: keys.sshLine, tlsPublicKey: keys.tlsPub });
      const keyFile = path.join(dir, 'id');
      writeFileSync(keyFile, formatOpenSshPrivateKey(keys.ssh));
      chmodSync(keyFile, 0o600);
      writeFileSync(`${keyFile}-cert.pub`, certs.sshCertificate + '\n');
      const run = spawnSync('ssh', ['-F', '/dev/null', '-i', keyFile, '-o', `CertificateFile=${keyFile}-cert.pub`, '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes',
        '-o', 'StrictHostKeyChecking=no', '-o', `UserKnownHostsFile=${path.join(dir, 'kh')}`, '-p', String(sshd.port), 'root@127.0.0.1', 'echo', 'hi-from-sshd'], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(run.status, 0, `${run.stderr}\n${sshd.logs()}`);
      assert.equal(run.stdout.trim(), 'hi-from-sshd');
    } finally {
      await sshd.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a user enrols TOTP; from then on login needs the current code and a replayed code is refused', async () => {
    const proxy = auth.connectAs(['proxy']).client;
    const { totpUri } = await proxy.enrollTotp({ user: 'alice', password });
    const secret = new URL(totpUri).searchParams.get('secret') ?? '';
    assert.match(totpUri, /^otpauth:\/\/totp\//);
    await rejects(proxy.confirmTotp({ user: 'alice', password, code: '000000' }), 'PST_TOTP_INVALID', /one-time code for alice is wrong/);
    const code = await generate({ secret });
    await proxy.confirmTotp({ user: 'alice', password, code });
    const keys = clientKeys();
    await rejects(proxy.login({ user: 'alice', password, sshPublicKey: keys.sshLine, tlsPublicKey: keys.tlsPub }), 'PST_LOGIN_FAILED', /wrong one-time code/);
    // The code used to confirm cannot be used again (replay); the next step's code (within the ±1 window) works.
    await rejects(proxy.login({ user: 'alice', password, totpCode: code, sshPublicKey: keys.sshLine, tlsPublicKey: keys.tlsPub }), 'PST_LOGIN_FAILED', /failed/);
    const nextCode = await generate({ secret, epoch: Math.floor(Date.now() / 1000) + 30 });
    const certs = await proxy.login({ user: 'alice', password, totpCode: nextCode, sshPublicKey: keys.sshLine, tlsPublicKey: keys.tlsPub });
    assert.equal(certs.username, 'alice');
    const audit = await auth.pctl(['audit', 'search', '--type', 'user.mfa.add', '--format', 'json']);
    assert.equal((JSON.parse(audit.stdout) as unknown[]).length, 1);
  });

  test('wrong passwords count towards lockout; the account locks and the audit log says why', async () => {
    await auth.pctl(['users', 'add', 'bob', '--roles', 'access']);
    const proxy = auth.connectAs(['proxy']).client;
    const keys = clientKeys();
    for (let i = 0; i < 4; i++) {
      await rejects(proxy.login({ user: 'bob', password: 'not the password', sshPublicKey: keys.sshLine, tlsPublicKey: keys.tlsPub }), 'PST_LOGIN_FAILED', /login as bob failed: unknown user, wrong password/);
    }
    // The fifth failure locks the account and says so; while locked even the right password is refused.
    await rejects(proxy.login({ user: 'bob', password: 'not the password', sshPublicKey: keys.sshLine, tlsPublicKey: keys.tlsPub }), 'PST_ACCOUNT_LOCKED', /account bob is locked until .* after 5 failed logins; wait or ask an admin: pctl users reset bob/);
    await rejects(proxy.login({ user: 'bob', password, sshPublicKey: keys.sshLine, tlsPublicKey: keys.tlsPub }), 'PST_ACCOUNT_LOCKED', /locked/);
    const audit = await auth.pctl(['audit', 'search', '--type', 'user.login.failed', '--user', 'bob', '--format', 'jsonl']);
    const events = audit.stdout.trim().split('\n').map((line) => JSON.parse(line) as { outcome: string; reason: string });
    assert.equal(events.length, 6);
    assert.ok(events.every((e) => e.outcome === 'failure'));
    assert.ok(events.some((e) => e.reason === 'account locked'));
  });

  test('join tokens: a host joins once with a single-use token; used, unknown, wrong-role and too-short tokens are refused', async () => {
    const added = await auth.pctl(['tokens', 'add', '--type=node', '--single-use', '--labels', 'env=dev', '--format', 'json']);
    assert.equal(added.code, 0, added.stderr);
    const { token } = JSON.parse(added.stdout) as { token: string };
    const proxy = auth.connectAs(['proxy']).client;
    const keys = clientKeys();
    const joined = await proxy.join({ token, roles: ['node'], nodeName: 'web-1', sshPublicKey: keys.sshLine, tlsPublicKey: keys.tlsPub, addresses: ['10.0.0.7'] });
    assert.match(joined.hostId, /^[0-9a-f-]{36}$/);
    assert.deepEqual(joined.tokenLabels, { env: 'dev' });
    await rejects(proxy.join({ token, roles: ['node'], nodeName: 'web-2', sshPublicKey: keys.sshLine, tlsPublicKey: keys.tlsPub }), 'PST_TOKEN_USED', /already used/);
    await rejects(proxy.join({ token: 'f'.repeat(64), roles: ['node'], nodeName: 'web-3', tlsPublicKey: keys.tlsPub }), 'PST_TOKEN_INVALID', /not valid/);

    // Tokens live at least a minute, so expiry is exercised with a fake clock in token-store.test.ts.
    const tooShort = await auth.pctl(['tokens', 'add', '--type=node', '--ttl', '1s']);
    assert.equal(tooShort.code, 1);
    assert.match(tooShort.stderr, /ttl.*at least one minute/);

    const wrongRole = JSON.parse((await auth.pctl(['tokens', 'add', '--type=db', '--format', 'json'])).stdout) as { token: string };
    await rejects(proxy.join({ token: wrongRole.token, roles: ['node'], nodeName: 'web-5', tlsPublicKey: keys.tlsPub }), 'PST_TOKEN_ROLE', /node/);

    const listed = JSON.parse((await auth.pctl(['tokens', 'ls', '--format', 'json'])).stdout) as Array<{ status: { state: string } }>;
    assert.ok(listed.some((t) => t.status.state === 'used'));
    assert.ok(!JSON.stringify(listed).includes(token), 'token listing must never show secrets');
  });

  test('a node may not administer, a caller without a certificate may only join; refusals are audited', async () => {
    const node = auth.connectAs(['node'], 'node-1').client;
    await rejects(node.createUser({ name: 'mallory', roles: ['editor'] }), 'PST_ACCESS_DENIED', /host node-1 \(node\) may not create user/);
    await rejects(node.login({ user: 'alice', password, sshPublicKey: clientKeys().sshLine, tlsPublicKey: clientKeys().tlsPub }), 'PST_ACCESS_DENIED', /may not log users in; only proxy hosts may/);
    // Agents read roles (they decide SSH logins) but nothing else an admin reads.
    const roles = JSON.parse((await node.getResources({ kind: 'roles', name: '' })).resourcesJson) as Array<{ kind: string; metadata: { name: string } }>;
    assert.ok(roles.length > 0 && roles.every((r) => r.kind === 'role'), 'a node lists roles');
    const first = roles[0]!.metadata.name;
    assert.equal((JSON.parse((await node.getResources({ kind: 'role', name: first })).resourcesJson) as Array<{ metadata: { name: string } }>)[0]?.metadata.name, first);
    await rejects(node.getResources({ kind: 'user', name: '' }), 'PST_ACCESS_DENIED', /host node-1 \(node\) may not list user/);
    await rejects(node.getResources({ kind: 'token', name: '' }), 'PST_ACCESS_DENIED', /may not list token/);
    await rejects(node.createResources({ text: 'kind: role\nversion: v1\nmetadata: { name: sneaky }\nspec: {}\n', source: 'x', upsert: false }), 'PST_ACCESS_DENIED', /may not create role/);
    const denied = await auth.pctl(['audit', 'search', '--type', 'access.denied', '--format', 'json']);
    const events = JSON.parse(denied.stdout) as Array<{ identity: { host?: string }; reason: string }>;
    assert.ok(events.some((e) => e.identity.host === 'node-1' && /create user/.test(e.reason)));

    const anonymous = connectAuth(auth.server.address, { ...auth.server.issueHostIdentity({ hostId: 'x', nodeName: 'x', systemRoles: ['node'], ttlMs: 60_000 }), key_pem: '', cert_pem: '' });
    try {
      await rejects(anonymous.client.status({}), 'PST_UNAUTHENTICATED', /needs a valid client certificate issued by this cluster/);
      await rejects(anonymous.client.join({ token: 'a'.repeat(64), roles: ['proxy'], nodeName: 'p', tlsPublicKey: clientKeys().tlsPub }), 'PST_TOKEN_INVALID', /not valid/);
      const exported = await anonymous.client.exportAuthorities({ kind: 'host' });
      assert.match(exported.authorities[0]?.tlsCertPem ?? '', /BEGIN CERTIFICATE/);
    } finally {
      anonymous.close();
    }
  });

  test('client certificates from another cluster or expired ones are refused with the reason', async () => {
    const other = await startTestAuth({ clusterName: 'beta' });
    try {
      const foreign = other.server.issueHostIdentity({ hostId: 'admin', nodeName: 'admin', systemRoles: ['admin'], ttlMs: 3_600_000 });
      // The foreign identity trusts alpha's host CA so the refusal is alpha's, not the client's.
      const connection = connectAuth(auth.server.address, { ...foreign, ca_pems: auth.server.deps.authorities.trustedTlsCerts('host') });
      // The TLS layer drops certificates that fail verification, so they arrive as none.
      await rejects(connection.client.status({}, { deadlineMs: 5_000 }), 'PST_UNAUTHENTICATED', /needs a valid client certificate issued by this cluster/);
      connection.close();
    } finally {
      await other.stop();
    }
    const expired = auth.server.issueHostIdentity({ hostId: 'admin', nodeName: 'admin', systemRoles: ['admin'], ttlMs: 1_000 });
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const connection = connectAuth(auth.server.address, expired);
    await rejects(connection.client.status({}, { deadlineMs: 5_000 }), 'PST_UNAUTHENTICATED', /expired or comes from another cluster/);
    connection.close();
  });

  test('resources: create, read back as YAML, replace with --force, delete', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'postern-res-'));
    try {
      const file = path.join(dir, 'dev.yaml');
      writeFileSync(file, 'kind: role\nversion: v1\nmetadata:\n  name: dev\nspec:\n  allow:\n    logins: [ubuntu]\n    node_labels:\n      env: ["^dev-.*$"]\n  options:\n    max_session_ttl: 8h\n');
      const created = await auth.pctl(['create', '-f', file]);
      assert.equal(created.code, 0, created.stderr);
      assert.equal(created.stdout.trim(), 'created role/dev');
      const again = await auth.pctl(['create', '-f', file]);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /role "dev" already exists; use pctl create -f FILE --force/);
      const yaml = await auth.pctl(['get', 'role/dev', '--format', 'yaml']);
      assert.match(yaml.stdout, /max_session_ttl: 8h/);
      writeFileSync(file, yaml.stdout.replace('8h', '4h'));
      assert.equal((await auth.pctl(['create', '-f', file, '--force'])).code, 0);
      assert.match((await auth.pctl(['get', 'role/dev', '--format', 'yaml'])).stdout, /max_session_ttl: 4h/);
      assert.equal((await auth.pctl(['rm', 'role/dev'])).code, 0);
      const gone = await auth.pctl(['get', 'role/dev']);
      assert.equal(gone.code, 1);
      assert.match(gone.stderr, /role "dev" not found/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('bad resources are refused with the file, the field and the reason, and nothing is written', async () => {
    const cases: Array<[string, RegExp]> = [
      ['kind: role\nversion: v1\nmetadata:\n  name: bad\nspec:\n  allow:\n    logins: [ubuntu\n', /bad\.yaml: .*line \d+, column \d+/],
      ['kind: role\nversion: v1\nmetadata:\n  name: bad\nspec:\n  allow:\n    logns: [ubuntu]\n', /bad\.yaml: document 1: spec\.allow\.logns: Unrecognized key \(did you mean "logins"\?\) \(line 7\)/],
      ['kind: role\nversion: v1\nmetadata:\n  name: bad\nspec:\n  allow:\n    node_labels:\n      env: "^(unclosed$"\n', /bad\.yaml: document 1: spec\.allow\.node_labels\.env/],
      ['kind: rolez\nversion: v1\nmetadata:\n  name: bad\nspec: {}\n', /unknown kind|rolez/],
    ];
    const dir = mkdtempSync(path.join(tmpdir(), 'postern-bad-'));
    try {
      for (const [text, expected] of cases) {
        const file = path.join(dir, 'bad.yaml');
        writeFileSync(file, text);
        const result = await auth.pctl(['create', '-f', file]);
        assert.equal(result.code, 1, `expected a refusal for:\n${text}`);
        assert.match(result.stderr, expected);
      }
      assert.equal((await auth.pctl(['get', 'role/bad'])).code, 1, 'a refused resource must not be stored');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('audit export is JSON lines in time order', async () => {
    const result = await auth.pctl(['audit', 'search', '--order', 'asc', '--limit', '1000', '--format', 'jsonl']);
    assert.equal(result.code, 0, result.stderr);
    const events = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as { time: string; type: string });
    assert.ok(events.length >= 10);
    const times = events.map((e) => e.time);
    assert.deepEqual(times, [...times].sort());
    assert.ok(events.some((e) => e.type === 'user.create'));
    assert.ok(events.some((e) => e.type === 'user.login'));
  });
});

describe('postern start refuses what it cannot run', () => {
  test('a config with a wrong field names the file and the field, and exits non-zero', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'postern-cfg-'));
    try {
      const file = path.join(dir, 'postern.yaml');
      writeFileSync(file, 'auth:\n  cluster_name: a\n  listen_adr: 127.0.0.1:0\n');
      const result = await runCli(['start', '-c', file]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, new RegExp(`${file.replace(/[.]/g, '\\.')}: auth: Unrecognized key: "listen_adr"`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a corrupted database file gives a clear error and is left untouched', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'postern-corrupt-'));
    try {
      const file = path.join(dir, 'postern.yaml');
      writeFileSync(file, `data_dir: ${JSON.stringify(dir)}\ndiag_addr: ""\nauth:\n  cluster_name: a\n  listen_addr: 127.0.0.1:0\n`);
      const db = path.join(dir, 'backend.sqlite');
      const garbage = Buffer.from('this is not a database, it is a tea cosy '.repeat(200));
      writeFileSync(db, garbage);
      const result = await runCli(['start', '-c', file]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, new RegExp(db.replace(/[.]/g, '\\.')));
      assert.match(result.stderr, /corrupt|not a database/i);
      assert.deepEqual(readFileSync(db), garbage);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
