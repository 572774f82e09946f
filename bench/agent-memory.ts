/**
 * `node bench/agent-memory.ts`: where the binary agent's resident memory goes, for
 * working on bench/agent.ts's RSS figures. Starts a cluster from source and the agent
 * binary (`AGENT_BINARY`, default dist/postern, as built: no rebuild) with its SSH
 * service and a database, waits until idle, prints the RSS split by what backs it
 * (sections of the binary file, anonymous memory) and the V8 heap from /metrics;
 * with `SESSIONS=N` runs N OpenSSH sessions and prints the split again.
 * With `BULK_MB=N`, one more session reads N MB from the host (`head -c`), and the agent's CPU
 * time per 100 MB is printed: what a V8 flag costs where the agent's JS works hardest.
 * `HOLD=1` keeps everything running (the agent's pid is printed) until Ctrl-C.
 * `AGENT_ENV='K=V K2=V2'` adds variables to the agent's otherwise empty environment.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { openSync, readSync, closeSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { distDir } from '../test/fixtures/binary.ts';
import { pshIn, signUpAndLogIn, startClusterProcess } from '../test/fixtures/cluster-process.ts';
import { freePort } from '../test/fixtures/processes.ts';

const MB = 1024 * 1024;
const PAGE = 4096;
const binary = process.env.AGENT_BINARY ?? path.join(distDir, 'postern');

interface Section { name: string; offset: number; size: number }

/** The binary's file-backed sections (readelf -S), to name what a resident page holds. */
function sections(file: string): Section[] {
  const text = execFileSync('readelf', ['-S', '-W', file], { encoding: 'utf8' });
  const rows: Section[] = [];
  for (const line of text.split('\n')) {
    const match = /^\s*\[\s*\d+\]\s+(\S*)\s+(\S+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+([0-9a-f]+)/.exec(line);
    if (!match || match[2] === 'NOBITS' || match[2] === 'NULL') continue;
    rows.push({ name: match[1] || `(unnamed ${match[2]})`, offset: parseInt(match[3]!, 16), size: parseInt(match[4]!, 16) });
  }
  return rows;
}

/**
 * Who made an anonymous mapping, as far as its shape tells: glibc's thread arenas are heaps
 * aligned to their 64 MiB reservation; V8's code space is the writable and executable one;
 * V8's heap pages are 256 KiB each. What a thread arena holds stays resident after free()
 * (docs/build.md, "Memory").
 */
function anonymousKind(start: number, end: number, perms: string): string {
  if (perms.includes('x')) return '[anon] V8 code space';
  if (end - start === 256 * 1024) return '[anon] V8 heap pages';
  if (start % (64 * MB) === 0) return '[anon] malloc thread arenas';
  return '[anon] other (V8 large objects, stacks, mmap)';
}

/** Resident bytes by backing: `binary:SECTION`, other files by path, `[anon] ...` by kind (needs /proc/PID/pagemap). */
export function residentSplit(pid: number): Map<string, number> {
  const exe = realpathSync(`/proc/${pid}/exe`);
  const table = sections(exe);
  const split = new Map<string, number>();
  const add = (key: string, bytes: number) => split.set(key, (split.get(key) ?? 0) + bytes);
  const pagemap = openSync(`/proc/${pid}/pagemap`, 'r');
  try {
    for (const line of readFileSync(`/proc/${pid}/maps`, 'utf8').trim().split('\n')) {
      const [range, perms, offsetHex, , , ...rest] = line.split(/\s+/);
      const [start, end] = range!.split('-').map((hex) => parseInt(hex, 16)) as [number, number];
      const file = rest.join(' ');
      if (file === '[vsyscall]') continue;
      const pages = (end - start) / PAGE;
      const entries = Buffer.alloc(pages * 8);
      readSync(pagemap, entries, 0, entries.length, (start / PAGE) * 8);
      for (let i = 0; i < pages; i++) {
        const entry = entries.readBigUInt64LE(i * 8);
        if (!(entry >> 63n)) continue;
        if (file !== exe) {
          add(file || anonymousKind(start, end, perms!), PAGE);
          continue;
        }
        const at = parseInt(offsetHex!, 16) + i * PAGE;
        const section = table.find((s) => s.offset <= at && at < s.offset + s.size)?.name ?? '(between sections)';
        add(`binary ${section}${(entry >> 61n) & 1n ? '' : ' (copied: anonymous)'}`, PAGE);
      }
    }
  } finally {
    closeSync(pagemap);
  }
  return split;
}

function rollup(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const match of readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').matchAll(/^(\w+):\s+(\d+) kB/gm)) out[match[1]!] = Number(match[2]) / 1024;
  return out;
}

async function metrics(diagPort: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${diagPort}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const match of text.matchAll(/^postern_(nodejs_heap_size_used_bytes|nodejs_heap_size_total_bytes|nodejs_external_memory_bytes|process_resident_memory_bytes|nodejs_heap_space_size_used_bytes\{space="\w+"\}) (\S+)/gm)) out[match[1]!] = Number(match[2]) / MB;
  return out;
}

async function report(pid: number, diagPort: number, title: string): Promise<void> {
  const roll = rollup(pid);
  const lines = [`-- ${title}: RSS ${roll.Rss!.toFixed(1)} MB, anonymous ${roll.Anonymous!.toFixed(1)} MB, file ${(roll.Rss! - roll.Anonymous!).toFixed(1)} MB`];
  for (const [key, bytes] of [...residentSplit(pid)].sort((a, b) => b[1] - a[1])) if (bytes >= 256 * 1024) lines.push(`${(bytes / MB).toFixed(1).padStart(7)} MB  ${key}`);
  for (const [key, value] of Object.entries(await metrics(diagPort))) lines.push(`${value.toFixed(1).padStart(7)} MB  ${key}`);
  process.stdout.write(lines.join('\n') + '\n');
}

/** User + system CPU seconds the process has used, from /proc/PID/stat (clock ticks of 10 ms). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function sshOnce(sshConfig: string, home: string): Promise<number | null> {
  return new Promise((resolve) => {
    const child = spawn('ssh', ['-F', sshConfig, '-o', 'BatchMode=yes', 'root@bench-node', 'true'], { env: { ...process.env, POSTERN_HOME: home }, stdio: 'ignore', timeout: 20_000 });
    child.once('exit', (code) => resolve(code));
  });
}

const scratch = mkdtempSync(path.join(tmpdir(), 'postern-agent-memory-'));
const cluster = await startClusterProcess('bench');
let agent: ChildProcess | undefined;
try {
  const token = (JSON.parse((await cluster.pctl(['tokens', 'add', '--type=node', '--format', 'json'])).stdout) as { token: string }).token;
  const home = path.join(scratch, 'home');
  await signUpAndLogIn(cluster, home, { name: 'bench', roles: 'access', logins: 'root', password: 'correct horse battery staple' });
  const sshConfig = path.join(scratch, 'ssh_config');
  writeFileSync(sshConfig, (await pshIn(home)(['config'])).stdout.replace(/ProxyCommand \S+(?: \S+)*? proxy ssh/, `ProxyCommand ${path.join(distDir, 'psh')} proxy ssh`));
  const diagPort = await freePort();
  const config = path.join(scratch, 'agent.yaml');
  writeFileSync(config, [
    `data_dir: ${path.join(scratch, 'state')}`, `diag_addr: 127.0.0.1:${diagPort}`, 'agent:', '  node_name: bench-node',
    `  proxy_addr: ${cluster.proxy}`, `  token: ${token}`, `  ca_pin: ${cluster.pin}`,
    '  db:', '    databases:', '      - name: pg', '        protocol: postgres', `        uri: 127.0.0.1:${await freePort()}`, '',
  ].join('\n'));
  const env = Object.fromEntries((process.env.AGENT_ENV ?? '').split(/\s+/).filter(Boolean).map((pair) => pair.split(/=(.*)/s).slice(0, 2) as [string, string]));
  // The whole file in the page cache first, as bench/agent.ts leaves it (it gzips the binary):
  // the kernel maps cached neighbours of each page the agent touches, so the file part of
  // the RSS depends on what is cached.
  readFileSync(binary);
  const spawned = performance.now();
  agent = spawn(binary, ['start', '-c', config], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let logs = '';
  agent.stderr!.on('data', (chunk: Buffer) => (logs += chunk.toString()));
  for (let waited = 0; !logs.includes('"msg":"tunnel up"'); waited += 100) {
    if (waited > 30_000 || agent.exitCode !== null) throw new Error(`agent not up:\n${logs}`);
    await sleep(100);
  }
  const pid = agent.pid!;
  process.stdout.write(`-- start (with a join) to tunnel up: ${(performance.now() - spawned).toFixed(0)} ms\n`);
  await sleep(5_000);
  await report(pid, diagPort, `idle (${binary}, env ${JSON.stringify(env)})`);
  const count = Number(process.env.SESSIONS ?? 0);
  if (count > 0) {
    let next = 0;
    const cpuBefore = cpuSeconds(pid);
    const worker = async () => {
      while (next < count) {
        next++;
        const code = await sshOnce(sshConfig, home);
        if (code !== 0) throw new Error(`ssh failed (${code}):\n${logs.slice(-2000)}`);
      }
    };
    await Promise.all(Array.from({ length: 4 }, worker));
    const cpuMs = ((cpuSeconds(pid) - cpuBefore) * 1000) / count;
    await sleep(3_000);
    await report(pid, diagPort, `after ${count} sessions (agent CPU ${cpuMs.toFixed(1)} ms per session)`);
  }
  const bulkMb = Number(process.env.BULK_MB ?? 0);
  if (bulkMb > 0) {
    const cpuBefore = cpuSeconds(pid);
    const started = performance.now();
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn('ssh', ['-F', sshConfig, '-o', 'BatchMode=yes', 'root@bench-node', `head -c ${bulkMb}M /dev/zero`], { env: { ...process.env, POSTERN_HOME: home }, stdio: 'ignore' });
      child.once('exit', resolve);
    });
    if (code !== 0) throw new Error(`bulk ssh failed (${code})`);
    const cpu = cpuSeconds(pid) - cpuBefore;
    process.stdout.write(`-- bulk ${bulkMb} MB in ${((performance.now() - started) / 1000).toFixed(1)} s: agent CPU ${((cpu * 1000 * 100) / bulkMb).toFixed(0)} ms per 100 MB\n`);
    await report(pid, diagPort, `after the bulk session`);
  }
  if (process.env.HOLD) {
    process.stdout.write(`holding: agent pid ${pid}, diag port ${diagPort}, ssh -F ${sshConfig} (POSTERN_HOME=${home}); Ctrl-C ends\n`);
    await new Promise((resolve) => process.once('SIGINT', resolve));
  }
} finally {
  agent?.kill('SIGTERM');
  await cluster.daemon.kill();
  rmSync(cluster.daemon.dir, { recursive: true, force: true });
  rmSync(scratch, { recursive: true, force: true });
}
