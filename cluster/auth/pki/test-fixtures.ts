/**
 * Shared by the pki tests (not a test itself): sample identities, leaf keys, a
 * scratch directory and a runner for the real `openssl` / `ssh-keygen` binaries.
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HostIdentity, UserIdentity } from './identity.ts';

export function sampleUser(overrides: Partial<UserIdentity> = {}): UserIdentity {
  return {
    kind: 'user',
    username: 'alice@example.com',
    roles: ['dev', 'auditor'],
    traits: { team: ['web', 'db'], 'kube/groups': ['viewers'] },
    logins: ['alice', 'ubuntu'],
    cluster: 'root',
    routeToCluster: 'leaf-1',
    mfaVerified: true,
    bot: false,
    expires: new Date(0), // ignored on issue: the certificate's notAfter is the expiry
    ...overrides,
  };
}

export function sampleHost(overrides: Partial<HostIdentity> = {}): HostIdentity {
  return {
    kind: 'host',
    hostId: '6f1c2b9e-1d5a-4c1e-9a43-7e0f3d9b2a11',
    nodeName: 'node1',
    cluster: 'root',
    systemRoles: ['node', 'db'],
    expires: new Date(0),
    ...overrides,
  };
}

export interface LeafKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicPem: string;
  privatePem: string;
}

export function newLeafKey(kind: 'p256' | 'ed25519' | 'rsa2048' = 'p256'): LeafKey {
  const { privateKey, publicKey } =
    kind === 'p256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : kind === 'ed25519'
        ? generateKeyPairSync('ed25519')
        : generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    privateKey,
    publicKey,
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }) as string,
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  };
}

/** A scratch directory for files handed to real tools; `cleanup` removes it. */
export async function scratchDir(): Promise<{ path: string; file(name: string, content: string | Uint8Array): Promise<string>; cleanup(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), 'postern-pki-'));
  return {
    path,
    async file(name, content) {
      const full = join(path, name);
      await writeFile(full, content);
      return full;
    },
    cleanup: () => rm(path, { recursive: true, force: true }),
  };
}

/** Runs a real binary; resolves with its exit code and output (never rejects on a non-zero exit). */
export function runTool(file: string, args: string[], input?: Uint8Array | string): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { encoding: 'buffer', maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number') reject(error);
      else resolve({ code: typeof error?.code === 'number' ? error.code : 0, stdout, stderr: stderr.toString() });
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}
