/**
 * `npm run bench -- ssh`: SSH through Postern against OpenSSH on the same host, in the
 * same run, with the same ssh client.
 *
 *   direct        ssh -> sshd                                   (baseline)
 *   ssh -J        ssh -> sshd (jump) -> sshd                    (what users would pick instead)
 *   postern       ssh (psh config: ProxyCommand psh) -> proxy -> tunnel -> agent
 *   postern -J    ssh (psh config --jump: ProxyJump) -> proxy's jump server -> tunnel -> agent
 *
 * Measures connect + exec of `true` (median of BENCH_SSH_ROUNDS, default 10, taken in
 * turns) and bulk upload of BENCH_SSH_MIB MiB (default 512) into `cat > /dev/null`
 * (median of BENCH_SSH_BULK_ROUNDS, default 3, in turns; Postern's CPU per MiB over all of them).
 * Postern's processes (cluster, agent, psh) run as they ship, from the built binary (built
 * first when stale); BENCH_SSH_FROM_SOURCE=1 runs them from source.
 * Sessions log in as BENCH_SSH_LOGIN (default: the current user); pick an account whose
 * ~/.bashrc is Debian's default: sshd makes bash read it for every exec, Postern does
 * not, and a slow one (pyenv, nvm) would flatter Postern. Prints the ratios last.
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cpuSeconds, sampleDescendantsCpu } from './cpu.ts';
import { ensureBinary } from '../test/fixtures/binary.ts';
import { fromBinary, startDaemon, stopAll, type DaemonProcess } from '../test/fixtures/processes.ts';
import { pshIn, signUpAndLogIn, startClusterProcess, type ClusterProcess } from '../test/fixtures/cluster-process.ts';
import { sshdSkipReason, startSshd, type Sshd } from '../test/fixtures/sshd.ts';

interface Path {
  name: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
}

export async function run(): Promise<void> {
  const skip = sshdSkipReason();
  if (skip) {
    process.stdout.write(`ssh bench skipped: ${skip}\n`);
    return;
  }
  const login = process.env.BENCH_SSH_LOGIN ?? os.userInfo().username;
  const rounds = Number(process.env.BENCH_SSH_ROUNDS ?? 10);
  const mib = Number(process.env.BENCH_SSH_MIB ?? 512);
  const fromSourceOnly = process.env.BENCH_SSH_FROM_SOURCE === '1';
  const bulkRounds = Number(process.env.BENCH_SSH_BULK_ROUNDS ?? 3);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'postern-bench-ssh-'));
  let cluster: ClusterProcess | undefined;
  let agent: DaemonProcess | undefined;
  const sshds: Sshd[] = [];
  try {
    // OpenSSH baseline: a user CA, a certificate for `login`, a target sshd and a jump sshd.
    const keygen = (args: string[]) => {
      const result = spawnSync('ssh-keygen', ['-q', ...args], { encoding: 'utf8' });
      if (result.status !== 0) throw new Error(`ssh-keygen ${args.join(' ')}: ${result.stderr}`);
    };
    keygen(['-t', 'ed25519', '-N', '', '-f', path.join(dir, 'ca')]);
    keygen(['-t', 'ed25519', '-N', '', '-f', path.join(dir, 'id')]);
    keygen(['-s', path.join(dir, 'ca'), '-I', 'bench', '-n', login, '-V', '-5m:+2h', path.join(dir, 'id.pub')]);
    const caLine = spawnSync('cat', [path.join(dir, 'ca.pub')], { encoding: 'utf8' }).stdout;
    const target = await startSshd({ trustedUserCAKeys: [caLine], extraConfig: ['LogLevel ERROR'] });
    sshds.push(target);
    const jump = await startSshd({ trustedUserCAKeys: [caLine], extraConfig: ['LogLevel ERROR'] });
    sshds.push(jump);
    const baseConfig = path.join(dir, 'openssh_config');
    writeFileSync(baseConfig, [
      'Host *',
      `    IdentityFile ${path.join(dir, 'id')}`,
      `    CertificateFile ${path.join(dir, 'id-cert.pub')}`,
      '    IdentitiesOnly yes',
      '    StrictHostKeyChecking no',
      '    UserKnownHostsFile /dev/null',
      '    LogLevel ERROR',
      '',
    ].join('\n'));

    // Postern: a cluster process, an agent process, a user logged in with psh; all three the
    // built binary, as they ship (its V8 flags matter: the agent spent 2.4-2.8 ms per MiB of
    // bulk from the binary against 3.5 from source), unless BENCH_SSH_FROM_SOURCE=1.
    const binary = fromSourceOnly ? undefined : await ensureBinary();
    const command = binary ? fromBinary(binary, 'info') : undefined;
    cluster = await startClusterProcess('bench', { logLevel: 'info', command });
    const token = (JSON.parse((await cluster.pctl(['tokens', 'add', '--type=node', '--format', 'json'])).stdout) as { token: string }).token;
    const { proxy, pin } = cluster;
    agent = await startDaemon('agent', (data, diag) =>
      `data_dir: ${data}\ndiag_addr: ${diag}\nagent:\n  node_name: bench-node\n  proxy_addr: ${proxy}\n  token: ${token}\n  ca_pin: ${pin}\n`, { logLevel: 'info', command });
    await agent.waitReady();
    const home = path.join(dir, 'home');
    await signUpAndLogIn(cluster, home, { name: 'bencher', roles: 'access', logins: login, password: 'a long benchmark password' });
    const psh = pshIn(home);
    // The ProxyCommand is the psh that writes the config.
    const pshConfigText = async (args: string[]): Promise<string> => {
      if (!binary) return (await psh(args)).stdout;
      const out = spawnSync(binary, ['psh', ...args], { env: { ...process.env, POSTERN_HOME: home }, encoding: 'utf8' });
      if (out.status !== 0) throw new Error(`psh ${args.join(' ')}: ${out.stderr}`);
      return out.stdout;
    };
    const pshConfig = path.join(dir, 'psh_config');
    writeFileSync(pshConfig, await pshConfigText(['config']));
    const jumpConfig = path.join(dir, 'psh_jump_config');
    writeFileSync(jumpConfig, await pshConfigText(['config', '--jump']));
    const pshEnv = { ...process.env, POSTERN_HOME: home };

    const paths: Path[] = [
      { name: 'direct', args: ['-F', baseConfig, '-p', String(target.port), `${login}@127.0.0.1`] },
      { name: 'ssh -J', args: ['-F', baseConfig, '-J', `${login}@127.0.0.1:${jump.port}`, '-p', String(target.port), `${login}@127.0.0.1`] },
      { name: 'postern', args: ['-F', pshConfig, `${login}@bench-node`], env: pshEnv },
      { name: 'postern -J', args: ['-F', jumpConfig, `${login}@bench-node`], env: pshEnv },
    ];
    // Not spawnSync: this process drains the test sshds' log pipes, and a blocked loop would stall them.
    // Postern's own processes: the cluster (proxy), the agent and, while a session runs,
    // psh's ProxyCommand (sampled among the session's descendants).
    const daemons = [cluster.daemon.child.pid!, agent.child.pid!];
    const posternCpu = new Map<string, { proxy: number; agent: number; psh: number }>();
    const ssh = async (p: Path, command: string, input?: string): Promise<number> => {
      const started = performance.now();
      const daemonsBefore = daemons.map(cpuSeconds);
      const child = spawn(input ? 'sh' : 'ssh', input ? ['-c', input] : ['-o', 'BatchMode=yes', ...p.args, command], { env: p.env ?? process.env, stdio: ['ignore', 'ignore', 'pipe'] });
      const psh = input && p.env ? sampleDescendantsCpu(child.pid!) : undefined;
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const [code] = (await once(child, 'exit')) as [number | null];
      const ms = performance.now() - started;
      if (code !== 0) throw new Error(`${p.name}: ssh exited ${code}: ${stderr}`);
      if (psh) {
        const [proxy, agentCpu] = daemons.map((pid, i) => cpuSeconds(pid) - daemonsBefore[i]!) as [number, number];
        const pshCpu = psh.stop().filter((d) => /\bpsh\b|cli\/main\.ts/.test(d.command)).reduce((sum, d) => sum + d.cpu, 0);
        const sum = posternCpu.get(p.name) ?? { proxy: 0, agent: 0, psh: 0 };
        posternCpu.set(p.name, { proxy: sum.proxy + proxy, agent: sum.agent + agentCpu, psh: sum.psh + pshCpu });
      }
      return ms;
    };
    for (const p of paths) await ssh(p, 'true'); // warm-up: caches, first recordings directory, JIT

    const times = new Map<string, number[]>(paths.map((p) => [p.name, []]));
    for (let i = 0; i < rounds; i++) for (const p of paths) times.get(p.name)!.push(await ssh(p, 'true'));
    const latency = new Map(paths.map((p) => [p.name, median(times.get(p.name)!)]));

    // Bulk in turns too: one transfer per path swings by a tenth from run to run on 2 shared cores.
    const bulkRuns = new Map<string, number[]>(paths.map((p) => [p.name, []]));
    for (let i = 0; i < bulkRounds; i++) {
      for (const p of paths) {
        const quoted = ['ssh', '-o', 'BatchMode=yes', ...p.args, "'cat > /dev/null'"].map((w) => (w.startsWith("'") ? w : `'${w}'`)).join(' ');
        const ms = await ssh(p, '', `head -c ${mib}M /dev/zero | ${quoted}`);
        bulkRuns.get(p.name)!.push(mib / (ms / 1000));
      }
    }
    const throughput = new Map(paths.map((p) => [p.name, median(bulkRuns.get(p.name)!)]));

    process.stdout.write(`login ${login}; ${rounds} rounds; ${mib} MiB bulk, median of ${bulkRounds}; Postern ${binary ? `from the binary ${path.relative(process.cwd(), binary)}` : 'from source'}\n`);
    process.stdout.write(`${'path'.padEnd(12)} ${'connect+exec ms'.padStart(16)} ${'bulk MiB/s'.padStart(11)}\n`);
    for (const p of paths) {
      const runs = bulkRuns.get(p.name)!.map((r) => r.toFixed(0)).join(', ');
      process.stdout.write(`${p.name.padEnd(12)} ${latency.get(p.name)!.toFixed(0).padStart(16)} ${throughput.get(p.name)!.toFixed(0).padStart(11)}   (runs: ${runs})\n`);
    }
    const perMiB = (seconds: number) => ((seconds * 1000) / (mib * bulkRounds)).toFixed(2);
    for (const [name, cpu] of posternCpu) {
      process.stdout.write(`${name} bulk: Postern's CPU ${perMiB(cpu.proxy + cpu.agent + cpu.psh)} ms/MiB (proxy ${perMiB(cpu.proxy)}, agent ${perMiB(cpu.agent)}, psh ${perMiB(cpu.psh)})\n`);
    }
    const ratio = (map: Map<string, number>, name: string) => (map.get(name)! / map.get('direct')!).toFixed(2);
    process.stdout.write(
      `ssh vs direct sshd: connect+exec postern ${ratio(latency, 'postern')}x, postern -J ${ratio(latency, 'postern -J')}x, OpenSSH ssh -J ${ratio(latency, 'ssh -J')}x (target <= 1.5x); ` +
        `bulk postern ${ratio(throughput, 'postern')}x, postern -J ${ratio(throughput, 'postern -J')}x, OpenSSH ssh -J ${ratio(throughput, 'ssh -J')}x (target >= 0.5x)\n`,
    );
  } catch (error) {
    // What Postern's daemons said last is where a failed transfer's cause shows.
    for (const daemon of [cluster?.daemon, agent]) {
      if (daemon) process.stderr.write(`--- ${daemon.name} (last lines of its log)\n${daemon.logs().split('\n').slice(-15).join('\n')}\n`);
    }
    throw error;
  } finally {
    for (const sshd of sshds) await sshd.stop().catch(() => undefined);
    await stopAll([agent, cluster?.daemon]);
    rmSync(dir, { recursive: true, force: true });
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
