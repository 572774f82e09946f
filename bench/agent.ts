/**
 * `npm run bench -- agent`: the single binary as an agent host runs it.
 *
 *  - size of dist/postern, raw and gzipped (targets <= 115 MB, <= 45 MB);
 *  - start to "tunnel up": `env -i dist/postern start` spawned until it logs
 *    `tunnel up`, first with a join (token in the config), then restarts with the
 *    identity on disk (what a reboot does; median of 3; page cache warm) (target <= 1 s);
 *  - idle RSS of the agent with its SSH service and a database (`db:pg`), before any
 *    session (target <= 80 MB);
 *  - RSS and open file descriptors after N SSH sessions (default 1,000;
 *    `AGENT_BENCH_SESSIONS`), each a real OpenSSH connection through the proxy and the
 *    tunnel running `true`, 4 at a time, against the same after 50 warm-up sessions
 *    (lazy code and JIT settle there) (target: growth <= 10 %).
 *
 * The cluster (auth + proxy) runs from source; the agent is the binary. OpenSSH's
 * ProxyCommand is the binary's psh (starts in ~60 ms), so the client side is not Node
 * from source either. The results are printed last; the last line is the RSS growth.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { ensureBinary, distDir } from '../test/fixtures/binary.ts';
import { pshIn, signUpAndLogIn, startClusterProcess, type ClusterProcess } from '../test/fixtures/cluster-process.ts';
import { freePort } from '../test/fixtures/processes.ts';

const MB = 1024 * 1024;
const SESSIONS = Number(process.env.AGENT_BENCH_SESSIONS ?? 1_000);
const WARMUP = 50;
const PARALLEL = 4;

interface Agent {
  child: ChildProcess;
  logs(): string;
  stop(): Promise<void>;
}

/** Spawns the binary agent and resolves with it and the ms from spawn to its "tunnel up" line. */
async function startAgent(binary: string, config: string): Promise<{ agent: Agent; toTunnelMs: number }> {
  const started = performance.now();
  // Empty environment, as `env -i`; MALLOC_ARENA_MAX passes through to compare glibc arena settings.
  const env = process.env.MALLOC_ARENA_MAX ? { MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX } : {};
  const child = spawn(binary, ['start', '-c', config], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let logs = '';
  const toTunnelMs = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "tunnel up" within 30 s:\n${logs}`)), 30_000);
    child.once('exit', (code) => reject(new Error(`agent exited ${code}:\n${logs}`)));
    child.stderr!.on('data', (chunk: Buffer) => {
      logs += chunk.toString();
      if (logs.includes('"msg":"tunnel up"')) {
        clearTimeout(timer);
        resolve(performance.now() - started);
      }
    });
  });
  child.removeAllListeners('exit');
  const agent: Agent = {
    child,
    logs: () => logs,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
  return { agent, toTunnelMs };
}

function rssMb(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0) / 1024;
}

/** Anonymous memory (heap, stacks: what the process allocated) in MB, from smaps_rollup. */
function anonMb(pid: number): number {
  const match = /^Anonymous:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  return Number(match?.[1] ?? 0) / 1024;
}

/** V8 heap in use, in MB, from the agent's own /metrics (prom-client default metrics). */
async function heapUsedMb(diagPort: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${diagPort}/metrics`)).text();
  const match = /^postern_nodejs_heap_size_used_bytes (\d+(?:\.\d+)?)/m.exec(text);
  return Number(match?.[1] ?? Number.NaN) / MB;
}

function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One OpenSSH session `root@node true`; resolves with its exit code and stderr. */
function sshOnce(sshConfig: string, home: string, node: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('ssh', ['-F', sshConfig, '-o', 'BatchMode=yes', `root@${node}`, 'true'], { env: { ...process.env, POSTERN_HOME: home }, stdio: ['ignore', 'ignore', 'pipe'], timeout: 20_000 });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('exit', (code) => resolve({ code, stderr }));
  });
}

/** `count` sessions, `PARALLEL` at a time; throws on the first failure. */
async function sessions(count: number, sshConfig: string, home: string, node: string): Promise<number> {
  const started = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      const result = await sshOnce(sshConfig, home, node);
      if (result.code !== 0) throw new Error(`ssh session ${next} failed (${result.code}): ${result.stderr}`);
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));
  return performance.now() - started;
}

export async function run(): Promise<void> {
  const binary = await ensureBinary();
  const size = statSync(binary).size;
  const gzipped = (await promisify(gzip)(readFileSync(binary))).length;

  const scratch = mkdtempSync(path.join(tmpdir(), 'postern-bench-agent-'));
  let cluster: ClusterProcess | undefined;
  let agent: Agent | undefined;
  try {
    cluster = await startClusterProcess('bench');
    const added = await cluster.pctl(['tokens', 'add', '--type=node', '--format', 'json']);
    const token = (JSON.parse(added.stdout) as { token: string }).token;
    const home = path.join(scratch, 'home');
    await signUpAndLogIn(cluster, home, { name: 'bench', roles: 'access', logins: 'root', password: 'correct horse battery staple' });
    const generated = await pshIn(home)(['config']);
    // The binary's psh as ProxyCommand, instead of Node running the sources.
    const sshConfig = path.join(scratch, 'ssh_config');
    writeFileSync(sshConfig, generated.stdout.replace(/ProxyCommand \S+(?: \S+)*? proxy ssh/, `ProxyCommand ${path.join(distDir, 'psh')} proxy ssh`));
    const config = path.join(scratch, 'agent.yaml');
    const state = path.join(scratch, 'state');
    const diagPort = await freePort();
    // SSH (on by default) and a database (db:pg; nothing listens there, no session goes to it): the SSH+DB agent of the target.
    const database = `  db:\n    databases:\n      - name: pg\n        protocol: postgres\n        uri: 127.0.0.1:${await freePort()}\n`;
    writeFileSync(config, `data_dir: ${state}\ndiag_addr: 127.0.0.1:${diagPort}\nagent:\n  node_name: bench-node\n  proxy_addr: ${cluster.proxy}\n  token: ${token}\n  ca_pin: ${cluster.pin}\n${database}`);

    process.stdout.write(`binary ${(size / MB).toFixed(1)} MB; cluster up; starting the agent\n`);
    const first = await startAgent(binary, config);
    process.stdout.write(`first start (join) ${first.toTunnelMs.toFixed(0)} ms\n`);
    await first.agent.stop();
    const restarts: number[] = [];
    for (let i = 0; i < 3; i++) {
      const started = await startAgent(binary, config);
      restarts.push(started.toTunnelMs);
      if (i < 2) await started.agent.stop();
      else agent = started.agent;
    }
    process.stdout.write(`restarts ${restarts.map((ms) => ms.toFixed(0)).join(', ')} ms\n`);
    const pid = agent!.child.pid!;
    await sleep(5_000);
    const [idleRss, idleAnon] = [rssMb(pid), anonMb(pid)];
    process.stdout.write(`idle: RSS ${idleRss.toFixed(1)} MB, anonymous ${idleAnon.toFixed(1)} MB\n`);

    // First session: retried while the node record and the SSH service's user CAs arrive.
    for (let i = 0; ; i++) {
      const result = await sshOnce(sshConfig, home, 'bench-node');
      if (result.code === 0) break;
      if (i > 40) throw new Error(`no SSH session through the binary agent: ${result.stderr}`);
      await sleep(250);
    }
    await sessions(WARMUP, sshConfig, home, 'bench-node');
    await sleep(3_000);
    const [warmRss, warmAnon, warmFds] = [rssMb(pid), anonMb(pid), openFds(pid)];
    const sample = async (done: number) =>
      process.stdout.write(`after ${String(done).padStart(5)} sessions: RSS ${rssMb(pid).toFixed(1)} MB, anonymous ${anonMb(pid).toFixed(1)} MB, V8 heap used ${(await heapUsedMb(diagPort)).toFixed(1)} MB, ${openFds(pid)} fds\n`);
    await sample(WARMUP);
    process.stdout.write(`now ${SESSIONS} sessions, ${PARALLEL} at a time, sampled every quarter\n`);
    let elapsed = 0;
    for (let quarter = 1; quarter <= 4; quarter++) {
      elapsed += await sessions(Math.round((SESSIONS * quarter) / 4) - Math.round((SESSIONS * (quarter - 1)) / 4), sshConfig, home, 'bench-node');
      await sleep(3_000);
      await sample(WARMUP + Math.round((SESSIONS * quarter) / 4));
    }
    const [afterRss, afterAnon, afterFds] = [rssMb(pid), anonMb(pid), openFds(pid)];
    const growth = (afterRss - warmRss) / warmRss;

    const verdict = (ok: boolean) => (ok ? 'ok' : 'OVER TARGET');
    const median = [...restarts].sort((a, b) => a - b)[1]!;
    process.stdout.write([
      '',
      `binary size          ${(size / MB).toFixed(1)} MB (target <= 115) ${verdict(size / MB <= 115)}`,
      `gzipped              ${(gzipped / MB).toFixed(1)} MB (target <= 45) ${verdict(gzipped / MB <= 45)}`,
      `start to tunnel up   ${first.toTunnelMs.toFixed(0)} ms first start (joins); ${median.toFixed(0)} ms restart median of ${restarts.map((ms) => ms.toFixed(0)).join('/')} (target <= 1000) ${verdict(median <= 1000)}`,
      `idle RSS (SSH+DB)    ${idleRss.toFixed(1)} MB (target <= 80) ${verdict(idleRss <= 80)}; of it anonymous ${idleAnon.toFixed(1)} MB, the rest clean pages of the binary file`,
      `sessions             ${SESSIONS} in ${(elapsed / 1000).toFixed(1)} s (${(SESSIONS / (elapsed / 1000)).toFixed(1)}/s); fds ${warmFds} -> ${afterFds}`,
      `anonymous after      ${warmAnon.toFixed(1)} MB -> ${afterAnon.toFixed(1)} MB`,
      `RSS after sessions   ${warmRss.toFixed(1)} MB after ${WARMUP} -> ${afterRss.toFixed(1)} MB after ${WARMUP + SESSIONS}: ${(growth * 100).toFixed(1)} % growth (target <= 10 %) ${verdict(growth <= 0.1)}`,
      '',
    ].join('\n'));
  } catch (error) {
    process.stderr.write(`agent log tail:\n${agent?.logs().slice(-4000)}\n`);
    throw error;
  } finally {
    await agent?.stop();
    await cluster?.daemon.kill();
    if (cluster) rmSync(cluster.daemon.dir, { recursive: true, force: true });
    rmSync(scratch, { recursive: true, force: true });
  }
}

if (import.meta.main) await run();
