/**
 * What `psh login` keeps under `~/.postern/` (or $POSTERN_HOME): one folder per proxy
 * with the private keys generated here, the certificates the cluster issued for them,
 * and the cluster CA pinned at first login; `current` names the active profile.
 * Every file is 0600 and written atomically.
 */
import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { writeFileAtomic } from '../../cluster/common/atomic-file.ts';
import { PosternError } from '../../protocols/errors.ts';

export interface Profile {
  proxy: string;
  cluster: string;
  username: string;
  roles: string[];
  logins: string[];
  expires: string;
  /** The host CA the proxy's certificate must chain to. */
  caPems: string[];
  sshHostCaKeys: string[];
  /** The cluster the certificates route to (psh login LEAF); empty or absent: the proxy's own. */
  route?: string;
}

export function posternHome(): string {
  return process.env.POSTERN_HOME ?? path.join(os.homedir(), '.postern');
}

/** The folder of one proxy's profile. */
export function profileDir(proxy: string): string {
  return path.join(posternHome(), 'profiles', proxy.replace(/[^A-Za-z0-9.-]/g, '_'));
}

export const profileFiles = {
  profile: 'profile.json',
  tlsKey: 'tls.key',
  tlsCert: 'tls.crt',
  sshKey: 'id_ed25519',
  sshCert: 'id_ed25519-cert.pub',
  knownHosts: 'known_hosts',
} as const;

/** Writes every part of a profile and makes it the current one. */
export async function saveProfile(profile: Profile, files: { tlsKeyPem: string; tlsCertPem: string; sshKeyPem: string; sshCert: string }): Promise<string> {
  const dir = profileDir(profile.proxy);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(path.join(dir, profileFiles.tlsKey), files.tlsKeyPem, 0o600);
  await writeFileAtomic(path.join(dir, profileFiles.tlsCert), files.tlsCertPem, 0o600);
  await writeFileAtomic(path.join(dir, profileFiles.sshKey), files.sshKeyPem, 0o600);
  await writeFileAtomic(path.join(dir, profileFiles.sshCert), files.sshCert + '\n', 0o600);
  const knownHosts = profile.sshHostCaKeys.map((key) => `@cert-authority * ${key}`).join('\n') + '\n';
  await writeFileAtomic(path.join(dir, profileFiles.knownHosts), knownHosts, 0o600);
  await writeFileAtomic(path.join(dir, profileFiles.profile), JSON.stringify(profile, null, 2) + '\n', 0o600);
  await writeFileAtomic(path.join(posternHome(), 'current'), profile.proxy + '\n', 0o600);
  return dir;
}

/** The named profile, or the current one. */
export async function loadProfile(proxy?: string): Promise<Profile> {
  const name = proxy ?? (await readFile(path.join(posternHome(), 'current'), 'utf8').catch(() => '')).trim();
  if (!name) throw new PosternError('PST_NOT_LOGGED_IN', 'not logged in; run: psh login --proxy HOST:3080 --user NAME');
  const text = await readFile(path.join(profileDir(name), profileFiles.profile), 'utf8').catch(() => undefined);
  if (!text) throw new PosternError('PST_NOT_LOGGED_IN', `no profile for ${name}; run: psh login --proxy ${name} --user NAME`);
  return JSON.parse(text) as Profile;
}

/** Every stored profile. */
export async function listProfiles(): Promise<Profile[]> {
  const dirs = await readdir(path.join(posternHome(), 'profiles')).catch(() => [] as string[]);
  const profiles: Profile[] = [];
  for (const dir of dirs) {
    const text = await readFile(path.join(posternHome(), 'profiles', dir, profileFiles.profile), 'utf8').catch(() => undefined);
    if (text) profiles.push(JSON.parse(text) as Profile);
  }
  return profiles;
}

/** Deletes a profile's keys and certificates. */
export async function removeProfile(proxy: string): Promise<void> {
  await rm(profileDir(proxy), { recursive: true, force: true });
  const current = (await readFile(path.join(posternHome(), 'current'), 'utf8').catch(() => '')).trim();
  if (current === proxy) await rm(path.join(posternHome(), 'current'), { force: true });
}
