/**
 * The host account behind a login, and how to start a process as it.
 *
 * Accounts come from `getent passwd LOGIN` (files, LDAP, sssd: whatever NSS serves).
 * When the agent runs as root, a session for another account starts through
 * `setpriv --reuid --regid --init-groups`, so the process gets the account's own
 * supplementary groups (Node's uid/gid options drop them, and node-pty keeps root's).
 * When the agent does not run as root it can only start sessions as itself.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { userInfo } from 'node:os';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export const SETPRIV_PATH = '/usr/bin/setpriv';
const LOGIN_PATTERN = /^[A-Za-z0-9._][A-Za-z0-9._-]{0,31}\$?$/;

/** A host account. */
export interface HostUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

/** Why a login cannot get a session here (the message is shown and audited). */
export class HostUserError extends Error {}

/** Looks the login up; throws HostUserError for an unknown or unusable account. */
export async function lookupHostUser(login: string): Promise<HostUser> {
  if (!LOGIN_PATTERN.test(login)) throw new HostUserError(`login ${JSON.stringify(login)} is not a valid account name on this host`);
  let stdout: string;
  try {
    ({ stdout } = await execFileAsync('getent', ['passwd', login], { timeout: 10_000 }));
  } catch {
    throw new HostUserError(`login ${JSON.stringify(login)} has no account on this host; ask the host's admin to create it or use another login`);
  }
  const fields = stdout.trim().split('\n')[0]?.split(':') ?? [];
  const [name, , uidText, gidText, , home, shell] = fields;
  const uid = Number(uidText);
  const gid = Number(gidText);
  if (fields.length < 7 || name !== login || !Number.isInteger(uid) || !Number.isInteger(gid)) {
    throw new HostUserError(`the account entry for ${JSON.stringify(login)} on this host is malformed`);
  }
  return { name, uid, gid, home: home || '/', shell: shell || '/bin/sh' };
}

/** Can this agent start processes as `user`? Returns the refusal reason, or undefined. */
export function cannotRunAs(user: HostUser): string | undefined {
  const self = process.getuid?.();
  if (self === 0) {
    if (user.uid === 0) return undefined;
    try {
      accessSync(SETPRIV_PATH, constants.X_OK);
      return undefined;
    } catch {
      return `${SETPRIV_PATH} is missing, so the agent cannot start sessions as ${user.name}: install Debian package util-linux`;
    }
  }
  if (self === user.uid) return undefined;
  return `the agent runs as ${userInfo().username} and can only start sessions as that account, not as ${user.name}`;
}

/** The argv that runs `file args...` as `user` (prefixing setpriv when the agent must switch accounts). */
export function commandAs(user: HostUser, file: string, args: readonly string[]): { file: string; args: string[] } {
  if (process.getuid?.() === 0 && user.uid !== 0) {
    return { file: SETPRIV_PATH, args: [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--init-groups', '--', file, ...args] };
  }
  return { file, args: [...args] };
}
