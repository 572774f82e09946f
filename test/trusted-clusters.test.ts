/**
 * Trusted clusters with real processes: a root (auth + proxy), a leaf (auth + proxy)
 * that trusts it through a trusted_cluster written with pctl, an agent in each, and
 * root users reaching the leaf's node through the root proxy -> leaf tunnel -> leaf
 * proxy -> agent with psh and with plain OpenSSH. One setup serves every scenario;
 * each test leaves the trust as it found it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { generateKeyPairSync } from 'node:crypto';
import { stopAll } from './fixtures/processes.ts';
import { formatCertificate, signCertificate } from '../protocols/ssh/certificate.ts';
import { formatOpenSshPrivateKey } from '../protocols/ssh/private-key.ts';
import { sshUserExtensions } from '../cluster/api/ssh-identity.ts';
import { createCaCertificate, issueCertificate } from '../cluster/auth/pki/x509.ts';
import { createResource, pshIn, signUpAndLogIn, startTrustedPair, type RoleMapEntry, type TrustedPair } from './fixtures/cluster-process.ts';
import { runCommand, until } from './fixtures/poll.ts';

const skip = (() => {
  try {
    accessSync('/usr/bin/ssh', constants.X_OK);
    return process.getuid?.() === 0 ? undefined : 'logs in as root on the agent: run as root';
  } catch {
    return 'ssh missing: install Debian package openssh-client';
  }
})();

const baseMap: RoleMapEntry[] = [{ remote: 'leaf-admin', local: ['access'] }];
const password = 'a long and happy password';

const run = (command: string, args: readonly string[], env: Record<string, string> = {}) => runCommand(command, args, { env, timeoutMs: 60_000 });

describe('trusted clusters: root users reach leaf nodes through the root proxy', { skip }, () => {
  let pair: TrustedPair;
  const homes: Record<string, string> = {};
  const psh = (user: string, args: string[], input?: string) => pshIn(homes[user]!)(args, input);
  /** `psh ssh` as `user` to the leaf node, running `echo`; the result and output. */
  const sshLeaf = (user: string, extra: string[] = ['--cluster', 'leaf']) => psh(user, ['ssh', ...extra, 'root@leaf-node', 'echo', `hello-from-${user}`]);
  const works = async (user: string) => {
    const result = await sshLeaf(user);
    return result.code === 0 && result.stdout.includes(`hello-from-${user}`) ? result : undefined;
  };
  const fails = async (user: string) => {
    const result = await sshLeaf(user);
    return result.code !== 0 ? result : undefined;
  };

  before(async () => {
    pair = await startTrustedPair({ roleMap: baseMap, rootAgent: true });
    const roles = [
      'kind: role\nversion: v1\nmetadata: { name: leaf-admin }\nspec:\n  allow:\n    logins: [root]\n    node_labels: { "*": "*" }\n    cluster_labels: { env: prod }\n',
      'kind: role\nversion: v1\nmetadata: { name: staging-only }\nspec:\n  allow:\n    logins: [root]\n    node_labels: { "*": "*" }\n    cluster_labels: { env: staging }\n',
      'kind: role\nversion: v1\nmetadata: { name: unmapped }\nspec:\n  allow:\n    logins: [root]\n    cluster_labels: { env: prod }\n',
      'kind: role\nversion: v1\nmetadata: { name: team-ops }\nspec:\n  allow:\n    logins: [root]\n    cluster_labels: { env: prod }\n',
    ].join('---\n');
    const created = await createResource(pair.root, roles);
    assert.equal(created.code, 0, created.stderr);
    const leafRole = await createResource(pair.leaf, 'kind: role\nversion: v1\nmetadata: { name: ops }\nspec:\n  allow:\n    logins: [root]\n    node_labels: { env: test }\n');
    assert.equal(leafRole.code, 0, leafRole.stderr);
    const users = [
      { name: 'alice', roles: 'leaf-admin,access' },
      { name: 'bob', roles: 'staging-only' },
      { name: 'carol', roles: 'unmapped' },
      { name: 'dan', roles: 'team-ops' },
    ];
    await Promise.all(users.map(async (user) => {
      homes[user.name] = mkdtempSync(path.join(tmpdir(), `postern-${user.name}-`));
      await signUpAndLogIn(pair.root, homes[user.name]!, { ...user, logins: 'root', password });
    }));
    homes.erin = mkdtempSync(path.join(tmpdir(), 'postern-erin-'));
    await signUpAndLogIn(pair.leaf, homes.erin, { name: 'erin', roles: 'access', logins: 'root', password });
    await until('the leaf tunnel and node', () => works('alice'), 30_000);
  });

  after(async () => {
    await stopAll(pair?.daemons() ?? []);
    for (const home of Object.values(homes)) rmSync(home, { recursive: true, force: true });
  });

  test('pctl clusters ls on the root shows the leaf online with the token\'s labels', async () => {
    const listed = await pair.root.pctl(['clusters', 'ls', '--format', 'json']);
    assert.equal(listed.code, 0, listed.stderr);
    const [leaf] = JSON.parse(listed.stdout) as Array<{ name: string; status: string; labels: Record<string, string>; last_heartbeat: string }>;
    assert.equal(leaf?.name, 'leaf');
    assert.equal(leaf?.status, 'online');
    assert.deepEqual(leaf?.labels, { env: 'prod' });
    assert.ok(leaf?.last_heartbeat);
  });

  test('a mapped root user runs a command on a leaf node with psh, and with plain OpenSSH from psh config', async () => {
    const ran = await works('alice');
    assert.ok(ran);
    const listed = await psh('alice', ['ls', '--cluster', 'leaf', '--format', 'json']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual((JSON.parse(listed.stdout) as Array<{ name: string }>).map((n) => n.name), ['leaf-node']);
    const clusters = await psh('alice', ['clusters', '--format', 'json']);
    assert.deepEqual((JSON.parse(clusters.stdout) as Array<{ name: string }>).map((c) => c.name), ['root', 'leaf']);
    const config = await psh('alice', ['config', '--cluster', 'leaf']);
    assert.equal(config.code, 0, config.stderr);
    const dir = mkdtempSync(path.join(tmpdir(), 'postern-ssh-config-'));
    try {
      writeFileSync(path.join(dir, 'config'), config.stdout);
      const known = readFileSync(/UserKnownHostsFile (\S+)/.exec(config.stdout)![1]!, 'utf8');
      assert.equal(known.split('\n').filter((l) => l.startsWith('@cert-authority')).length, 2, 'root and leaf host CAs');
      const plain = await run('ssh', ['-F', path.join(dir, 'config'), '-o', 'BatchMode=yes', 'root@leaf-node', 'echo', 'plain-openssh'], { POSTERN_HOME: homes.alice! });
      assert.equal(plain.code, 0, plain.stderr);
      assert.equal(plain.stdout.trim(), 'plain-openssh');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('psh login leaf routes the certificate to the leaf; psh login root routes back', async () => {
    const login = await psh('alice', ['login', 'leaf']);
    assert.equal(login.code, 0, login.stderr);
    try {
      const ran = await sshLeaf('alice', []);
      assert.equal(ran.code, 0, ran.stderr);
      const listed = await psh('alice', ['ls', '--format', 'json']);
      assert.deepEqual((JSON.parse(listed.stdout) as Array<{ name: string }>).map((n) => n.name), ['leaf-node']);
    } finally {
      const back = await psh('alice', ['login', 'root']);
      assert.equal(back.code, 0, back.stderr);
    }
    const root = await psh('alice', ['ssh', 'root@root-node', 'echo', 'root-side']);
    assert.equal(root.code, 0, root.stderr);
    const refused = await psh('bob', ['login', 'leaf']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /cannot route to cluster "leaf"/);
  });

  test('a root user whose roles\' cluster_labels do not match cannot see or reach the leaf', async () => {
    const clusters = await psh('bob', ['clusters', '--format', 'json']);
    assert.deepEqual((JSON.parse(clusters.stdout) as Array<{ name: string }>).map((c) => c.name), ['root']);
    const refused = await sshLeaf('bob');
    assert.equal(refused.code, 255);
    assert.match(refused.stderr, /may not reach leaf cluster leaf/);
    const listed = await psh('bob', ['ls', '--cluster', 'leaf']);
    assert.notEqual(listed.code, 0);
  });

  test('a root user whose roles map to nothing is denied, and the leaf audits it', async () => {
    const refused = await sshLeaf('carol');
    assert.equal(refused.code, 255);
    const audit = await until('the denial in the leaf audit log', async () => {
      const found = await pair.leaf.pctl(['audit', 'search', '--user', 'carol', '--type', 'access.denied', '--format', 'json']);
      const events = JSON.parse(found.stdout || '[]') as Array<{ reason?: string }>;
      return events.find((e) => e.reason?.includes('no roles mapped for remote user carol from cluster root'));
    });
    assert.ok(audit);
  });

  test('the leaf\'s audit events about root users reach the root once each (pctl audit search --cluster leaf)', async () => {
    const search = async () => JSON.parse((await pair.root.pctl(['audit', 'search', '--cluster', 'leaf', '--limit', '1000', '--format', 'json'])).stdout || '[]') as Array<{ type: string; identity: { user?: string }; reason?: string; fields: Record<string, unknown> }>;
    const forwarded = await until('carol\'s leaf denial and alice\'s leaf session at the root', async () => {
      const events = await search();
      const carol = events.some((e) => e.identity.user === 'carol' && e.reason?.includes('no roles mapped for remote user carol from cluster root'));
      const alice = events.some((e) => e.identity.user === 'alice' && e.type === 'session.start');
      return carol && alice ? events : undefined;
    }, 20_000);
    assert.ok(forwarded.every((e) => e.fields['leaf_cluster'] === 'leaf' && e.fields['user_cluster'] === 'root'), 'only events about root users, marked with the leaf');
    // A few pulls later nothing has been stored twice.
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    const ids = (await search()).map((e) => String(e.fields['leaf_event_id']));
    assert.equal(new Set(ids).size, ids.length, 'no leaf event is stored twice');
    const local = JSON.parse((await pair.leaf.pctl(['audit', 'search', '--user', 'carol', '--format', 'json'])).stdout) as unknown[];
    assert.ok(local.length > 0, 'the leaf keeps its own copy');
  });

  test('regex and wildcard role maps with captures; a changed map applies to new connections without restarts', async () => {
    assert.ok(await fails('dan'));
    await pair.writeTrust({ roleMap: [...baseMap, { remote: '^team-(.*)$', local: ['$1'] }] });
    assert.ok(await until('dan mapped to ops through ^team-(.*)$', () => works('dan'), 15_000));
    await pair.writeTrust({ roleMap: [...baseMap, { remote: '*', local: ['ops'] }] });
    assert.ok(await until('carol mapped through *', () => works('carol'), 15_000));
    await pair.writeTrust({ roleMap: baseMap });
    assert.ok(await until('carol unmapped again', () => fails('carol'), 15_000));
  });

  test('invalid role maps are refused with a reason', async () => {
    const text = (map: string) => `kind: trusted_cluster\nversion: v1\nmetadata: { name: root }\nspec:\n  proxy_addr: ${pair.root.proxy}\n  ca_pin: ${pair.root.pin}\n  role_map:\n${map}`;
    const star = await createResource(pair.leaf, text("    - { remote: admin, local: ['*'] }\n"), true);
    assert.notEqual(star.code, 0);
    assert.match(star.stderr, /cannot be "\*"/);
    const twice = await createResource(pair.leaf, text('    - { remote: admin, local: [a] }\n    - { remote: admin, local: [b] }\n'), true);
    assert.match(twice.stderr, /mapped twice/);
    const regex = await createResource(pair.leaf, text("    - { remote: '^a(b$', local: [a] }\n"), true);
    assert.match(regex.stderr, /bad regex/);
    assert.ok(await works('alice'), 'the refused writes changed nothing');
  });

  test('joins are refused with a reason: bad token, wrong pin, a name that is not the root\'s, no token the first time; remote_cluster is not written by hand', async () => {
    const text = (name: string, pin: string, token?: string) =>
      `kind: trusted_cluster\nversion: v1\nmetadata: { name: ${name} }\nspec:\n  proxy_addr: ${pair.root.proxy}\n  ca_pin: ${pin}\n${token ? `  token: ${token}\n` : ''}  role_map: [{ remote: admin, local: [access] }]\n`;
    const badToken = await createResource(pair.leaf, text('root', pair.root.pin, 'f'.repeat(64)), true);
    assert.notEqual(badToken.code, 0);
    assert.match(badToken.stderr, /the root at .* refused the join: .*token/i);
    const wrongPin = await createResource(pair.leaf, text('root', `sha256:${'0'.repeat(64)}`, 'f'.repeat(64)), true);
    assert.match(wrongPin.stderr, /cannot verify the root proxy .*does not match/);
    const token = JSON.parse((await pair.root.pctl(['tokens', 'add', '--type=trusted_cluster', '--format', 'json'])).stdout) as { token: string };
    const wrongName = await createResource(pair.leaf, text('other', pair.root.pin, token.token), true);
    assert.match(wrongName.stderr, /is named "root"; name the resource after it/);
    const noToken = await createResource(pair.leaf, text('never-joined', pair.root.pin), true);
    assert.match(noToken.stderr, /spec\.token is required to join the root the first time/);
    const byHand = await createResource(pair.root, 'kind: remote_cluster\nversion: v1\nmetadata: { name: fake }\nspec: {}\n');
    assert.match(byHand.stderr, /remote_cluster records are made when a leaf joins/);
    assert.ok(await works('alice'), 'the refusals changed nothing');
  });

  test('disabling trust cuts root access and drops the tunnel; enabling restores it', async () => {
    await pair.writeTrust({ enabled: false, roleMap: baseMap });
    await until('access to fail while disabled', () => fails('alice'), 15_000);
    const offline = await until('the leaf offline at the root', async () => {
      const listed = JSON.parse((await pair.root.pctl(['clusters', 'ls', '--format', 'json'])).stdout) as Array<{ status: string }>;
      return listed[0]?.status === 'offline' ? listed : undefined;
    });
    assert.ok(offline);
    await pair.writeTrust({ enabled: true, roleMap: baseMap });
    assert.ok(await until('access back after enabling', () => works('alice'), 30_000));
  });

  test('deleting the remote_cluster on the root cuts access; re-creating trust with a new token recovers', async () => {
    const removed = await pair.root.pctl(['rm', 'remote_cluster/leaf']);
    assert.equal(removed.code, 0, removed.stderr);
    await until('access to fail after the delete', () => fails('alice'), 15_000);
    await pair.writeTrust({ roleMap: baseMap, join: true });
    assert.ok(await until('access back after re-joining', () => works('alice'), 30_000));
  });

  test('trust is one-way: a leaf user cannot reach the root', async () => {
    const viaLeaf = await psh('erin', ['ssh', '--cluster', 'root', 'root@root-node', 'true']);
    assert.equal(viaLeaf.code, 255);
    assert.match(viaLeaf.stderr, /no cluster "root" is reachable from leaf/);
    const leafNode = await psh('erin', ['ssh', 'root@leaf-node', 'echo', 'local']);
    assert.equal(leafNode.code, 0, leafNode.stderr);
    // Erin's leaf certificate straight at the root proxy.
    const dir = path.join(homes.erin!, 'profiles', pair.leaf.proxy.replace(/[^A-Za-z0-9.-]/g, '_'));
    const answer = await sshRequest(pair.root.proxy, readFileSync(path.join(dir, 'tls.key')), readFileSync(path.join(dir, 'tls.crt')), { node: 'root-node' });
    assert.match(answer, /^error /);
  });

  test('certificates forged by a third cluster\'s CA are refused: SSH at the leaf agent, X.509 at the root proxy', async () => {
    const thirdCa = generateKeyPairSync('ed25519').privateKey;
    const user = generateKeyPairSync('ed25519');
    const identity = { username: 'alice', roles: ['leaf-admin'], traits: { logins: ['root'] }, cluster: 'root', routeToCluster: 'leaf' };
    const forged = formatCertificate(signCertificate({
      type: 'user', publicKey: user.publicKey, keyId: 'alice', principals: ['root'], validAfter: new Date(Date.now() - 60_000),
      validBefore: new Date(Date.now() + 3_600_000), extensions: sshUserExtensions(identity, { pty: true, portForwarding: false, agentForwarding: false }),
    }, thirdCa), 'alice');
    const dir = mkdtempSync(path.join(tmpdir(), 'postern-forged-'));
    try {
      writeFileSync(path.join(dir, 'id'), formatOpenSshPrivateKey(user.privateKey), { mode: 0o600 });
      writeFileSync(path.join(dir, 'id-cert.pub'), `${forged}\n`);
      const config = (await psh('alice', ['config', '--cluster', 'leaf'])).stdout
        .replace(/IdentityFile \S+/, `IdentityFile ${path.join(dir, 'id')}`)
        .replace(/CertificateFile \S+/, `CertificateFile ${path.join(dir, 'id-cert.pub')}`);
      writeFileSync(path.join(dir, 'config'), config);
      const refused = await run('ssh', ['-F', path.join(dir, 'config'), '-o', 'BatchMode=yes', 'root@leaf-node', 'true'], { POSTERN_HOME: homes.alice! });
      assert.equal(refused.code, 255);
      assert.match(refused.stderr, /Permission denied/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // An X.509 user certificate for alice from a CA that calls itself "root".
    const ca = createCaCertificate({ clusterName: 'root', kind: 'user' });
    const tlsKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const cert = issueCertificate({
      ca: { certPem: ca.certPem, keyPem: ca.keyPem },
      publicKey: tlsKey.publicKey,
      identity: { kind: 'user', ...identity, logins: ['root'], mfaVerified: false, bot: false, expires: new Date(Date.now() + 3_600_000) },
      notAfter: new Date(Date.now() + 3_600_000),
      usage: 'client',
    });
    const answer = await sshRequest(pair.root.proxy, tlsKey.privateKey.export({ type: 'pkcs8', format: 'pem' }) as unknown as Buffer, Buffer.from(cert), { node: 'leaf-node', cluster: 'leaf' });
    assert.match(answer, /^error /);
  });

  test('killing the root: leaf users keep working; root users are back within 10 s of the restart; leaf audit events from the outage catch up', async () => {
    // A root user's session that the outage cuts: its end is audited on the leaf while the root is down.
    const cut = psh('alice', ['ssh', '--cluster', 'leaf', 'root@leaf-node', 'sleep', '60']);
    const since = new Date().toISOString();
    await until('alice\'s long session to start on the leaf', async () => {
      const events = JSON.parse((await pair.leaf.pctl(['audit', 'search', '--user', 'alice', '--type', 'session.start', '--from', since, '--format', 'json'])).stdout || '[]') as unknown[];
      return events.length > 0 ? events : undefined;
    });
    await pair.root.daemon.kill();
    const killedAt = new Date().toISOString();
    assert.notEqual((await cut).code, 0);
    const local = await psh('erin', ['ssh', 'root@leaf-node', 'echo', 'still-here']);
    assert.equal(local.code, 0, local.stderr);
    await pair.root.daemon.restart();
    await pair.root.daemon.waitReady();
    const started = Date.now();
    await until('root access back', () => works('alice'), 10_000);
    assert.ok(Date.now() - started <= 10_000);
    const caughtUp = await until('the session end from the outage at the root', async () => {
      const events = JSON.parse((await pair.root.pctl(['audit', 'search', '--cluster', 'leaf', '--user', 'alice', '--type', 'session.end', '--format', 'json'])).stdout || '[]') as Array<{ fields: Record<string, unknown> }>;
      return events.find((e) => String(e.fields['leaf_time']) >= killedAt);
    });
    assert.ok(caughtUp);
  });
});

/** Sends one postern-ssh request line with a client certificate; resolves with the answer line. */
function sshRequest(proxy: string, key: Buffer, cert: Buffer, request: object): Promise<string> {
  const [host, port] = proxy.split(':');
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host, port: Number(port), key, cert, rejectUnauthorized: false, ALPNProtocols: ['postern-ssh'] }, () => socket.write(JSON.stringify(request) + '\n'));
    let data = '';
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString();
      if (data.includes('\n')) {
        socket.destroy();
        resolve(data.split('\n')[0]!);
      }
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(data));
  });
}
