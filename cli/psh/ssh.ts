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

/** `host` and `port` of a `host:port` or `[v6]:port` proxy address. */
function splitProxy(address: string): { host: string; port: string } {
  const match = /^\[?([^\]]+?)\]?:(\d+)$/.exec(address);
  return match ? { host: match[1]!, port: match[2]! } : { host: address, port: '3080' };
}

/** The command that runs psh again: the single binary, or Node with cli/main.ts. */
export function pshCommand(): string[] {
  if (sea.isSea()) return [process.execPath, 'psh'];
  return [process.execPath, path.resolve(import.meta.dirname, '..', 'main.ts'), 'psh'];
}

function _quote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `"${word.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}

/** The OpenSSH client configuration for the profile of `proxy` (or the current one). */
export async function sshConfig(options: { proxy?: string; hosts?: string; jump?: boolean; cluster?: string }): Promise<string> {
  const profile = await loadProfile(options.proxy);
  const dir = profileDir(profile.proxy);
  const keys = [
    `    IdentityFile ${_quote(path.join(dir, profileFiles.sshKey))}`,
    `    CertificateFile ${_quote(path.join(dir, profileFiles.sshCert))}`,
    `    UserKnownHostsFile ${_quote(path.join(dir, profileFiles.knownHosts))}`,
    '    StrictHostKeyChecking yes',
    '    IdentitiesOnly yes',
  ];
  if (options.jump) {
    // The jump server routes within the proxy's own cluster only.
    if (options.cluster) throw new UsageError('--jump reaches nodes of the proxy\'s own cluster only; leave out --jump for --cluster');
    // The proxy's own SSH port is its public port; the first block keeps the hop to it from jumping to itself.
    const { host, port } = splitProxy(profile.proxy);
    return [
      `# Postern: nodes of ${profile.proxy} for ${profile.username}, through the proxy's SSH jump server (psh config --jump)`,
      `Host ${host}`,
      '    ProxyJump none',
      ...keys,
      `Host ${options.hosts ?? '*'}`,
      `    ProxyJump ${profile.username}@${host.includes(':') ? `[${host}]` : host}:${port}`,
      ...keys,
      '',
    ].join('\n');
  }
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
  process.stdout.write(await sshConfig({ proxy: stringOption(invocation, 'proxy'), hosts: stringOption(invocation, 'hosts'), jump: invocation.options.jump === true, cluster: stringOption(invocation, 'cluster') }));
  return 0;
}

export async function ssh(invocation: Invocation): Promise<number> {
  const [target, ...command] = invocation.positionals;
  if (!target) throw new UsageError('expected [login@]NODE [COMMAND...]');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'psh-ssh-'));
  try {
    const file = path.join(dir, 'ssh_config');
    await writeFile(file, await sshConfig({ proxy: stringOption(invocation, 'proxy'), cluster: stringOption(invocation, 'cluster') }), { mode: 0o600 });
    const forwards = (invocation.options.local as string[] | undefined) ?? [];
    for (const spec of forwards) {
      if (!/^(?:(?:\[[^\]]+\]|[^:\s]+):)?\d{1,5}:(?:\[[^\]]+\]|[^:\s]+):\d{1,5}$/.test(spec)) throw new UsageError(`-L ${spec}: expected [BIND:]PORT:HOST:HOSTPORT, e.g. -L 8080:localhost:80`);
    }
    const args = [
      '-F', file,
      ...(invocation.options.tty ? ['-t'] : []),
      ...(invocation.options['forward-agent'] ? ['-A'] : []),
      ...(invocation.options['no-command'] ? ['-N'] : []),
      ...(forwards.length ? ['-o', 'ExitOnForwardFailure=yes'] : []),
      ...forwards.flatMap((spec) => ['-L', spec]),
      target,
      ...(command.length ? ['--', ...command] : []),
    ];
    return await new Promise<number>((resolve, reject) => {
      const child = spawn(stringOption(invocation, 'ssh-binary') ?? 'ssh', args, { stdio: 'inherit' });
      child.once('error', (error) => reject(new UsageError(`cannot run ssh: ${error.message}; install the OpenSSH client`)));
      child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1)));
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function scp(invocation: Invocation): Promise<number> {
  if (invocation.positionals.length < 2) throw new UsageError('expected SOURCE... TARGET, with nodes written [login@]NODE:PATH');
  if (!invocation.positionals.some((arg) => /^(?:[^@/:]+@)?[^/:]+:/.test(arg))) throw new UsageError('no argument names a node: write remote paths as [login@]NODE:PATH');
  return withSshConfig(stringOption(invocation, 'proxy'), (file) => run(stringOption(invocation, 'scp-binary') ?? 'scp', ['-F', file, ...invocation.positionals], 'scp'));
}

/** Writes the profile's OpenSSH config to a private temporary file for `use`, then removes it. */
async function withSshConfig<T>(proxy: string | undefined, use: (file: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'psh-ssh-'));
  try {
    const file = path.join(dir, 'ssh_config');
    await writeFile(file, await sshConfig({ proxy }), { mode: 0o600 });
    return await use(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Runs an OpenSSH program with the terminal; resolves with its exit code (128 + signal when killed). */
function run(program: string, args: string[], name: string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const child = spawn(program, args, { stdio: 'inherit' });
    child.once('error', (error) => reject(new UsageError(`cannot run ${name}: ${error.message}; install the OpenSSH client`)));
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1)));
  });
}
