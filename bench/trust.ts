/**
 * Trusted-cluster latency, in one run: `ssh root@NODE true` with the real OpenSSH client
 * (ProxyCommand `psh proxy ssh`, as `psh config` writes it) to a node in the root,
 * through the root proxy, against a node in a leaf, through the root proxy, the leaf's
 * reverse tunnel and the leaf proxy. Root, leaf and both agents are separate
 * `postern start` processes on loopback (test/fixtures/cluster-process.ts). Runs are
 * interleaved so drift hits both sides alike. Also prints the CPU time the root and
 * leaf cluster processes spent per connection.
 *
 * Last line: leaf / root mean latency (target <= 1.3). Must run as root (logs in as root).
 * `TRUST_ROUNDS=N` sets the connections per side (default 12).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createResource, pshIn, signUpAndLogIn, startTrustedPair } from '../test/fixtures/cluster-process.ts';
import { stopAll } from '../test/fixtures/processes.ts';

const ROUNDS = Number(process.env.TRUST_ROUNDS ?? 12);

function _ssh(config: string, home: string, target: string): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    execFile('ssh', ['-F', config, '-o', 'BatchMode=yes', target, 'true'], { env: { ...process.env, POSTERN_HOME: home }, timeout: 60_000 }, (error, _out, stderr) => {
      if (error) reject(new Error(`ssh ${target} failed: ${stderr}`));
      else resolve(performance.now() - started);
    });
  });
}

/** User + system CPU microseconds of a process so far, from /proc. */
function _cpuUs(pid: number | undefined): number {
  if (!pid) return 0;
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100; // clock ticks (USER_HZ 100)
}

function _summary(samples: number[]): { mean: number; p50: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  return { mean: samples.reduce((a, b) => a + b, 0) / samples.length, p50: sorted[Math.floor(sorted.length / 2)]! };
}

export async function run(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench trust logs in as root on its agents: run it as root');
  const pair = await startTrustedPair({ roleMap: [{ remote: 'leaf-admin', local: ['access'] }], rootAgent: true });
  const home = mkdtempSync(path.join(tmpdir(), 'postern-bench-trust-'));
  try {
    const role = await createResource(pair.root, 'kind: role\nversion: v1\nmetadata: { name: leaf-admin }\nspec:\n  allow:\n    cluster_labels: { env: prod }\n');
    if (role.code !== 0) throw new Error(role.stderr);
    await signUpAndLogIn(pair.root, home, { name: 'bob', roles: 'access,leaf-admin', logins: 'root', password: 'a long and happy password' });
    const psh = pshIn(home);
    const rootConfig = path.join(home, 'root.config');
    const leafConfig = path.join(home, 'leaf.config');
    writeFileSync(rootConfig, (await psh(['config'])).stdout);
    writeFileSync(leafConfig, (await psh(['config', '--cluster', 'leaf'])).stdout);
    // Warm up both paths (and wait for the leaf tunnel).
    for (let attempt = 0; ; attempt++) {
      try {
        await _ssh(rootConfig, home, 'root@root-node');
        await _ssh(leafConfig, home, 'root@leaf-node');
        break;
      } catch (error) {
        if (attempt > 50) throw error;
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
    }
    const pids = [pair.root.daemon.child.pid, pair.leaf.daemon.child.pid];
    const samples = { root: [] as number[], leaf: [] as number[] };
    const cpu = { root: 0, leaf: 0 };
    for (let i = 0; i < ROUNDS; i++) {
      for (const side of i % 2 === 0 ? (['root', 'leaf'] as const) : (['leaf', 'root'] as const)) {
        const before = pids.reduce<number>((sum, pid) => sum + _cpuUs(pid), 0);
        samples[side].push(await _ssh(side === 'root' ? rootConfig : leafConfig, home, `root@${side}-node`));
        cpu[side] += pids.reduce<number>((sum, pid) => sum + _cpuUs(pid), 0) - before;
      }
    }
    const root = _summary(samples.root);
    const leaf = _summary(samples.leaf);
    const line = (name: string, s: { mean: number; p50: number }, cpuUs: number) =>
      `${name.padEnd(26)} mean ${s.mean.toFixed(0).padStart(5)} ms  p50 ${s.p50.toFixed(0).padStart(5)} ms  cluster CPU ${(cpuUs / ROUNDS / 1000).toFixed(1)} ms/connection\n`;
    process.stdout.write(`ssh root@NODE true, ${ROUNDS} connections per side, interleaved (OpenSSH + psh proxy ssh)\n`);
    process.stdout.write(line('node in the root', root, cpu.root));
    process.stdout.write(line('node in the leaf (trust)', leaf, cpu.leaf));
    process.stdout.write(`leaf/root latency ratio: ${(leaf.mean / root.mean).toFixed(2)}\n`);
  } finally {
    await stopAll(pair.daemons());
    rmSync(home, { recursive: true, force: true });
  }
}

if (import.meta.main) await run();
