/**
 * The agent's SSH service against the real OpenSSH client: the service presents a host
 * certificate (checked by ssh against a `@cert-authority` line), accepts only user
 * certificates from the trusted user CA, asks the authorization callback, runs exec
 * with its exit status, a pty shell, and sftp through the host's sftp-server.
 * Certificates are signed with our codec and carry the @postern.dev extensions written
 * by the auth server's encoder, so this also checks encoder and agent decoder agree.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { duplexPair } from 'node:stream';
import type { AddressInfo, Server } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { delimiter, join } from 'node:path';
import ssh2 from 'ssh2';
import type { ClientChannel, ParsedKey } from 'ssh2';
import { formatCertificate, parseCertificate, signCertificate } from '../protocols/ssh/certificate.ts';
import { verifyCertificate } from '../protocols/ssh/verify-certificate.ts';
import type { CertificateFields } from '../protocols/ssh/certificate.ts';
import { formatOpenSshPrivateKey } from '../protocols/ssh/private-key.ts';
import { formatAuthorizedKey } from '../protocols/ssh/public-key.ts';
import { createLogger } from "../cluster/common/logger.ts";
import { sshUserExtensions } from '../cluster/api/ssh-identity.ts';
import { SshService, SFTP_SERVER_PATH } from '../agent/services/ssh/ssh-service.ts';
import type { SshAuditEvent, SshAuthorizationRequest, SshAuthorizationDecision } from '../agent/services/ssh/ssh-service.ts';

const login = userInfo().username;

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

function skipReason(): string | undefined {
  const missing = ['ssh', 'sftp'].filter((name) => !onPath(name));
  return missing.length === 0 ? undefined : `${missing.join(', ')} missing: install Debian package openssh-client`;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(command: string, args: readonly string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const seconds = (fromNow: number): Date => new Date(Date.now() + fromNow * 1000);

describe('agent SSH service with real OpenSSH clients', () => {
  const reason = skipReason();
  let dir: string;
  let listener: Server;
  let port: number;
  let service: SshService;
  const hostCa = generateKeyPairSync('ed25519');
  const userCa = generateKeyPairSync('ed25519');
  const otherCa = generateKeyPairSync('ed25519');
  const audit: SshAuditEvent[] = [];
  const asked: SshAuthorizationRequest[] = [];
  let decide: (request: SshAuthorizationRequest) => SshAuthorizationDecision = () => ({ allowed: true, reason: 'role access allows it' });
  let knownHosts: string;

  before(async () => {
    if (reason) return;
    dir = mkdtempSync(join(tmpdir(), 'postern-ssh-service-'));
    const hostKey = generateKeyPairSync('ed25519');
    const hostCert = signCertificate(
      { type: 'host', publicKey: hostKey.publicKey, keyId: 'node-1', principals: ['127.0.0.1', 'node-1'], validAfter: seconds(-60), validBefore: seconds(3600) },
      hostCa.privateKey,
    );
    knownHosts = join(dir, 'known_hosts');
    writeFileSync(knownHosts, `@cert-authority * ${formatAuthorizedKey(hostCa.publicKey)}\n`);
    service = new SshService({
      hostKeyPem: formatOpenSshPrivateKey(hostKey.privateKey),
      hostCertificate: formatCertificate(hostCert, 'node-1'),
      trustedUserCAs: () => [userCa.publicKey],
      authorize: (request) => {
        asked.push(request);
        return decide(request);
      },
      nodeLabels: () => ({ env: 'test' }),
      audit: (event) => audit.push(event),
      logger: process.env.SSH_SERVICE_DEBUG ? createLogger({ level: "debug" }) : undefined,
    });
    listener = createServer((socket) => {
      socket.setNoDelay(true);
      service.handleStream(socket, { remoteAddress: socket.remoteAddress });
    });
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    port = (listener.address() as AddressInfo).port;
  });

  after(async () => {
    if (reason) return;
    service.close();
    await new Promise((resolve) => listener.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  let counter = 0;
  function userIdentity(overrides: Partial<CertificateFields> = {}, ca: KeyObject = userCa.privateKey, extensions?: Record<string, string>): { key: string; cert: string } {
    const pair = generateKeyPairSync('ed25519');
    const name = `id-${++counter}`;
    const fields: CertificateFields = {
      type: 'user',
      publicKey: pair.publicKey,
      keyId: 'alice@example.com',
      principals: [login, 'alice'],
      validAfter: seconds(-60),
      validBefore: seconds(600),
      extensions: extensions ?? sshUserExtensions(
        { kind: 'user', username: 'alice@example.com', roles: ['access'], traits: { logins: [login] }, logins: [login], cluster: 'main', routeToCluster: 'main', mfaVerified: false, bot: false, expires: seconds(600) },
        { pty: true, portForwarding: false, agentForwarding: false },
      ),
      ...overrides,
    };
    const key = join(dir, name);
    writeFileSync(key, formatOpenSshPrivateKey(pair.privateKey), { mode: 0o600 });
    writeFileSync(`${key}-cert.pub`, `${formatCertificate(signCertificate(fields, ca), name)}\n`);
    return { key, cert: `${key}-cert.pub` };
  }

  function certifiedUser(overrides: Partial<CertificateFields>, pair: { privateKey: KeyObject; publicKey: KeyObject } = generateKeyPairSync('ed25519')): { privateKey: KeyObject; certificate: Buffer } {
    const fields: CertificateFields = {
      type: 'user', publicKey: pair.publicKey, keyId: 'alice@example.com', principals: [login], validAfter: seconds(-60), validBefore: seconds(600),
      extensions: sshUserExtensions(
        { kind: 'user', username: 'alice@example.com', roles: ['access'], traits: {}, logins: [login], cluster: 'main', routeToCluster: 'main', mfaVerified: false, bot: false, expires: seconds(600) },
        { pty: true, portForwarding: false, agentForwarding: false },
      ),
      ...overrides,
    };
    return { privateKey: pair.privateKey, certificate: signCertificate(fields, userCa.privateKey) };
  }

  /** Runs `command` with ssh2's client, logging in with a certificate (the patch's client side). */
  function ssh2Exec(
    privateKey: KeyObject,
    certificate: Buffer,
    user: string,
    command: string,
    onChannel?: (channel: ClientChannel) => void,
    target: { port?: number; hostAlgorithm?: string } = {},
  ): Promise<{ code?: number; signal?: string; stdout: string; error?: Error; hostKeyVerified: boolean }> {
    const parsed = ssh2.utils.parseKey(formatOpenSshPrivateKey(privateKey));
    if (parsed instanceof Error || Array.isArray(parsed)) throw new Error('cannot parse test key');
    const key: ParsedKey = Object.create(parsed);
    Object.defineProperty(key, 'type', { value: parseCertificate(certificate).algorithm });
    Object.defineProperty(key, 'getPublicSSH', { value: () => certificate });
    let hostKeyVerified = false;
    return new Promise((resolve) => {
      const client = new ssh2.Client();
      let stdout = '';
      client.on('ready', () => {
        client.exec(command, (error, channel) => {
          if (error) {
            client.end();
            resolve({ stdout, error, hostKeyVerified });
            return;
          }
          let code: number | undefined;
          let signal: string | undefined;
          channel.on('data', (data: Buffer) => (stdout += data));
          channel.on('exit', (exitCode: number | null, signalName?: string) => {
            if (exitCode !== null) code = exitCode;
            signal = signalName;
          });
          channel.on('close', () => {
            client.end();
            resolve({ code, signal, stdout, hostKeyVerified });
          });
          onChannel?.(channel);
        });
      });
      client.on('error', (error) => resolve({ stdout, error, hostKeyVerified }));
      client.connect({
        host: '127.0.0.1',
        port: target.port ?? port,
        username: user,
        // ssh2 keeps only string or Buffer `privateKey`s; a parsed (certificate) key goes in through authHandler.
        authHandler: [{ type: 'publickey', username: user, key }] as never,
        algorithms: { serverHostKey: [(target.hostAlgorithm ?? 'ssh-ed25519-cert-v01@openssh.com') as never] },
        hostVerifier: (blob: Buffer) => {
          try {
            verifyCertificate(parseCertificate(blob), { now: new Date(), trustedCAs: [hostCa.publicKey], expectedType: 'host', principal: '127.0.0.1' });
            hostKeyVerified = true;
            return true;
          } catch {
            return false;
          }
        },
      });
    });
  }

  /** Opens a pty shell (30x100) with ssh2's client and lets `drive` type into it. */
  function ssh2Shell(
    privateKey: KeyObject,
    certificate: Buffer,
    user: string,
    drive: (channel: ClientChannel, read: (pattern: RegExp) => Promise<void>) => Promise<void>,
  ): Promise<{ code?: number; stdout: string }> {
    const parsed = ssh2.utils.parseKey(formatOpenSshPrivateKey(privateKey));
    if (parsed instanceof Error || Array.isArray(parsed)) throw new Error('cannot parse test key');
    const key: ParsedKey = Object.create(parsed);
    Object.defineProperty(key, 'type', { value: parseCertificate(certificate).algorithm });
    Object.defineProperty(key, 'getPublicSSH', { value: () => certificate });
    return new Promise((resolve, reject) => {
      const client = new ssh2.Client();
      let stdout = '';
      client.on('ready', () => {
        client.shell({ rows: 30, cols: 100, term: 'xterm' }, (error, channel) => {
          if (error) return reject(error);
          let code: number | undefined;
          const waiters: Array<{ pattern: RegExp; resolve: () => void }> = [];
          channel.on('data', (data: Buffer) => {
            stdout += data;
            for (const waiter of [...waiters]) {
              if (waiter.pattern.test(stdout)) {
                waiters.splice(waiters.indexOf(waiter), 1);
                waiter.resolve();
              }
            }
          });
          channel.on('exit', (exitCode: number) => (code = exitCode));
          channel.on('close', () => {
            client.end();
            resolve({ code, stdout });
          });
          const read = (pattern: RegExp): Promise<void> =>
            pattern.test(stdout) ? Promise.resolve() : new Promise((done) => waiters.push({ pattern, resolve: done }));
          drive(channel, read).catch(reject);
        });
      });
      client.on('error', reject);
      client.connect({
        host: '127.0.0.1',
        port,
        username: user,
        authHandler: [{ type: 'publickey', username: user, key }] as never,
        algorithms: { serverHostKey: ['ssh-ed25519-cert-v01@openssh.com' as never] },
        hostVerifier: () => true,
      });
    });
  }

  function sshArgs(identity: { key: string; cert: string }): string[] {
    return [
      '-F', '/dev/null', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-i', identity.key, '-o', `CertificateFile=${identity.cert}`,
      '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=yes', '-o', 'ConnectTimeout=10',
    ];
  }

  function ssh(identity: { key: string; cert: string }, user: string, command: string, extra: string[] = []): Promise<Run> {
    return run('ssh', [...sshArgs(identity), ...extra, '-p', String(port), `${user}@127.0.0.1`, command]);
  }

  test('real ssh runs a command: output, exit status, audit and the identity the callback saw', async (t) => {
    if (reason) return t.skip(reason);
    audit.length = 0;
    asked.length = 0;
    const result = await ssh(userIdentity(), login, 'echo hi; echo oops >&2; exit 3');
    assert.equal(result.stdout, 'hi\n', `${result.stderr}\n${JSON.stringify(audit, null, 1)}`);
    assert.match(result.stderr, /oops/);
    assert.equal(result.code, 3, result.stderr);
    assert.equal(asked.length, 1);
    assert.equal(asked[0]!.login, login);
    assert.equal(asked[0]!.identity.username, 'alice@example.com');
    assert.deepEqual(asked[0]!.identity.roles, ['access']);
    assert.deepEqual(asked[0]!.identity.traits, { logins: [login] });
    assert.equal(asked[0]!.identity.cluster, 'main');
    assert.equal(asked[0]!.identity.permit.pty, true);
    assert.deepEqual(asked[0]!.nodeLabels, { env: 'test' });
    await waitFor(() => audit.some((e) => e.event === 'ssh.session.end'));
    const events = audit.map((e) => e.event);
    assert.deepEqual(events, ['ssh.auth.allow', 'ssh.session.start', 'ssh.exec', 'ssh.session.end']);
    assert.equal(audit[1]!.command, 'echo hi; echo oops >&2; exit 3');
    assert.equal(audit[2]!.command, 'echo hi; echo oops >&2; exit 3');
    assert.equal(audit[2]!.exitCode, 3);
    assert.equal(audit[3]!.exitCode, 3);
    assert.ok(audit[1]!.sessionId && audit[1]!.sessionId === audit[3]!.sessionId, 'start and end name the same session');
    assert.equal(audit[0]!.user, 'alice@example.com');
    assert.equal(audit[0]!.remoteAddress, '127.0.0.1');
  });

  test('exec gets a safe environment: LANG/LC_* pass, others do not; stdin reaches the command', async (t) => {
    if (reason) return t.skip(reason);
    const identity = userIdentity();
    const child = spawn('ssh', [...sshArgs(identity), '-o', 'SendEnv=LANG LC_TIME EVIL_VAR', '-p', String(port), `${login}@127.0.0.1`, 'echo "$LANG|$LC_TIME|${EVIL_VAR:-unset}|$HOME|$USER"; cat | wc -c'], {
      env: { ...process.env, LANG: 'C.UTF-8', LC_TIME: 'C', EVIL_VAR: 'x' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.stdin.end(Buffer.alloc(12345, 'a'));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 0, stderr);
    assert.equal(stdout, `C.UTF-8|C|unset|${userInfo().homedir}|${login}\n12345\n`);
  });

  test('exec stdin: 48 MiB into a command that reads late arrives byte-exact (packet memory is reused only after its write)', async (t) => {
    if (reason) return t.skip(reason);
    // The command does not read for a while, so the pipe fills, writes complete late and
    // many packets are in flight at once: memory handed back to ssh2 too early would be
    // overwritten by later packets before the kernel copied it.
    const data = randomBytes(48 * 1024 * 1024);
    const child = spawn('ssh', [...sshArgs(userIdentity()), '-p', String(port), `${login}@127.0.0.1`, 'sleep 1; sha256sum']);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.stdin.end(data);
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 0, stderr);
    assert.equal(stdout.split(' ')[0], createHash('sha256').update(data).digest('hex'));
  });

  const refusals: Array<[string, () => { key: string; cert: string }, string, RegExp]> = [
    ['a login not among the principals', () => userIdentity({ principals: ['alice'] }), login, /does not allow/],
    ['an expired certificate', () => userIdentity({ validAfter: seconds(-7200), validBefore: seconds(-3600) }), login, /expired/],
    ['a certificate from another CA', () => userIdentity({}, otherCa.privateKey), login, /not trusted/],
    ['a certificate without Postern extensions', () => userIdentity({}, userCa.privateKey, { 'permit-pty': '' }), login, /lacks the .*@postern\.dev extension/],
  ];
  for (const [name, make, user, why] of refusals) {
    test(`refuses ${name}: ssh exits 255 and audit says why`, async (t) => {
      if (reason) return t.skip(reason);
      audit.length = 0;
      asked.length = 0;
      const result = await ssh(make(), user, 'echo should-not-run');
      assert.equal(result.code, 255, result.stderr);
      assert.equal(result.stdout, '');
      assert.match(result.stderr, /Permission denied \(publickey\)/);
      assert.ok(audit.some((e) => e.event === 'ssh.auth.deny' && why.test(e.reason ?? '')), JSON.stringify(audit, null, 1));
      assert.ok(!audit.some((e) => e.event === 'ssh.auth.allow'));
      assert.equal(asked.length, 0, 'authorization is not asked for a bad certificate');
    });
  }

  test('the patched ssh2 client logs in with a user certificate and checks the host certificate', async (t) => {
    if (reason) return t.skip(reason);
    audit.length = 0;
    const { privateKey, certificate } = certifiedUser({});
    const result = await ssh2Exec(privateKey, certificate, login, 'echo from-ssh2; exit 5');
    assert.equal(result.error, undefined);
    assert.equal(result.stdout, 'from-ssh2\n');
    assert.equal(result.code, 5);
    assert.ok(result.hostKeyVerified, 'hostVerifier saw a host certificate from the host CA');
  });

  test('ECDSA host and user certificates work with the patched ssh2 client (signature conversion on both sides)', async (t) => {
    if (reason) return t.skip(reason);
    const hostKey = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const hostCert = signCertificate(
      { type: 'host', publicKey: hostKey.publicKey, keyId: 'node-ec', principals: ['127.0.0.1'], validAfter: seconds(-60), validBefore: seconds(3600) },
      hostCa.privateKey,
    );
    const ecService = new SshService({
      hostKeyPem: formatOpenSshPrivateKey(hostKey.privateKey),
      hostCertificate: formatCertificate(hostCert),
      trustedUserCAs: () => [userCa.publicKey],
      authorize: () => ({ allowed: true, reason: 'test' }),
    });
    const server = createServer((socket) => ecService.handleStream(socket, { remoteAddress: socket.remoteAddress }));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => {
      ecService.close();
      return new Promise((resolve) => server.close(resolve));
    });
    const ecPort = (server.address() as AddressInfo).port;
    const { privateKey, certificate } = certifiedUser({}, generateKeyPairSync('ec', { namedCurve: 'P-256' }));
    const result = await ssh2Exec(privateKey, certificate, login, 'echo ecdsa', undefined, { port: ecPort, hostAlgorithm: 'ecdsa-sha2-nistp384-cert-v01@openssh.com' });
    assert.equal(result.error, undefined);
    assert.equal(result.stdout, 'ecdsa\n');
    assert.ok(result.hostKeyVerified);
    const viaOpenSsh = await run('ssh', [...sshArgs(userIdentity()), '-p', String(ecPort), `${login}@127.0.0.1`, 'echo openssh-ecdsa-host']);
    assert.equal(viaOpenSsh.stdout, 'openssh-ecdsa-host\n', viaOpenSsh.stderr);
  });

  test('refuses a host certificate used as a user certificate (offered by ssh2; OpenSSH will not offer one)', async (t) => {
    if (reason) return t.skip(reason);
    audit.length = 0;
    asked.length = 0;
    const { privateKey, certificate } = certifiedUser({ type: 'host' });
    const result = await ssh2Exec(privateKey, certificate, login, 'echo should-not-run');
    assert.match(String(result.error), /All configured authentication methods failed/);
    assert.equal(result.stdout, '');
    assert.ok(audit.some((e) => e.event === 'ssh.auth.deny' && /host certificate, but a user certificate/.test(e.reason ?? '')), JSON.stringify(audit, null, 1));
    assert.equal(asked.length, 0);
  });

  test('a signal from the client reaches the command; the exit signal comes back', async (t) => {
    if (reason) return t.skip(reason);
    audit.length = 0;
    const { privateKey, certificate } = certifiedUser({});
    const result = await ssh2Exec(privateKey, certificate, login, 'echo started; exec sleep 30', (channel) => {
      channel.once('data', () => channel.signal('TERM'));
    });
    assert.equal(result.error, undefined);
    assert.equal(result.stdout, 'started\n');
    assert.equal(result.signal, 'SIGTERM', 'ssh2 names the signal TERM on the wire and SIGTERM to its caller');
    await waitFor(() => audit.some((e) => e.event === 'ssh.session.end'));
    assert.equal(audit.find((e) => e.event === 'ssh.session.end')!.signal, 'SIGTERM');
  });

  test('window-change resizes the pty (ssh2 client shell)', async (t) => {
    if (reason) return t.skip(reason);
    const { privateKey, certificate } = certifiedUser({});
    const output = await ssh2Shell(privateKey, certificate, login, async (channel, read) => {
      channel.write('stty size\n');
      await read(/30 100/);
      channel.setWindow(40, 120, 0, 0);
      await new Promise((resolve) => setTimeout(resolve, 200));
      channel.write('stty size; exit 4\n');
      await read(/40 120/);
    });
    assert.equal(output.code, 4, output.stdout);
  });

  test('a non-root login runs as that account with its own groups', async (t) => {
    if (reason) return t.skip(reason);
    if (process.getuid?.() !== 0) return t.skip('needs the test to run as root, to switch accounts');
    const account = otherAccount();
    if (!account) return t.skip('no non-root account with a login shell on this host');
    const { privateKey, certificate } = certifiedUser({ principals: [account.name] });
    const result = await ssh2Exec(privateKey, certificate, account.name, 'id -u; id -g; id -G; echo "$HOME|$USER"; pwd');
    assert.equal(result.error, undefined);
    const expectedGroups = (await run('id', ['-G', account.name])).stdout.trim();
    assert.equal(result.stdout, `${account.uid}\n${account.gid}\n${expectedGroups}\n${account.home}|${account.name}\n${account.home}\n`);
    assert.equal(result.code, 0);
  });

  test('serves a tunnel dial (a plain Duplex, not a socket) through the registry handler', async (t) => {
    if (reason) return t.skip(reason);
    const bridge = createServer((socket) => {
      const [inner, outer] = duplexPair();
      socket.pipe(outer).pipe(socket);
      socket.on('close', () => outer.destroy());
      void service.serviceHandler({ service: 'ssh', identity: 'proxy', headers: {}, stream: inner });
    });
    await new Promise<void>((resolve) => bridge.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise((resolve) => bridge.close(resolve)));
    const bridgePort = (bridge.address() as AddressInfo).port;
    const result = await run('ssh', [...sshArgs(userIdentity()), '-p', String(bridgePort), `${login}@127.0.0.1`, 'echo via-tunnel']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'via-tunnel\n');
  });

  test('a source-address option is checked against the client address the proxy put in the dial header', async (t) => {
    if (reason) return t.skip(reason);
    const dialWith = async (clientAddress: string) => {
      const bridge = createServer((socket) => {
        const [inner, outer] = duplexPair();
        socket.pipe(outer).pipe(socket);
        socket.on('close', () => outer.destroy());
        void service.serviceHandler({ service: 'ssh', identity: 'proxy', headers: { 'postern-client-address': clientAddress }, stream: inner });
      });
      await new Promise<void>((resolve) => bridge.listen(0, '127.0.0.1', resolve));
      try {
        const identity = userIdentity({ criticalOptions: { 'source-address': '203.0.113.0/24' } });
        return await run('ssh', [...sshArgs(identity), '-p', String((bridge.address() as AddressInfo).port), `${login}@127.0.0.1`, 'echo from-allowed-address']);
      } finally {
        await new Promise((resolve) => bridge.close(resolve));
      }
    };
    const allowed = await dialWith('203.0.113.9');
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.equal(allowed.stdout, 'from-allowed-address\n');
    audit.length = 0;
    const refused = await dialWith('198.51.100.7');
    assert.equal(refused.code, 255);
    await waitFor(() => audit.some((e) => e.event === 'ssh.auth.deny'));
    assert.match(audit.find((e) => e.event === 'ssh.auth.deny')!.reason ?? '', /may only be used from 203\.0\.113\.0\/24, not from 198\.51\.100\.7/);
  });

  test('without an authorization callback every login is denied', async (t) => {
    if (reason) return t.skip(reason);
    const events: SshAuditEvent[] = [];
    const hostKey = generateKeyPairSync('ed25519');
    const hostCert = signCertificate(
      { type: 'host', publicKey: hostKey.publicKey, keyId: 'node-2', principals: ['127.0.0.1'], validAfter: seconds(-60), validBefore: seconds(3600) },
      hostCa.privateKey,
    );
    const closed = new SshService({
      hostKeyPem: formatOpenSshPrivateKey(hostKey.privateKey),
      hostCertificate: formatCertificate(hostCert),
      trustedUserCAs: () => [userCa.publicKey],
      audit: (event) => events.push(event),
    });
    const server = createServer((socket) => closed.handleStream(socket, { remoteAddress: socket.remoteAddress }));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => {
      closed.close();
      return new Promise((resolve) => server.close(resolve));
    });
    const result = await run('ssh', [...sshArgs(userIdentity()), '-p', String((server.address() as AddressInfo).port), `${login}@127.0.0.1`, 'echo should-not-run']);
    assert.equal(result.code, 255, result.stderr);
    assert.ok(events.some((e) => e.event === 'ssh.auth.deny' && /no SSH authorization policy/.test(e.reason ?? '')), JSON.stringify(events, null, 1));
  });

  test('refuses when the authorization callback denies', async (t) => {
    if (reason) return t.skip(reason);
    audit.length = 0;
    decide = () => ({ allowed: false, reason: 'no role grants login root on env=test' });
    t.after(() => (decide = () => ({ allowed: true, reason: 'role access allows it' })));
    const result = await ssh(userIdentity(), login, 'echo should-not-run');
    assert.equal(result.code, 255, result.stderr);
    assert.equal(result.stdout, '');
    const denial = audit.find((e) => e.event === 'ssh.auth.deny' && /no role grants login/.test(e.reason ?? ''));
    assert.ok(denial, JSON.stringify(audit, null, 1));
    assert.equal(denial.user, 'alice@example.com');
  });

  test('refuses a plain key (no certificate)', async (t) => {
    if (reason) return t.skip(reason);
    audit.length = 0;
    const identity = userIdentity();
    const result = await run('ssh', [
      '-F', '/dev/null', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-i', identity.key, '-o', 'CertificateFile=/dev/null',
      '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=yes',
      '-p', String(port), `${login}@127.0.0.1`, 'true',
    ]);
    assert.equal(result.code, 255, result.stderr);
    assert.ok(audit.some((e) => e.event === 'ssh.auth.deny' && /accepts only Postern user certificates/.test(e.reason ?? '')));
  });

  test('ssh refuses the host when its certificate is not from the trusted host CA', async (t) => {
    if (reason) return t.skip(reason);
    const wrongKnownHosts = join(dir, 'wrong_known_hosts');
    writeFileSync(wrongKnownHosts, `@cert-authority * ${formatAuthorizedKey(otherCa.publicKey)}\n`);
    const identity = userIdentity();
    const result = await run('ssh', [
      '-F', '/dev/null', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-i', identity.key, '-o', `CertificateFile=${identity.cert}`,
      '-o', `UserKnownHostsFile=${wrongKnownHosts}`, '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=yes',
      '-p', String(port), `${login}@127.0.0.1`, 'true',
    ]);
    assert.equal(result.code, 255);
    assert.match(result.stderr, /Host key verification failed/);
  });

  test('interactive shell in a pty: tty, TERM, window size and exit status', async (t) => {
    if (reason) return t.skip(reason);
    audit.length = 0;
    const identity = userIdentity();
    // -tt forces a pty although stdin is a pipe; the shell reads commands from it.
    const child = spawn('ssh', [...sshArgs(identity), '-tt', '-p', String(port), `${login}@127.0.0.1`], { env: { ...process.env, TERM: 'xterm-256color' } });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.stdin.write('stty size; echo "TTY=$(tty) TERM=$TERM"; exit 7\n');
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 7, `${stdout}\n${stderr}`);
    assert.match(stdout, /TTY=\/dev\/pts\/\d+ TERM=xterm-256color/);
    assert.match(stdout, /^24 80\r?$/m, 'a client without a terminal size gets 80x24');
    await waitFor(() => audit.some((e) => e.event === 'ssh.session.end'));
    assert.deepEqual(audit.filter((e) => e.kind === 'shell').map((e) => e.event), ['ssh.session.start', 'ssh.session.end']);
    assert.equal(audit.find((e) => e.event === 'ssh.session.end')!.exitCode, 7);
  });

  test('ssh -tt with a command runs it in a pty', async (t) => {
    if (reason) return t.skip(reason);
    audit.length = 0;
    const result = await ssh(userIdentity(), login, 'tty; exit 6', ['-tt']);
    assert.equal(result.code, 6, result.stderr);
    assert.match(result.stdout, /^\/dev\/pts\/\d+\r?\n/);
    await waitFor(() => audit.some((e) => e.event === 'ssh.session.end'));
    assert.deepEqual(audit.filter((e) => e.kind === 'exec').map((e) => [e.event, e.command ?? e.exitCode]), [['ssh.session.start', 'tty; exit 6'], ['ssh.exec', 'tty; exit 6'], ['ssh.session.end', 6]]);
  });

  test('a certificate without permit-pty gets no terminal', async (t) => {
    if (reason) return t.skip(reason);
    audit.length = 0;
    const extensions = sshUserExtensions(
      { kind: 'user', username: 'bob', roles: ['access'], traits: {}, logins: [login], cluster: 'main', routeToCluster: 'main', mfaVerified: false, bot: false, expires: seconds(600) },
      { pty: false, portForwarding: false, agentForwarding: false },
    );
    // OpenSSH treats a refused terminal it was told to get (-tt) as fatal.
    const result = await ssh(userIdentity({}, userCa.privateKey, extensions), login, 'tty', ['-tt']);
    assert.equal(result.code, 255, result.stderr);
    assert.match(result.stderr, /PTY allocation request failed/);
    assert.ok(audit.some((e) => e.event === 'ssh.request.deny' && /permit-pty/.test(e.reason ?? '')));
  });

  test('sftp puts and gets a 5 MB file byte for byte', async (t) => {
    if (reason) return t.skip(reason);
    try {
      accessSync(SFTP_SERVER_PATH, constants.X_OK);
    } catch {
      return t.skip(`${SFTP_SERVER_PATH} missing: install Debian package openssh-sftp-server`);
    }
    audit.length = 0;
    const identity = userIdentity();
    const local = join(dir, 'upload.bin');
    const remote = join(dir, 'remote.bin');
    const back = join(dir, 'download.bin');
    const content = randomBytes(5 * 1024 * 1024);
    writeFileSync(local, content);
    const batch = join(dir, 'batch');
    writeFileSync(batch, `put ${local} ${remote}\nget ${remote} ${back}\n`);
    const result = await run('sftp', [...sshArgs(identity), '-b', batch, '-P', String(port), `${login}@127.0.0.1`]);
    assert.equal(result.code, 0, result.stderr);
    assert.ok(readFileSync(remote).equals(content), 'uploaded file matches');
    assert.ok(readFileSync(back).equals(content), 'downloaded file matches');
    await waitFor(() => audit.some((e) => e.event === 'ssh.session.end'));
    assert.ok(audit.some((e) => e.event === 'ssh.session.start' && e.kind === 'sftp'));
  });
});

/** A non-root account with a login shell, to check the switch of user. */
function otherAccount(): { name: string; uid: number; gid: number; home: string } | undefined {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const [name, , uid, gid, , home, shell] = line.split(':');
    if (!name || !shell || Number(uid) === 0 || !/\/(ba|da|z)?sh$/.test(shell)) continue;
    try {
      accessSync(home!, constants.X_OK);
    } catch {
      continue;
    }
    return { name, uid: Number(uid), gid: Number(gid), home: home! };
  }
  return undefined;
}

async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
