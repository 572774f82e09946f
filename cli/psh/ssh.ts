/**
 * `psh config` prints an OpenSSH configuration that reaches nodes through the proxy
 * with the current profile's keys; `psh ssh` runs the system ssh with it.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sea from 'node:sea';
import { UsageError, stringOption, type Invocation } from '../command.ts';
import { loadProfile, profileDir, profileFiles } from './profile.ts';

/** The command that runs psh again: the single binary, or Node with cli/main.ts. */
export function pshCommand(): string[] {
  if (sea.isSea()) return [process.execPath, 'psh'];
  return [process.execPath, path.resolve(import.meta.dirname, '..', 'main.ts'), 'psh'];
}

function _quote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `"${word.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}

/** The OpenSSH client configuration for the profile of `proxy` (or the current one). */
export async function sshConfig(options: { proxy?: string; hosts?: string; cluster?: string }): Promise<string> {
  const profile = await loadProfile(options.proxy);
  const dir = profileDir(profile.proxy);
  const cluster = options.cluster ? ['--cluster', options.cluster] : [];
  const proxyCommand = [...pshCommand(), 'proxy', 'ssh', '--proxy', profile.proxy, ...cluster, '%r@%h:%p'].map(_quote).join(' ');
  const where = options.cluster ?? profile.route;
  return [
    `# Postern: nodes of ${where ? `cluster ${where} via ` : ''}${profile.proxy} for ${profile.username} (psh config)`,
    `Host ${options.hosts ?? '*'}`,
    `    ProxyCommand ${proxyCommand}`,
    `    IdentityFile ${_quote(path.join(dir, profileFiles.sshKey))}`,
    `    CertificateFile ${_quote(path.join(dir, profileFiles.sshCert))}`,
    `    UserKnownHostsFile ${_quote(path.join(dir, profileFiles.knownHosts))}`,
    '    StrictHostKeyChecking yes',
    '    IdentitiesOnly yes',
    '',
  ].join('\n');
}

export async function config(invocation: Invocation): Promise<number> {
  process.stdout.write(await sshConfig({ proxy: stringOption(invocation, 'proxy'), hosts: stringOption(invocation, 'hosts'), cluster: stringOption(invocation, 'cluster') }));
  return 0;
}

export async function ssh(invocation: Invocation): Promise<number> {
  const [target, ...command] = invocation.positionals;
  if (!target) throw new UsageError('expected [login@]NODE [COMMAND...]');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'psh-ssh-'));
  try {
    const file = path.join(dir, 'ssh_config');
    await writeFile(file, await sshConfig({ proxy: stringOption(invocation, 'proxy'), cluster: stringOption(invocation, 'cluster') }), { mode: 0o600 });
    const args = ['-F', file, ...(invocation.options.tty ? ['-t'] : []), target, ...(command.length ? ['--', ...command] : [])];
    return await new Promise<number>((resolve, reject) => {
      const child = spawn(stringOption(invocation, 'ssh-binary') ?? 'ssh', args, { stdio: 'inherit' });
      child.once('error', (error) => reject(new UsageError(`cannot run ssh: ${error.message}; install the OpenSSH client`)));
      child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1)));
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
