/** The auth API behind the profile's proxy (SNI pass-through), with the profile's user certificate. */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { connectAuth } from '../../cluster/api/auth-client.ts';
import { loadProfile, profileDir, profileFiles } from './profile.ts';
import { clusterCaFile } from './proxy-ssh.ts';

/** Runs `use` with an auth client for the profile of `proxy` (or the current one), closing it after. */
export async function withAuth<T>(proxy: string | undefined, use: (client: ReturnType<typeof connectAuth>['client']) => Promise<T>): Promise<T> {
  const profile = await loadProfile(proxy);
  const dir = profileDir(profile.proxy);
  const [key, cert, ca] = await Promise.all([profileFiles.tlsKey, profileFiles.tlsCert, clusterCaFile].map((file) => readFile(path.join(dir, file), 'utf8')));
  const connection = connectAuth(profile.proxy, { key_pem: key!, cert_pem: cert!, ca_pems: [ca!] });
  try {
    return await use(connection.client);
  } finally {
    connection.close();
  }
}
