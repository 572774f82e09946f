/**
 * Postern's SSH certificates against the real thing: OpenSSH's ssh-keygen reads what we
 * sign and we read what it signs; a real sshd accepts our user certificates and a real
 * ssh accepts our host certificates; and an ssh2 server that checks OpenSSH's
 * certificates with our verifier lets real ssh in.
 */
import { after, before, describe, test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { delimiter, join } from 'node:path';
import ssh2 from 'ssh2';
import type { Connection, PublicKeyAuthContext } from 'ssh2';
import {
  formatCertificate,
  parseCertificate,
  parseCertificateLine,
  signCertificate,
} from '../protocols/ssh/certificate.ts';
import type { CertificateFields } from '../protocols/ssh/certificate.ts';
import { SshCertificateError, SshCertificatePrincipalError } from '../protocols/ssh/errors.ts';
import { formatOpenSshPrivateKey, parseOpenSshPrivateKey } from '../protocols/ssh/private-key.ts';
import { formatAuthorizedKey, parseAuthorizedKey, publicKeyToBlob, sshFingerprint } from '../protocols/ssh/public-key.ts';
import { parseSignature } from '../protocols/ssh/signature.ts';
import { verifyCertificate, verifyCertificateUserSignature } from '../protocols/ssh/verify-certificate.ts';
import { startSshd, sshdSkipReason } from './fixtures/sshd.ts';
import type { Sshd } from './fixtures/sshd.ts';

type Pair = { privateKey: KeyObject; publicKey: KeyObject };
const keyTypes: Array<[string, () => Pair]> = [
  ['ssh-ed25519', () => generateKeyPairSync('ed25519')],
  ['ecdsa-sha2-nistp256', () => generateKeyPairSync('ec', { namedCurve: 'P-256' })],
  ['ecdsa-sha2-nistp384', () => generateKeyPairSync('ec', { namedCurve: 'P-384' })],
  ['ecdsa-sha2-nistp521', () => generateKeyPairSync('ec', { namedCurve: 'P-521' })],
  ['ssh-rsa', () => generateKeyPairSync('rsa', { modulusLength: 2048 })],
];
const login = userInfo().username;

function clientSkipReason(): string | undefined {
  const missing = ['ssh', 'ssh-keygen'].filter((name) => !onPath(name));
  return missing.length === 0 ? undefined : `${missing.join(', ')} missing: install Debian package openssh-client`;
}

function onPath(name: string): boolean {
  return (process.env['PATH'] ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(command: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: 30_000, env: { ...process.env, ...env } }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function tempDir(t: TestContext | undefined, name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `postern-${name}-`));
  if (t) t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes a private key (ours) and its certificate where `ssh -i` and `CertificateFile` find them. */
function writeIdentity(dir: string, name: string, privateKey: KeyObject, certificate?: Buffer): { key: string; cert: string } {
  const key = join(dir, name);
  writeFileSync(key, formatOpenSshPrivateKey(privateKey, { comment: name }), { mode: 0o600 });
  const cert = `${key}-cert.pub`;
  if (certificate) writeFileSync(cert, `${formatCertificate(certificate, name)}\n`);
  return { key, cert };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

function utcSeconds(date: Date): string {
  return date.toISOString().slice(0, 19);
}

describe('OpenSSH reads what Postern writes', () => {
  for (const [index, [subjectType, makeSubject]] of keyTypes.entries()) {
    const [caType, makeCa] = keyTypes[(index + 1) % keyTypes.length]!;
    test(`ssh-keygen -L shows our ${subjectType} certificate signed by a ${caType} CA`, async (t) => {
      const reason = clientSkipReason();
      if (reason) return t.skip(reason);
      const dir = tempDir(t, 'keygen-L');
      const subject = makeSubject();
      const ca = makeCa();
      const validAfter = new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000);
      const validBefore = new Date(validAfter.getTime() + 3_600_000);
      const blob = signCertificate(
        {
          type: 'user',
          publicKey: subject.publicKey,
          keyId: 'alice@postern',
          principals: ['alice', 'deploy'],
          validAfter,
          validBefore,
          serial: 1234n,
          criticalOptions: { 'source-address': '10.0.0.0/8,::1', 'force-command': '/usr/bin/uptime' },
          extensions: { 'permit-pty': '', 'permit-port-forwarding': '', 'postern-roles@postern': 'dev' },
        },
        ca.privateKey,
      );
      const file = join(dir, 'id-cert.pub');
      writeFileSync(file, `${formatCertificate(blob, 'alice')}\n`);
      const { code, stdout, stderr } = await run('ssh-keygen', ['-L', '-f', file], { TZ: 'UTC' });
      assert.equal(code, 0, stderr);
      const signatureName = caType === 'ssh-rsa' ? 'rsa-sha2-512' : caType;
      assert.match(stdout, new RegExp(`Type: ${subjectType}-cert-v01@openssh.com user certificate`));
      assert.match(stdout, new RegExp(`Signing CA: \\S+ ${escapeRegExp(sshFingerprint(ca.publicKey))} \\(using ${signatureName}\\)`));
      assert.ok(stdout.includes(sshFingerprint(subject.publicKey)), 'the certified key fingerprint');
      assert.match(stdout, /Key ID: "alice@postern"/);
      assert.match(stdout, /Serial: 1234/);
      assert.ok(stdout.includes(`Valid: from ${utcSeconds(validAfter)} to ${utcSeconds(validBefore)}`), stdout);
      assert.match(stdout, /Principals: \n\s+alice\n\s+deploy\n/);
      assert.match(stdout, /Critical Options: \n\s+force-command \/usr\/bin\/uptime\n\s+source-address 10\.0\.0\.0\/8,::1\n/);
      assert.match(stdout, /Extensions: \n\s+permit-port-forwarding\n\s+permit-pty\n\s+postern-roles@postern /);
    });
  }

  test('ssh-keygen -L shows an rsa-sha2-256 CA signature and a host certificate', async (t) => {
    const reason = clientSkipReason();
    if (reason) return t.skip(reason);
    const dir = tempDir(t, 'keygen-L');
    const ca = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const fields: CertificateFields = { type: 'host', publicKey: generateKeyPairSync('ed25519').publicKey, keyId: 'node1', principals: ['node1.example'], validAfter: 0n, validBefore: 0xffff_ffff_ffff_ffffn };
    writeFileSync(join(dir, 'host-cert.pub'), formatCertificate(signCertificate(fields, ca.privateKey, { rsaHash: 'sha256' })));
    const { code, stdout, stderr } = await run('ssh-keygen', ['-L', '-f', join(dir, 'host-cert.pub')]);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /ssh-ed25519-cert-v01@openssh.com host certificate/);
    assert.match(stdout, /\(using rsa-sha2-256\)/);
    assert.match(stdout, /Valid: forever/);
  });

  for (const [keyType, makeKey] of keyTypes) {
    test(`ssh-keygen -y reads our ${keyType} private key file`, async (t) => {
      const reason = clientSkipReason();
      if (reason) return t.skip(reason);
      const dir = tempDir(t, 'keygen-y');
      const pair = makeKey();
      const { key } = writeIdentity(dir, 'id', pair.privateKey);
      const { code, stdout, stderr } = await run('ssh-keygen', ['-y', '-f', key]);
      assert.equal(code, 0, stderr);
      assert.deepEqual(parseAuthorizedKey(stdout.trim()).publicKey.blob, publicKeyToBlob(pair.publicKey));
    });
  }
});

describe('Postern reads what OpenSSH writes', () => {
  const cas: Array<[string, string[], string[]]> = [
    ['ed25519', ['-t', 'ed25519'], []],
    ['ecdsa P-256', ['-t', 'ecdsa', '-b', '256'], []],
    ['ecdsa P-384', ['-t', 'ecdsa', '-b', '384'], []],
    ['ecdsa P-521', ['-t', 'ecdsa', '-b', '521'], []],
    ['rsa, rsa-sha2-512', ['-t', 'rsa', '-b', '2048'], ['-t', 'rsa-sha2-512']],
    ['rsa, rsa-sha2-256', ['-t', 'rsa', '-b', '2048'], ['-t', 'rsa-sha2-256']],
  ];
  for (const [name, keyArgs, signArgs] of cas) {
    test(`parses and verifies certificates from ssh-keygen -s with an ${name} CA`, async (t) => {
      const reason = clientSkipReason();
      if (reason) return t.skip(reason);
      const dir = tempDir(t, 'keygen-s');
      for (const file of ['ca', 'user']) {
        const made = await run('ssh-keygen', ['-q', ...keyArgs, '-N', '', '-C', file, '-f', join(dir, file)]);
        assert.equal(made.code, 0, made.stderr);
      }
      const signArgsFull = ['-q', '-s', join(dir, 'ca'), ...signArgs, '-I', 'ci-job-17', '-n', 'alice,bob', '-V', '-5m:+1h', '-z', '7'];
      const optionArgs = ['-O', 'force-command=/bin/date', '-O', 'source-address=10.0.0.0/8,::1', '-O', 'extension:postern-roles@postern=dev'];
      const signed = await run('ssh-keygen', [...signArgsFull, ...optionArgs, join(dir, 'user.pub')]);
      assert.equal(signed.code, 0, signed.stderr);

      const { certificate: cert, comment } = parseCertificateLine(readFileSync(join(dir, 'user-cert.pub'), 'utf8'));
      const ca = parseAuthorizedKey(readFileSync(join(dir, 'ca.pub'), 'utf8'));
      const subject = parseAuthorizedKey(readFileSync(join(dir, 'user.pub'), 'utf8'));
      assert.equal(comment, 'user');
      assert.equal(cert.type, 'user');
      assert.equal(cert.keyId, 'ci-job-17');
      assert.equal(cert.serial, 7n);
      assert.deepEqual(cert.principals, ['alice', 'bob']);
      assert.equal(cert.validBefore - cert.validAfter, 3900n);
      assert.deepEqual(cert.publicKey.blob, subject.publicKey.blob);
      assert.deepEqual(cert.signatureKey.blob, ca.publicKey.blob);
      assert.deepEqual([...cert.criticalOptions], [['force-command', '/bin/date'], ['source-address', '10.0.0.0/8,::1']]);
      assert.deepEqual([...cert.extensions.keys()], ['permit-X11-forwarding', 'permit-agent-forwarding', 'permit-port-forwarding', 'permit-pty', 'permit-user-rc', 'postern-roles@postern']);
      assert.equal(cert.extensions.get('postern-roles@postern'), 'dev');
      if (signArgs.length > 0) assert.equal(parseSignature(cert.signature).algorithm, signArgs[1]);
      const verified = verifyCertificate(cert, { now: new Date(), trustedCAs: [ca.publicKey.key], expectedType: 'user', principal: 'bob', sourceAddress: '10.20.30.40' });
      assert.equal(verified.forceCommand, '/bin/date');
      assert.throws(() => verifyCertificate(cert, { now: new Date(), trustedCAs: [ca.publicKey.key], expectedType: 'host', principal: 'bob', sourceAddress: '10.20.30.40' }), SshCertificateError);
    });
  }

  test('parses a host certificate from ssh-keygen -s -h', async (t) => {
    const reason = clientSkipReason();
    if (reason) return t.skip(reason);
    const dir = tempDir(t, 'keygen-h');
    for (const file of ['ca', 'host']) assert.equal((await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, file)])).code, 0);
    const signed = await run('ssh-keygen', ['-q', '-s', join(dir, 'ca'), '-h', '-I', 'node1', '-n', 'node1.example,10.1.2.3', join(dir, 'host.pub')]);
    assert.equal(signed.code, 0, signed.stderr);
    const { certificate } = parseCertificateLine(readFileSync(join(dir, 'host-cert.pub'), 'utf8'));
    assert.equal(certificate.type, 'host');
    assert.equal(certificate.validBefore, 0xffff_ffff_ffff_ffffn);
    assert.equal(certificate.extensions.size, 0);
    const ca = parseAuthorizedKey(readFileSync(join(dir, 'ca.pub'), 'utf8'));
    verifyCertificate(certificate, { now: new Date(), trustedCAs: [ca.publicKey.blob], expectedType: 'host', principal: '10.1.2.3' });
  });

  test('loads private keys ssh-keygen wrote', async (t) => {
    const reason = clientSkipReason();
    if (reason) return t.skip(reason);
    const dir = tempDir(t, 'keygen-keys');
    for (const [name, args] of [['ed', ['-t', 'ed25519']], ['p256', ['-t', 'ecdsa', '-b', '256']], ['p384', ['-t', 'ecdsa', '-b', '384']], ['p521', ['-t', 'ecdsa', '-b', '521']], ['rsa', ['-t', 'rsa', '-b', '3072']]] as const) {
      const made = await run('ssh-keygen', ['-q', ...args, '-N', '', '-C', `key ${name}`, '-f', join(dir, name)]);
      assert.equal(made.code, 0, made.stderr);
      const loaded = parseOpenSshPrivateKey(readFileSync(join(dir, name), 'utf8'));
      assert.equal(loaded.comment, `key ${name}`);
      assert.equal(formatAuthorizedKey(loaded.publicKey, loaded.comment), readFileSync(join(dir, `${name}.pub`), 'utf8').trim());
    }
  });
});

describe('real sshd and ssh with certificates Postern signs', () => {
  const userCa = generateKeyPairSync('ed25519');
  const hostCa = generateKeyPairSync('ed25519');
  const otherCa = generateKeyPairSync('ed25519');
  const hostKey = generateKeyPairSync('ed25519');
  let sshd: Sshd | undefined;
  let skipReason: string | undefined;
  let dir = '';

  before(async () => {
    skipReason = sshdSkipReason() ?? clientSkipReason();
    if (skipReason) return;
    dir = tempDir(undefined, 'ssh-client');
    const hostCertificate = signCertificate(
      { type: 'host', publicKey: hostKey.publicKey, keyId: 'test sshd', principals: ['127.0.0.1', 'localhost'], validAfter: secondsFromNow(-60), validBefore: secondsFromNow(3600) },
      hostCa.privateKey,
    );
    sshd = await startSshd({
      hostKey: hostKey.privateKey,
      hostCertificate: formatCertificate(hostCertificate),
      trustedUserCAKeys: [formatAuthorizedKey(userCa.publicKey, 'postern user CA')],
    });
  });

  after(async () => {
    await sshd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function userCertificate(publicKey: KeyObject, overrides: Partial<CertificateFields> = {}, ca: KeyObject = userCa.privateKey): Buffer {
    return signCertificate(
      {
        type: 'user',
        publicKey,
        keyId: 'alice',
        principals: [login],
        validAfter: secondsFromNow(-60),
        validBefore: secondsFromNow(600),
        extensions: { 'permit-pty': '' },
        ...overrides,
      },
      ca,
    );
  }

  async function sshEcho(identity: { key: string; cert: string }, trustedHostCa: KeyObject = hostCa.publicKey): Promise<Run> {
    const knownHosts = join(dir, `known_hosts-${sshFingerprint(trustedHostCa).slice(7, 15).replace(/[/+]/g, '_')}`);
    writeFileSync(knownHosts, `@cert-authority [127.0.0.1]:${sshd!.port} ${formatAuthorizedKey(trustedHostCa)}\n`);
    return run('ssh', [
      '-F', '/dev/null',
      '-o', 'BatchMode=yes',
      '-o', 'IdentitiesOnly=yes',
      '-o', 'StrictHostKeyChecking=yes',
      '-o', `UserKnownHostsFile=${knownHosts}`,
      '-o', 'GlobalKnownHostsFile=/dev/null',
      '-o', 'ConnectTimeout=10',
      '-i', identity.key,
      '-o', `CertificateFile=${identity.cert}`,
      '-p', String(sshd!.port),
      `${login}@127.0.0.1`,
      'echo hi',
    ]);
  }

  for (const [keyType, makeKey] of [keyTypes[0]!, keyTypes[1]!, keyTypes[4]!]) {
    test(`ssh logs in with our ${keyType} user certificate, trusting sshd by our host certificate`, async (t) => {
      if (skipReason) return t.skip(skipReason);
      const pair = makeKey();
      const identity = writeIdentity(dir, `id-${keyType}`, pair.privateKey, userCertificate(pair.publicKey));
      const result = await sshEcho(identity);
      assert.equal(result.code, 0, `${result.stderr}\n--- sshd ---\n${sshd!.logs()}`);
      assert.equal(result.stdout.trim(), 'hi');
    });
  }

  test('sshd refuses an expired certificate', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const pair = generateKeyPairSync('ed25519');
    const identity = writeIdentity(dir, 'id-expired', pair.privateKey, userCertificate(pair.publicKey, { validAfter: secondsFromNow(-7200), validBefore: secondsFromNow(-3600) }));
    const result = await sshEcho(identity);
    assert.notEqual(result.code, 0);
    assert.equal(result.stdout, '');
    assert.match(sshd!.logs(), /Certificate invalid: expired/);
  });

  test('sshd refuses a certificate from another CA', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const pair = generateKeyPairSync('ed25519');
    const identity = writeIdentity(dir, 'id-other-ca', pair.privateKey, userCertificate(pair.publicKey, {}, otherCa.privateKey));
    const result = await sshEcho(identity);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /Permission denied/);
  });

  test('sshd refuses a certificate that does not name the login', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const pair = generateKeyPairSync('ed25519');
    const identity = writeIdentity(dir, 'id-wrong-login', pair.privateKey, userCertificate(pair.publicKey, { principals: [`not-${login}`] }));
    const result = await sshEcho(identity);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /Permission denied/);
  });

  test('AuthorizedPrincipalsFile maps certificate principals to the login', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const mapped = await startSshd({
      hostKey: hostKey.privateKey,
      trustedUserCAKeys: [formatAuthorizedKey(userCa.publicKey)],
      authorizedPrincipals: { [login]: ['team-ops'] },
      extraConfig: ['MaxAuthTries 3'],
    });
    t.after(() => mapped.stop());
    const sshTo = async (principal: string) => {
      const pair = generateKeyPairSync('ed25519');
      const identity = writeIdentity(dir, `id-mapped-${principal}`, pair.privateKey, userCertificate(pair.publicKey, { principals: [principal] }));
      const knownHosts = join(dir, 'known_hosts-plain');
      writeFileSync(knownHosts, `[127.0.0.1]:${mapped.port} ${formatAuthorizedKey(hostKey.publicKey)}\n`);
      return run('ssh', ['-F', '/dev/null', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${knownHosts}`,
        '-i', identity.key, '-o', `CertificateFile=${identity.cert}`, '-p', String(mapped.port), `${login}@127.0.0.1`, 'echo hi']);
    };
    const allowed = await sshTo('team-ops');
    assert.equal(allowed.code, 0, `${allowed.stderr}\n${mapped.logs()}`);
    assert.equal(allowed.stdout.trim(), 'hi');
    const refused = await sshTo(login);
    assert.notEqual(refused.code, 0, 'the login itself is not in the principals file');
  });

  test('ssh refuses a host certificate from a CA it does not trust', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const pair = generateKeyPairSync('ed25519');
    const identity = writeIdentity(dir, 'id-host-check', pair.privateKey, userCertificate(pair.publicKey));
    const result = await sshEcho(identity, otherCa.publicKey);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /Host key verification failed/);
  });
});

describe('an ssh2 server checking OpenSSH certificates with our verifier', () => {
  const userCa = generateKeyPairSync('ed25519');
  const hostKey = generateKeyPairSync('ed25519');
  const decisions: Array<{ algorithm: string; signed: boolean; error?: unknown }> = [];
  let server: InstanceType<typeof ssh2.Server> | undefined;
  let port = 0;
  let dir = '';
  const skipReason = clientSkipReason();

  before(async () => {
    if (skipReason) return;
    dir = tempDir(undefined, 'ssh2-server');
    server = new ssh2.Server({ hostKeys: [formatOpenSshPrivateKey(hostKey.privateKey)] }, (client, info) => serveClient(client, info.ip));
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  after(async () => {
    if (server) await new Promise<void>((resolve) => server!.close(() => resolve()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function serveClient(client: Connection, ip: string): void {
    client.on('error', () => {});
    client.on('authentication', (ctx) => {
      if (ctx.method !== 'publickey' || !ctx.key.algo.endsWith('-cert-v01@openssh.com')) return ctx.reject(['publickey']);
      authenticate(ctx, ip);
    });
    client.on('ready', () => {
      client.on('session', (acceptSession) => {
        acceptSession().on('exec', (accept, _reject, info) => {
          const channel = accept();
          channel.write(`ssh2 ran: ${info.command}\n`);
          channel.exit(0);
          channel.end();
        });
      });
    });
  }

  function authenticate(ctx: PublicKeyAuthContext, ip: string): void {
    try {
      const cert = verifyCertificate(parseCertificate(ctx.key.data), { now: new Date(), trustedCAs: [userCa.publicKey], expectedType: 'user', principal: ctx.username, sourceAddress: ip });
      if (ctx.signature && ctx.blob) {
        verifyCertificateUserSignature(cert, { signature: ctx.signature, signedData: ctx.blob, keyAlgorithm: ctx.key.algo });
      }
      decisions.push({ algorithm: ctx.key.algo, signed: ctx.signature !== undefined });
      ctx.accept();
    } catch (error) {
      decisions.push({ algorithm: ctx.key.algo, signed: ctx.signature !== undefined, error });
      ctx.reject(['publickey']);
    }
  }

  async function sshTo(identity: { key: string; cert: string }, user: string): Promise<Run> {
    const knownHosts = join(dir, 'known_hosts');
    writeFileSync(knownHosts, `[127.0.0.1]:${port} ${formatAuthorizedKey(hostKey.publicKey)}\n`);
    return run('ssh', [
      '-F', '/dev/null', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'StrictHostKeyChecking=yes',
      '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'ConnectTimeout=10',
      '-i', identity.key, '-o', `CertificateFile=${identity.cert}`, '-p', String(port), `${user}@127.0.0.1`, 'echo hi',
    ]);
  }

  for (const [keyType, makeKey] of [keyTypes[0]!, keyTypes[1]!, keyTypes[4]!]) {
    test(`real ssh logs in with a ${keyType} certificate; the user signature verifies`, async (t) => {
      if (skipReason) return t.skip(skipReason);
      decisions.length = 0;
      const pair = makeKey();
      const certificate = signCertificate(
        { type: 'user', publicKey: pair.publicKey, keyId: 'alice', principals: ['alice'], validAfter: secondsFromNow(-60), validBefore: secondsFromNow(600), criticalOptions: { 'source-address': '127.0.0.0/8,::1' } },
        userCa.privateKey,
      );
      const result = await sshTo(writeIdentity(dir, `ssh2-${keyType}`, pair.privateKey, certificate), 'alice');
      assert.equal(result.code, 0, `${result.stderr}\n${decisions.map((d) => String(d.error)).join('\n')}`);
      assert.equal(result.stdout, 'ssh2 ran: echo hi\n');
      const signed = decisions.filter((d) => d.signed);
      assert.ok(signed.length >= 1, 'the signed request reached our verifier');
      assert.deepEqual(signed.map((d) => d.error), signed.map(() => undefined));
      assert.ok(signed[0]!.algorithm.endsWith('-cert-v01@openssh.com'));
    });
  }

  test('real ssh is refused when the certificate does not name the login', async (t) => {
    if (skipReason) return t.skip(skipReason);
    decisions.length = 0;
    const pair = generateKeyPairSync('ed25519');
    const certificate = signCertificate({ type: 'user', publicKey: pair.publicKey, keyId: 'alice', principals: ['alice'], validAfter: secondsFromNow(-60), validBefore: secondsFromNow(600) }, userCa.privateKey);
    const result = await sshTo(writeIdentity(dir, 'ssh2-wrong-login', pair.privateKey, certificate), 'root');
    assert.notEqual(result.code, 0);
    assert.ok(decisions.length > 0 && decisions.every((d) => d.error instanceof SshCertificatePrincipalError));
  });
});

function secondsFromNow(seconds: number): bigint {
  return BigInt(Math.floor(Date.now() / 1000) + seconds);
}
