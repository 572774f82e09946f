import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startTestAuth, type TestAuth } from '../../test/fixtures/auth.ts';
import { IdentityFileError, writeIdentityFile, type IdentityFile } from '../../cluster/api/identity-file.ts';
import { AgentIdentity, agentIdentityPath, loadAgentIdentity } from './agent-identity.ts';
import { certificateInfo, halfLife } from './certificate-info.ts';
import { IdentityUnusableError } from './errors.ts';
import { generateHostKeys } from './host-keys.ts';

let auth: TestAuth;
const dirs: string[] = [];
before(async () => { auth = await startTestAuth(); });
after(async () => {
  await auth.stop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function dataDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'postern-identity-'));
  dirs.push(dir);
  return dir;
}

async function agentIdentity(ttlMs = 3_600_000): Promise<IdentityFile> {
  const keys = await generateHostKeys();
  const issued = auth.server.issueHostIdentity({ hostId: 'host-1', nodeName: 'n1', systemRoles: ['node'], ttlMs });
  return { ...issued, ssh_cert: 'ssh-ed25519-cert-v01@openssh.com AAAA n1', ssh_key_pem: keys.sshKeyPem, proxy_addr: '127.0.0.1:3080' };
}

test('no identity file: undefined, so the caller can join', async () => {
  assert.equal(await loadAgentIdentity(dataDir()), undefined);
});

test('a file that is not JSON: the error names the file and says to re-join with postern join', async () => {
  const dir = dataDir();
  writeFileSync(agentIdentityPath(dir), '{"version": 1, "clus');
  await assert.rejects(loadAgentIdentity(dir), (error: unknown) => {
    assert.ok(error instanceof IdentityFileError);
    assert.equal(error.code, 'PST_IDENTITY_FILE');
    assert.ok(error.message.startsWith(`identity file ${agentIdentityPath(dir)} is corrupted (not JSON); move it aside and re-join with a token: postern join --proxy HOST:PORT --token TOKEN --ca-pin sha256:... --data-dir ${dir}`), error.message);
    return true;
  });
});

test('a file with a field missing: the error names the field too', async () => {
  const dir = dataDir();
  const { cert_pem: _dropped, ...rest } = await agentIdentity();
  writeFileSync(agentIdentityPath(dir), JSON.stringify(rest));
  await assert.rejects(loadAgentIdentity(dir), (error: unknown) => {
    assert.ok(error instanceof IdentityFileError);
    assert.match(error.message, /is corrupted:\n.*cert_pem/);
    assert.match(error.message, /postern join --proxy/);
    return true;
  });
});

test('an expired certificate or a key of another certificate is unusable, with the fix', async () => {
  const dir = dataDir();
  const identity = await agentIdentity(60_000);
  await writeIdentityFile(agentIdentityPath(dir), identity);
  assert.equal((await loadAgentIdentity(dir))?.host_id, 'host-1');
  await assert.rejects(loadAgentIdentity(dir, new Date(Date.now() + 120_000)), (error: unknown) => {
    assert.ok(error instanceof IdentityUnusableError);
    assert.match(error.message, /holds a host certificate that expired at .*; move it aside and re-join with a token: postern join/);
    return true;
  });
  const other = await agentIdentity();
  await writeIdentityFile(agentIdentityPath(dir), { ...identity, key_pem: other.key_pem });
  await assert.rejects(loadAgentIdentity(dir), /holds a key that does not match its certificate/);
  await writeIdentityFile(agentIdentityPath(dir), { ...identity, ssh_cert: undefined });
  await assert.rejects(loadAgentIdentity(dir), /has no SSH host certificate or key/);
});

test('AgentIdentity.replace writes atomically with 0600 and announces the change', async () => {
  const dir = dataDir();
  const file = agentIdentityPath(dir);
  const first = await agentIdentity();
  const holder = new AgentIdentity(file, first);
  const second = await agentIdentity(7_200_000);
  const seen: IdentityFile[] = [];
  holder.on('change', (identity) => seen.push(identity));
  await holder.replace(second);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal(JSON.parse(readFileSync(file, 'utf8')).cert_pem, second.cert_pem);
  assert.equal(holder.current, second);
  assert.deepEqual(seen, [second]);
  assert.ok(holder.info.notAfter.getTime() > certificateInfo(first.cert_pem).notAfter.getTime());
});

test('certificateInfo reads host id and roles; half life is midway', async () => {
  const identity = auth.server.issueHostIdentity({ hostId: 'p-9', nodeName: 'p', systemRoles: ['proxy', 'node'], ttlMs: 3_600_000 });
  const info = certificateInfo(identity.cert_pem);
  assert.equal(info.commonName, 'p-9');
  assert.deepEqual(info.organizations, ['proxy', 'node']);
  assert.equal(halfLife({ notBefore: new Date(1000), notAfter: new Date(3000) }).getTime(), 2000);
});
