/**
 * Every agent serves SSH through its tunnel with real RBAC: an in-process auth server,
 * the real proxy, and an agent joined by token. The real OpenSSH client logs in with a
 * user certificate signed by the cluster's user CA, through a local TCP port that
 * pipes each connection into a fresh `ssh` dial of the proxy's tunnel registry, and
 * checks the agent's host certificate against the cluster's host CA. Refusals (a role
 * not allowing the login on this node's labels, a login not in the certificate, a
 * certificate naming another cluster) end with ssh exit 255 and an `access.denied`
 * event at auth with the reason.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startTestProxy } from '../cluster/proxy/testdata/proxy-fixture.ts';
import { parseConfig } from '../cluster/common/config.ts';
import { silentLogger } from '../cluster/common/logger.ts';
import { formatOpenSshPrivateKey } from '../protocols/ssh/private-key.ts';
import { formatAuthorizedKey } from '../protocols/ssh/public-key.ts';
import { formatCertificate, signCertificate } from '../protocols/ssh/certificate.ts';
import { sshUserExtensions } from '../cluster/api/ssh-identity.ts';
import { startAgent } from '../agent/agent.ts';
import type { AuditEvent } from '../cluster/auth/audit/audit-event.ts';

const sshMissing = (() => {
  try {
    accessSync('/usr/bin/ssh', constants.X_OK);
    return process.getuid?.() === 0 ? undefined : 'logs in as root: run as root';
  } catch {
    return 'ssh missing: install Debian package openssh-client';
  }
})();

async function until<T>(what: string, check: () => T | undefined | Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function run(command: string, args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

test('an agent serves SSH through its tunnel: the real ssh client logs in with a cluster certificate; RBAC refusals are audited at auth', { skip: sshMissing }, async () => {
  const t = await startTestProxy();
  const dir = mkdtempSync(path.join(tmpdir(), 'postern-agent-ssh-'));
  const deps = t.auth.server.deps;
  const admin = t.auth.connectAs(['admin']).client;
  let listener: net.Server | undefined;
  const agentDir = path.join(dir, 'agent');
  try {
    const { secret } = await deps.tokens.add({ roles: ['node'], ttlMs: 600_000, labels: { env: 'prod' }, singleUse: true });
    const status = await admin.status({});
    const pin = status.authorities.find((a) => a.kind === 'host')?.tlsPin ?? '';
    const config = parseConfig(
      `data_dir: ${agentDir}\nagent:\n  proxy_addr: ${t.proxy.address}\n  token: ${secret}\n  ca_pin: ${pin}\n  node_name: db-1\n  ssh:\n    labels: { team: infra }\n`,
      path.join(dir, 'postern.yaml'),
    );
    await admin.createResources({
      source: 'test',
      upsert: false,
      text: [
        'kind: role\nversion: v1\nmetadata: { name: prod-root }\nspec:\n  allow:\n    logins: [root]\n    node_labels: { env: prod, team: infra }\n',
        'kind: role\nversion: v1\nmetadata: { name: staging-root }\nspec:\n  allow:\n    logins: [root]\n    node_labels: { env: staging }\n',
      ].join('---\n'),
    });
    await deps.users.create('alice', { roles: ['prod-root'], traits: { logins: ['root'] } });
    await deps.users.create('bob', { roles: ['staging-root'], traits: {} });

    const agent = await startAgent(config, { logger: silentLogger() });
    try {
      const hostId = agent.identity.current.host_id ?? '';
      await until('the tunnel at the proxy', () => t.proxy.registry.has(hostId));
      await until('the user CAs at the agent', () => /user CA key/.test(agent.ssh?.health().detail ?? '') || undefined).catch((e) => { throw new Error(`${e.message}: ${agent.ssh?.health().detail}`); });
      const node = await until('the node announcing ssh', async () =>
        (await deps.presence.list('node')).find((p) => p.host_id === hostId && p.services.includes('ssh')));
      assert.deepEqual(node.labels, { env: 'prod', team: 'infra' });

      // ssh -> 127.0.0.1:port -> a fresh `ssh` dial through the proxy's tunnel per connection.
      listener = net.createServer((socket) => {
        t.proxy.registry.dial(hostId, 'ssh', 'test').then(
          (stream) => {
            socket.pipe(stream).pipe(socket);
            stream.on('error', () => socket.destroy());
            socket.on('error', () => stream.destroy());
          },
          () => socket.destroy(),
        );
      });
      await new Promise<void>((resolve) => listener!.listen(0, '127.0.0.1', resolve));
      const port = (listener.address() as AddressInfo).port;

      const hostCa = (await admin.exportAuthorities({ kind: 'host' })).authorities[0]?.sshPublicKey ?? '';
      const knownHosts = path.join(dir, 'known_hosts');
      writeFileSync(knownHosts, hostCa.split('\n').filter(Boolean).map((line) => `@cert-authority * ${line}\n`).join(''));

      let n = 0;
      const permit = { pty: true, portForwarding: false, agentForwarding: false };
      const certificate = (username: string, roles: string[], logins: string[], cluster = 'alpha'): string => {
        const ssh = generateKeyPairSync('ed25519');
        const tls = generateKeyPairSync('ed25519');
        const identity = {
          kind: 'user' as const, username, roles, traits: { logins }, logins, cluster, routeToCluster: cluster,
          mfaVerified: false, bot: false, expires: new Date(Date.now() + 600_000),
        };
        // The issuer refuses identities of other clusters; sign that one with the user CA directly.
        const sshCertificate = cluster === 'alpha'
          ? deps.issuer.issueUser({
            identity,
            sshPublicKey: formatAuthorizedKey(ssh.publicKey),
            tlsPublicKey: tls.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
            permit,
          }).sshCertificate
          : formatCertificate(signCertificate({
            type: 'user', publicKey: ssh.publicKey, keyId: username, principals: logins, validAfter: new Date(Date.now() - 60_000),
            validBefore: identity.expires, extensions: sshUserExtensions(identity, permit),
          }, deps.authorities.sshSigner('user')), username);
        const key = path.join(dir, `id-${++n}`);
        writeFileSync(key, formatOpenSshPrivateKey(ssh.privateKey), { mode: 0o600 });
        writeFileSync(`${key}-cert.pub`, `${sshCertificate}\n`);
        return key;
      };
      const ssh = (key: string, login: string, command: string) =>
        run('ssh', [
          '-F', '/dev/null', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-i', key, '-o', `CertificateFile=${key}-cert.pub`,
          '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=yes', '-o', 'HostKeyAlias=db-1',
          '-o', 'ConnectTimeout=20', '-p', String(port), `${login}@127.0.0.1`, command,
        ]);
      const denials = async (user: string): Promise<AuditEvent[]> =>
        (await deps.audit.search({ from: new Date(Date.now() - 600_000), to: new Date(Date.now() + 60_000), types: ['access.denied'], limit: 100, order: 'asc' }))
          .filter((e) => e.identity.user === user && e.resource?.kind === 'node');

      const alice = certificate('alice', ['prod-root'], ['root']);
      const ok = await ssh(alice, 'root', 'echo hi');
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(ok.stdout, 'hi\n');
      const sessions = await until('the session events at auth', async () => {
        const events = await deps.audit.search({ from: new Date(Date.now() - 600_000), to: new Date(Date.now() + 60_000), types: ['session.start', 'session.end', 'ssh.login'], limit: 100, order: 'asc' });
        return events.some((e) => e.type === 'session.end') ? events : undefined;
      });
      assert.deepEqual(sessions.map((e) => [e.type, e.identity.user, e.resource?.name, e.outcome]), [
        ['ssh.login', 'alice', 'db-1', 'allow'],
        ['session.start', 'alice', 'db-1', 'success'],
        ['session.end', 'alice', 'db-1', 'success'],
      ]);
      assert.equal(sessions[1]?.fields['command'], 'echo hi');
      assert.equal(sessions[1]?.fields['emitted_by'], hostId);
      assert.equal(sessions[2]?.fields['exit_code'], 0);

      // A role that allows root only on staging nodes: refused here, and auth hears why.
      const bob = certificate('bob', ['staging-root'], ['root']);
      const refused = await ssh(bob, 'root', 'echo hi');
      assert.equal(refused.code, 255, refused.stdout);
      assert.match(refused.stderr, /Permission denied/);
      const bobDenied = await until('bob\'s denial at auth', async () => (await denials('bob'))[0]);
      assert.equal(bobDenied.resource?.name, 'db-1');
      assert.equal(bobDenied.outcome, 'deny');
      assert.match(bobDenied.reason ?? '', /^bob may not log in as root on this node: no role allows/);
      assert.deepEqual(bobDenied.identity.roles, ['staging-root']);

      // A login the certificate does not name is refused before any role is asked.
      const carol = certificate('carol', ['prod-root'], ['ubuntu']);
      const wrongLogin = await ssh(carol, 'root', 'echo hi');
      assert.equal(wrongLogin.code, 255);
      const carolDenied = await until('the wrong-login denial at auth', async () =>
        (await deps.audit.search({ from: new Date(Date.now() - 600_000), to: new Date(Date.now() + 60_000), types: ['access.denied'], limit: 100, order: 'asc' }))
          .find((e) => e.resource?.kind === 'node' && e.fields['login'] === 'root' && /carol/.test(e.reason ?? '')));
      assert.match(carolDenied.reason ?? '', /principal|login|not .*root/i);

      // A certificate naming a cluster this one does not trust.
      const dave = certificate('dave', ['prod-root'], ['root'], 'beta');
      assert.equal((await ssh(dave, 'root', 'echo hi')).code, 255);
      const daveDenied = await until('the other-cluster denial at auth', async () => (await denials('dave'))[0]);
      assert.match(daveDenied.reason ?? '', /issued by cluster "beta", which cluster alpha does not trust/);

      // alice still gets in (the refusals left nothing behind).
      assert.equal((await ssh(alice, 'root', 'echo again')).stdout, 'again\n');
    } finally {
      await agent.stop();
    }
  } finally {
    listener?.close();
    await t.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
