/** Where `psh db login` keeps a database's certificate, key and choice (psh db, psh proxy db). */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { PosternError } from '../../protocols/errors.ts';
import { profileDir, type Profile } from './profile.ts';
import { clusterCaFile } from './proxy-ssh.ts';

/** What `psh db login` remembers next to the certificate. */
export interface DbLogin {
  name: string;
  protocol: string;
  db_user: string;
  db_name?: string;
}

export function dbDir(profile: Profile): string {
  return path.join(profileDir(profile.proxy), 'db');
}

/** The certificate files and remembered choice of a `psh db login`. */
export async function loadDbLogin(profile: Profile, name: string): Promise<{ login: DbLogin; certFile: string; keyFile: string; caFile: string }> {
  const dir = dbDir(profile);
  const text = await readFile(path.join(dir, `${name}.json`), 'utf8').catch(() => undefined);
  if (!text) throw new PosternError('PST_NOT_LOGGED_IN', `not logged in to database "${name}"; run psh db login ${name} --db-user USER`);
  return { login: JSON.parse(text) as DbLogin, certFile: path.join(dir, `${name}.crt`), keyFile: path.join(dir, `${name}.key`), caFile: path.join(profileDir(profile.proxy), clusterCaFile) };
}

